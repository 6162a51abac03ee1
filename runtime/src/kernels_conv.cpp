// kernels_conv.cpp - the float convolutions (every algorithm conv2d may choose at run time,
// with and without a row epilogue, and their gradients), compiled once into the runtime
// library (see MITHRIL_K_INSTANCE in kernels/common.h).
#include "mithril/rt/kernels/common.h"
#include "mithril/rt/kernels/gemm.h"  // its instances: kernels_gemm.cpp

#undef MITHRIL_K_INSTANCE
#define MITHRIL_K_INSTANCE(...) template __VA_ARGS__;
#include "mithril/rt/kernels/conv.h"

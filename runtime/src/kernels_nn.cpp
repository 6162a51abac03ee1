// kernels_nn.cpp - the float pooling, normalization, attention, data movement, loss,
// reduction and optimizer kernels generated code calls, compiled once into the runtime
// library (see MITHRIL_K_INSTANCE in kernels/common.h).
#include "mithril/rt/kernels/common.h"
#include "mithril/rt/kernels/gemm.h"  // its instances: kernels_gemm.cpp
#include "mithril/rt/kernels/scalar.h"

#undef MITHRIL_K_INSTANCE
#define MITHRIL_K_INSTANCE(...) template __VA_ARGS__;
#include "mithril/rt/kernels/attention.h"
#include "mithril/rt/kernels/data.h"
#include "mithril/rt/kernels/loss.h"
#include "mithril/rt/kernels/norm.h"
#include "mithril/rt/kernels/optim.h"
#include "mithril/rt/kernels/pool.h"
#include "mithril/rt/kernels/reduce.h"

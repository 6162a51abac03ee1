// kernels_gemm.cpp - Mithril's GEMM micro-kernels, compiled once into the runtime library
// (for the Identity epilogue and the type-erased SpanEpilogue; see MITHRIL_K_INSTANCE in
// kernels/common.h), so that no model's source instantiates them again.
#include "mithril/rt/kernels/common.h"

#undef MITHRIL_K_INSTANCE
#define MITHRIL_K_INSTANCE(...) template __VA_ARGS__;
#include "mithril/rt/kernels/gemm.h"

// kernels.h - the kernel library generated code calls (namespace mithril::rt::k).
//
// Header-only templates over T = float and double (ints where a kernel says
// so): plain pointers, int64_t sizes, outputs first, then inputs, then sizes;
// contiguous row-major (NCHW) tensors; no allocation inside (kernels needing
// temporary memory take `T* scratch`, sized by a matching `X_scratch(...)`).
// See kernels/common.h for the conventions and runtime/README.md (Kernels).
#pragma once

#include "mithril/rt/kernels/common.h"
#include "mithril/rt/kernels/conv.h"
#include "mithril/rt/kernels/conv_nhwc.h"
#include "mithril/rt/kernels/gemm.h"
#include "mithril/rt/kernels/pool.h"
#include "mithril/rt/kernels/norm.h"
#include "mithril/rt/kernels/reduce.h"
#include "mithril/rt/kernels/attention.h"
#include "mithril/rt/kernels/data.h"
#include "mithril/rt/kernels/loss.h"
#include "mithril/rt/kernels/optim.h"
#include "mithril/rt/kernels/scalar.h"

// program.h - what a generated program's class and main program use from the runtime on the host:
// tensors and arenas, .npy and safetensors files, initialization, threads, timers and the layer
// profiler. No kernels: runtime.h adds the CPU kernels and BLAS for the CPU target's code; the CUDA
// target's code adds cuda/device.h (and, in its .cu source, cuda/kernels.cuh).
#pragma once

#include "mithril/rt/arena.h"
#include "mithril/rt/device.h"
#include "mithril/rt/error.h"
#include "mithril/rt/file_io.h"
#include "mithril/rt/gradcheck.h"
#include "mithril/rt/init.h"
#include "mithril/rt/npy.h"
#include "mithril/rt/profile.h"
#include "mithril/rt/safetensors.h"
#include "mithril/rt/tensor.h"
#include "mithril/rt/threads.h"
#include "mithril/rt/timer.h"

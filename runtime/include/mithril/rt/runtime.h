// runtime.h - umbrella header: everything generated code may use from the
// Mithril runtime.
#pragma once

#include "mithril/rt/arena.h"
#include "mithril/rt/blas.h"
#include "mithril/rt/device.h"
#include "mithril/rt/error.h"
#include "mithril/rt/file_io.h"
#include "mithril/rt/gradcheck.h"
#include "mithril/rt/init.h"
#include "mithril/rt/kernels.h"
#include "mithril/rt/npy.h"
#include "mithril/rt/profile.h"
#include "mithril/rt/safetensors.h"
#include "mithril/rt/tensor.h"
#include "mithril/rt/threads.h"
#include "mithril/rt/timer.h"

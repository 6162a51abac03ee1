// runtime.h - umbrella header: everything generated CPU code may use from the Mithril runtime
// (program.h, what every target's program uses, plus the CPU kernels and BLAS).
#pragma once

#include "mithril/rt/blas.h"
#include "mithril/rt/kernels.h"
#include "mithril/rt/program.h"

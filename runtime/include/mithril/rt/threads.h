// threads.h - one thread count for OpenMP and BLAS (OpenBLAS or BLIS).
//
// Generated kernels parallelise with OpenMP while gemm runs inside the BLAS
// library's own pool; if both use "all cores" they oversubscribe. set_num_threads sets
// both to the same value, and generated code calls BLAS only from serial
// regions. The default comes from MITHRIL_NUM_THREADS, else OMP_NUM_THREADS,
// else std::thread::hardware_concurrency().
//
//   mithril::rt::set_num_threads(0);   // 0 = default_num_threads()
#pragma once

namespace mithril::rt {

// MITHRIL_NUM_THREADS (must be a positive integer, else Error), else the first
// entry of OMP_NUM_THREADS when it is a positive integer, else the hardware
// concurrency (at least 1).
int default_num_threads();

// Sets BLAS (OpenBLAS or BLIS) and (when built with OpenMP) OpenMP to n threads; n <= 0
// means default_num_threads(). Returns the count that was applied.
int set_num_threads(int n);

// The count last applied by set_num_threads (applying the default first if it
// was never called).
int num_threads();

// True when the runtime was built with OpenMP.
bool have_openmp();

}  // namespace mithril::rt

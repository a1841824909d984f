// Per-device kernel attributes. Dynamic shared memory above 48 KiB has to be allowed for each kernel,
// and the attribute lives in the current device's context: a kernel set up once per process would
// fail to launch on the second GPU a process uses.
#pragma once

namespace vitrt::cuda {

// Allows `kernel` up to `bytes` of dynamic shared memory on the current device, once per (kernel,
// device) pair (later calls with no more bytes return at once). Thread-safe.
void allow_dynamic_smem(const void* kernel, int bytes);

template <typename... Args>
void allow_dynamic_smem(void (*kernel)(Args...), int bytes) {
  allow_dynamic_smem(reinterpret_cast<const void*>(kernel), bytes);
}

// How many blocks of `kernel` (threads and dynamic shared memory per block as given) the current device
// holds at once: its SMs times the blocks per SM. The grid of a persistent kernel. Throws if no block fits.
int resident_blocks(const void* kernel, int threads, int smem_bytes);

template <typename... Args>
int resident_blocks(void (*kernel)(Args...), int threads, int smem_bytes) {
  return resident_blocks(reinterpret_cast<const void*>(kernel), threads, smem_bytes);
}

// Kernel groups for programmatic dependent launch (launch.cuh).
enum class Pdl : unsigned { norm = 1, attention = 2, gemm = 4 };  // gemm: our TF32 GEMM, the activation pass

// Whether kernels of `group` on the current device are launched as programmatic dependent launches:
// compute capability 9.0 or later, and the group allowed by VITRT_PDL (unset: norm and gemm; "0": none;
// else a comma-separated list of norm, attention, gemm; for comparisons). Cached per device; thread-safe.
// Off for the calling thread while a backend runs a plan it was measured slower for
// (allow_dependent_launch(false)); on again with allow_dependent_launch(true), the default.
bool dependent_launch(Pdl group);
void allow_dependent_launch(bool on);

}  // namespace vitrt::cuda

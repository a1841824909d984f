// The driver's tensor-map encoder for the kernels that copy with TMA (the tf32 GEMM, the long-sequence
// attention kernel), found once through the runtime: no link against libcuda.
#pragma once

#include <cudaTypedefs.h>

namespace vitrt::cuda {

// cuTensorMapEncodeTiled; throws if the driver does not provide it.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder();

}  // namespace vitrt::cuda

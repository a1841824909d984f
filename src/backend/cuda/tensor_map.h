// The driver's tensor-map encoder for the kernels that copy with TMA (the tf32 GEMM, the long-sequence
// attention kernel), found once through the runtime: no link against libcuda.
#pragma once

#include <cudaTypedefs.h>

#include <cstdint>

#include "backend/backend.h"

namespace vitrt::cuda {

// cuTensorMapEncodeTiled; throws if the driver does not provide it.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder();

// The attention kernels' input, qkv [batch][tokens][3 E] of 16-bit elements (fp16 when f16, else bf16;
// E = heads * head_dim), as a 3-D tensor map with boxes of head_dim columns (one head of Q, K or V) x
// box_rows tokens of one image, 128-byte swizzled: rows past an image's last token come back as zeros,
// not as the next image's. Throws with the shape if the driver refuses it.
CUtensorMap qkv_tensor_map(const void* qkv, bool f16, int batch, int tokens, int heads, int head_dim, int box_rows);

// A row-major matrix [rows, cols] of `dt` (f32, f16 or bf16) with row stride ld elements, read in boxes
// of 128 bytes of columns (32 fp32 or 64 16-bit values) x box_rows rows, 128-byte swizzled (the layout
// the wgmma descriptors read): rows past the end come back as zeros. Throws with the shape if the driver
// refuses it.
CUtensorMap matrix_tensor_map(const void* ptr, DT dt, std::int64_t rows, int cols, std::int64_t ld, int box_rows);

// A row-major output matrix [rows, cols] of `dt` (f32, f16 or bf16) with row stride ld elements, written
// in dense boxes of box_cols x box_rows (no swizzle): elements past the end are not written. Needs a
// 16-byte aligned pointer and row stride. Throws with the shape if the driver refuses it.
CUtensorMap output_tensor_map(void* ptr, DT dt, std::int64_t rows, int cols, std::int64_t ld, int box_rows,
                              int box_cols);

}  // namespace vitrt::cuda

#include "backend/cuda/tensor_map.h"

#include <cuda_runtime.h>

#include "backend/cuda/cuda_check.h"

namespace vitrt::cuda {

PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult found{};
    CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found));
    VITRT_CHECK(found == cudaDriverEntryPointSuccess && f != nullptr,
                "the CUDA driver does not provide cuTensorMapEncodeTiled (needed by the TMA kernels: the tf32 GEMM, "
                "long-sequence attention)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

CUtensorMap qkv_tensor_map(const void* qkv, bool f16, int batch, int tokens, int heads, int head_dim, int box_rows) {
  const cuuint64_t E = static_cast<cuuint64_t>(heads) * static_cast<cuuint64_t>(head_dim);
  const cuuint64_t dims[3] = {3 * E, static_cast<cuuint64_t>(tokens), static_cast<cuuint64_t>(batch)};
  const cuuint64_t strides[2] = {3 * E * 2, static_cast<cuuint64_t>(tokens) * 3 * E * 2};  // bytes, 16-bit elements
  const cuuint32_t box[3] = {static_cast<cuuint32_t>(head_dim), static_cast<cuuint32_t>(box_rows), 1};
  const cuuint32_t element_strides[3] = {1, 1, 1};
  CUtensorMap map;
  const CUresult r = tensor_map_encoder()(
      &map, f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 3, const_cast<void*>(qkv), dims,
      strides, box, element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
      CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  VITRT_CHECK(r == CUDA_SUCCESS, "attention: cuTensorMapEncodeTiled failed (CUresult ", static_cast<int>(r), ") for qkv [",
              batch, ", ", tokens, ", ", 3 * E, "] with boxes of ", head_dim, " x ", box_rows);
  return map;
}

namespace {

// A 2-D row-major map of `dt` elements [rows, cols], row stride ld elements, boxes of box_cols x
// box_rows; `what` names the matrix in the error.
CUtensorMap encode_2d(const void* ptr, DT dt, std::int64_t rows, int cols, std::int64_t ld, int box_cols, int box_rows,
                      CUtensorMapSwizzle swizzle, CUtensorMapL2promotion promotion, const char* what) {
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * dt_size(dt)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_cols), static_cast<cuuint32_t>(box_rows)},
                   element_strides[2] = {1, 1};
  const CUtensorMapDataType type = dt == DT::f32   ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32
                                   : dt == DT::f16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16
                                                   : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  CUtensorMap map;
  const CUresult r =
      tensor_map_encoder()(&map, type, 2, const_cast<void*>(ptr), dims, strides, box, element_strides,
                           CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, promotion, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  VITRT_CHECK(r == CUDA_SUCCESS, "GEMM: cuTensorMapEncodeTiled failed (CUresult ", static_cast<int>(r), ") for a ",
              rows, " x ", cols, " ", dt_name(dt), " ", what, " with row stride ", ld, " and boxes of ", box_cols,
              " x ", box_rows);
  return map;
}

}  // namespace

CUtensorMap matrix_tensor_map(const void* ptr, DT dt, std::int64_t rows, int cols, std::int64_t ld, int box_rows) {
  return encode_2d(ptr, dt, rows, cols, ld, 128 / static_cast<int>(dt_size(dt)), box_rows, CU_TENSOR_MAP_SWIZZLE_128B,
                   CU_TENSOR_MAP_L2_PROMOTION_L2_256B, "matrix");
}

CUtensorMap output_tensor_map(void* ptr, DT dt, std::int64_t rows, int cols, std::int64_t ld, int box_rows,
                              int box_cols) {
  return encode_2d(ptr, dt, rows, cols, ld, box_cols, box_rows, CU_TENSOR_MAP_SWIZZLE_NONE,
                   CU_TENSOR_MAP_L2_PROMOTION_NONE, "output");
}

}  // namespace vitrt::cuda

// Linear layer on cuBLASLt: descriptors, layouts and algorithm chosen once at plan time; bias fused
// as the BIAS epilogue and the residual add as beta = 1 with C = D. Row-major Y[M, N] = X[M, K] W^T
// is computed column-major as Y^T = W^T' X^T' (A = W with op T, B = X with op N).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>

#include "backend/backend.h"

namespace vitrt::cuda {

class LinearOp {
 public:
  // weight: device [out, in] in the GEMM input type; bias: device [out] in the output type.
  LinearOp(cublasLtHandle_t lt, const LinearArgs& a, const void* weight, const void* bias, Precision precision,
           std::size_t workspace_bytes);
  ~LinearOp();
  LinearOp(const LinearOp&) = delete;
  LinearOp& operator=(const LinearOp&) = delete;

  void execute(cublasLtHandle_t lt, const LinearArgs& a, void* workspace, cudaStream_t s) const;

 private:
  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasLtMatmulAlgo_t algo_{};
  std::size_t algo_workspace_ = 0;
  const void* weight_ = nullptr;
  float beta_ = 0.0f;
  Epilogue post_ = Epilogue::none;  // activation run after the GEMM (exact GELU / QuickGELU)
};

}  // namespace vitrt::cuda

// Linear layer on cuBLASLt: descriptors, layouts and algorithm chosen once at plan time; bias fused
// as the BIAS epilogue and the residual add as beta = 1 with C = D. Row-major Y[M, N] = X[M, K] W^T
// is computed column-major as Y^T = W^T' X^T' (A = W with op T, B = X with op N).
// The algorithm comes from the tuning cache when it holds the shape, else from cuBLASLt's heuristic;
// a tuning session times the heuristic's candidates and split-K variants first (tuning.h).
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/tuning.h"

namespace vitrt::cuda {

// What planning a GEMM may use: the tuner, and for timing candidates the session's workspace and stream.
struct GemmContext {
  TuneCache* tuner = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  cudaStream_t stream = nullptr;
  int sm_count = 0;
  L2Flush flush;  // set only while tuning
};

// A full-fp32 GEMM (LinearArgs::full_fp32) of a tf32 session run as three TF32 GEMMs on split operands
// (3xTF32, fp32-level accuracy): A_big W_big + bias, then + A_big W_small and + A_small W_big
// (beta = 1). The backend provides W's parts (the weight pointer holds the big ones) and scratch for
// A's parts, [rows, src_ld] each, filled at every run.
struct Split3 {
  const void* w_small = nullptr;
  float* a_big = nullptr;
  float* a_small = nullptr;
};

class LinearOp {
 public:
  // weight: device [out, in] in the GEMM input type; bias: device [out] in the output type.
  // While planning, a.src / a.dst are the session's real buffers (used to time candidates).
  LinearOp(cublasLtHandle_t lt, const LinearArgs& a, const void* weight, const void* bias, Precision precision,
           const GemmContext& ctx, const Split3* split3 = nullptr);
  ~LinearOp();
  LinearOp(const LinearOp&) = delete;
  LinearOp& operator=(const LinearOp&) = delete;

  void execute(cublasLtHandle_t lt, const LinearArgs& a, void* workspace, cudaStream_t s) const;

 private:
  cublasStatus_t matmul(cublasLtHandle_t lt, const cublasLtMatmulAlgo_t& algo, std::size_t algo_ws, const void* src,
                        void* dst, void* workspace, cudaStream_t s) const;
  // Up to `count` of cuBLASLt's heuristic picks for `desc` that fit the workspace (the first is its best
  // guess).
  std::vector<cublasLtMatmulHeuristicResult_t> heuristics(cublasLtHandle_t lt, cublasLtMatmulDesc_t desc, int count,
                                                          std::size_t workspace_bytes, cublasStatus_t& status) const;
  // The A operand of the (first) GEMM: the input, or with Split3 its big parts.
  const void* gemm_src(const LinearArgs& a) const { return split3_ ? split3_->a_big : a.src; }
  // Times every candidate for this shape and stores the winner in the tuner.
  void tune(cublasLtHandle_t lt, const LinearArgs& a, const GemmContext& ctx, const std::string& key);
  // The algorithm a cache entry describes, checked against this GEMM; false if it no longer applies.
  bool restore(cublasLtHandle_t lt, const nlohmann::json& entry, std::size_t workspace_bytes);

  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasComputeType_t compute_ = CUBLAS_COMPUTE_32F;
  cudaDataType_t in_t_ = CUDA_R_32F, out_t_ = CUDA_R_32F;
  cublasLtMatmulAlgo_t algo_{};
  std::size_t algo_workspace_ = 0;
  const void* weight_ = nullptr;
  float beta_ = 0.0f;
  Epilogue post_ = Epilogue::none;  // activation run after the GEMM (exact GELU / QuickGELU)
  // Split3: the buffers, and the accumulating GEMMs' descriptor (no bias, beta = 1) and algorithm.
  std::optional<Split3> split3_;
  cublasLtMatmulDesc_t desc_acc_ = nullptr;
  cublasLtMatmulAlgo_t algo_acc_{};
  std::size_t algo_acc_workspace_ = 0;
};

}  // namespace vitrt::cuda

#include "backend/cuda/linear.h"

#include "backend/cuda/activation.cuh"
#include "backend/cuda/cuda_check.h"

namespace vitrt::cuda {
namespace {

cudaDataType_t cuda_type(DT t) {
  switch (t) {
    case DT::f32: return CUDA_R_32F;
    case DT::f16: return CUDA_R_16F;
    case DT::bf16: return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

}  // namespace

LinearOp::LinearOp(cublasLtHandle_t lt, const LinearArgs& a, const void* weight, const void* bias, Precision precision,
                   std::size_t workspace_bytes)
    : weight_(weight), beta_(a.accumulate ? 1.0f : 0.0f), post_(a.epilogue) {
  const auto M = static_cast<std::uint64_t>(a.rows), K = static_cast<std::uint64_t>(a.w->in),
             N = static_cast<std::uint64_t>(a.w->out);
  // fp32 inputs run in fp32, or TF32 when the session asked for it (except full_fp32 GEMMs); 16-bit
  // inputs accumulate in fp32.
  const bool tf32 = a.src_dt == DT::f32 && precision == Precision::tf32 && !a.full_fp32;
  const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, compute, CUDA_R_32F));
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
  // GELU: fused into the epilogue for 16-bit outputs, where the epilogue's GELU differs from the exact
  // erf form far below the output's rounding (checked by the op tests and tools/verify_torch.py); fp32
  // outputs keep the exact erf kernel. QuickGELU always runs as a kernel after the GEMM.
  const bool fuse_gelu = a.epilogue == Epilogue::gelu_erf && a.dst_dt != DT::f32;
  if (fuse_gelu) post_ = Epilogue::none;
  const cublasLtEpilogue_t epi = fuse_gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  const cudaDataType_t in_t = cuda_type(a.src_dt), out_t = cuda_type(a.dst_dt);
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_, in_t, K, N, K));  // W^T viewed column-major: K x N, op T
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b_, in_t, K, M, static_cast<std::int64_t>(a.src_ld)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c_, out_t, N, M, static_cast<std::int64_t>(a.dst_ld)));

  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                    sizeof(workspace_bytes)));
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const auto st = cublasLtMatmulAlgoGetHeuristic(lt, desc_, a_, b_, c_, c_, pref, 1, &result, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  VITRT_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0, "cuBLASLt has no algorithm for a ", M, "x", K, "x", N,
              " GEMM (", dt_name(a.src_dt), " -> ", dt_name(a.dst_dt), "): ", cublas_status_name(st));
  algo_ = result.algo;
  algo_workspace_ = result.workspaceSize;
}

LinearOp::~LinearOp() {
  if (c_) cublasLtMatrixLayoutDestroy(c_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (desc_) cublasLtMatmulDescDestroy(desc_);
}

void LinearOp::execute(cublasLtHandle_t lt, const LinearArgs& a, void* workspace, cudaStream_t s) const {
  const float alpha = 1.0f;
  CUBLAS_CHECK(cublasLtMatmul(lt, desc_, &alpha, weight_, a_, a.src, b_, &beta_, a.dst, c_, a.dst, c_, &algo_,
                              workspace, algo_workspace_, s));
  if (post_ != Epilogue::none) activation({a.dst, a.rows, a.w->out, a.dst_ld, a.dst_dt, post_}, s);
}

}  // namespace vitrt::cuda

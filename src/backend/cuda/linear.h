// Linear layer on cuBLASLt: descriptors, layouts and algorithm chosen once at plan time; bias fused
// as the BIAS epilogue and the residual add as beta = 1 with C = D. Row-major Y[M, N] = X[M, K] W^T
// is computed column-major as Y^T = W^T' X^T' (A = W with op T, B = X with op N).
// The algorithm comes from the tuning cache when it holds the shape, else from cuBLASLt's heuristic;
// a tuning session times the heuristic's candidates and split-K variants first (tuning.h).
// TF32 GEMMs with an fp32 output and an activation (exact GELU, QuickGELU) may instead run our own
// kernel with the activation in its epilogue (gemm_tf32.cuh): the tuner times its variants against
// cuBLASLt followed by the activation pass, and the cache entry says which won ("own").
// 16-bit GEMMs of up to small_gemm_max_rows() rows in plans that use dependent launches run our
// dependent-launch GEMM (gemm_small.cuh) instead of cuBLASLt: the class-token-only GEMMs of a model's last
// block from batch 8 on. Its gain is the overlap with the kernels around it, which timing a GEMM alone
// cannot see, so the row count decides, and the tuner only picks among its variants ("small" in the
// cache entry). Measured in docs/performance.md (session 21).
// fp32 GEMMs in fp32 (not TF32) of up to kGemvMaxRows rows without an activation pass (the classifier
// heads; the last block's class-token GEMMs in fp32 sessions), and 16-bit GEMMs of up to
// gemv_max_rows_16bit() rows (the last block's class-token GEMMs of small batches) run our gemv.cuh
// kernel, by row count, untimed: cuBLASLt's picks there took several times what reading W takes
// (sessions 34-35). It computes a GELU in the exact form, as our small GEMM does on the same rows.
// 16-bit GEMMs with the exact GELU (VITRT_EXACT_GELU=1) may run our warp-specialized GEMM (gemm_ws.cuh),
// with the GELU in its epilogue, when the tuner timed it faster than cuBLASLt's bias-only GEMM followed
// by the GELU pass ("ws" in the cache entry); bias-only GEMMs too with VITRT_GEMM_WS=2. 16-bit GEMMs that
// add into the fp32 residual with fewer output tiles than SMs (proj and fc2 at small batches) may run its
// split-K variants: the tuner times them, and the forward check of a tuning session runs the forward with
// the fastest few and keeps one that makes it faster ("ws" again). Their parts add into the residual in no
// fixed order, so such a forward's fp32 sums may differ in the last bits from run to run.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/gemm_small.cuh"
#include "backend/cuda/gemm_tf32.cuh"
#include "backend/cuda/gemm_ws.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/tuning.h"
#include "core/check.h"

namespace vitrt::cuda {

// What planning a GEMM may use: the tuner, and for timing candidates the session's workspace and stream.
struct GemmContext {
  TuneCache* tuner = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
  cudaStream_t stream = nullptr;
  int sm_count = 0;
  int arch = 0;   // compute capability, major * 10 + minor
  L2Flush flush;  // set only while tuning
  bool dependent = false;  // the plan runs with dependent launches (batch 8 up): few rows take our small GEMM
};

// The largest row count whose 16-bit GEMMs take our few-row kernel (gemv.cuh): VITRT_GEMV_ROWS if set (0:
// never), else kGemv16BitMaxRows.
std::int64_t gemv_max_rows_16bit();

// The largest row count whose 16-bit GEMMs take our small-batch GEMM: VITRT_SMALL_GEMM if set (0: never),
// else kSmallGemmMaxRows.
std::int64_t small_gemm_max_rows();

// Whether 16-bit sessions compute timm's exact (erf) GELU: VITRT_EXACT_GELU (0 or 1), default 0. When
// off, a GELU after a 16-bit GEMM is cuBLASLt's GELU epilogue, the tanh form (docs/verification.md).
bool exact_gelu_16bit();
// Which 16-bit GEMMs our warp-specialized GEMM may take part in tuning for (VITRT_GEMM_WS): 0 none; 1
// (the default) those with the exact GELU (VITRT_EXACT_GELU=1), and those with fewer output tiles than
// SMs (residual GEMMs: the split-K variants; bias and cuBLASLt's tanh GELU: the ping-pong tiles, the tanh
// form on 64 rows), whose variants are the forward check's alternatives; 2 those and the bias-only ones too.
int gemm_ws_mode();
// Our variants offered to the forward check per GEMM at most (the fastest alone).
constexpr std::size_t kWsAlternatives = 3;
// Measurement only: VITRT_GEMM_WS_VARIANT=V (a variant number of gemm_ws.cuh; default 0 = off) runs every
// 16-bit GEMM that variant takes on our warp-specialized GEMM, untimed; VITRT_GEMM_WS_SHAPES=KxN[,KxN...]
// limits that to GEMMs of those inner / output sizes (docs/performance.md, sessions 44-45).
int gemm_ws_forced_variant();
// Whether tuning also times tile and cluster-shape variants of cuBLASLt's first pick (VITRT_TUNE_TILES,
// 0 or 1, default 1; LinearOp::tune).
bool tile_variants_on();

class LinearOp {
 public:
  // weight: device [out, in] in the GEMM input type; bias: device [out] in the output type.
  // While planning, a.src / a.dst are the session's real buffers (used to time candidates).
  LinearOp(cublasLtHandle_t lt, const LinearArgs& a, const void* weight, const void* bias, Precision precision,
           const GemmContext& ctx);
  ~LinearOp();
  LinearOp(const LinearOp&) = delete;
  LinearOp& operator=(const LinearOp&) = delete;

  void execute(cublasLtHandle_t lt, const LinearArgs& a, void* workspace, cudaStream_t s) const;
  // Whether our fused kernel runs this GEMM (rather than cuBLASLt).
  bool own_kernel() const { return own_variant_ > 0; }
  bool ws_kernel() const { return ws_variant_ > 0; }  // our warp-specialized GEMM runs it
  // Whether our small-batch GEMM runs it (a dependent launch).
  bool small_kernel() const { return small_variant_ > 0; }
  // The weight our kernel reads (the same matrix rounded to TF32; device memory the caller keeps).
  void set_own_weight(const void* w) { own_weight_ = w; }
  // The exact weight given at construction: what cuBLASLt reads (and what tuning timed).
  const void* exact_weight() const { return weight_; }
  // The forward check of tuning sessions (CudaBackend::refine_tuning): this GEMM's tuning-cache key, and
  // the cuBLASLt candidates the tuner timed within 15% of its pick ({"algo", "us"} each; empty where our
  // kernel was picked or the entry has none), and our small GEMM's fastest variant ({"small", "us"}) where
  // it is offered (small_checkable_).
  const std::string& key() const { return key_; }
  const std::vector<nlohmann::json>& alternatives() const { return alternatives_; }
  // The cuBLASLt algorithm this op runs, as a cache entry's "algo", and in words.
  nlohmann::json algo_json() const;
  std::string algo_name() const;
  // Up to `count` of cuBLASLt's heuristic candidates for this GEMM that fit `workspace_bytes`, each as a
  // cache entry's "algo" (for benches that look past the tuner's 24).
  std::vector<nlohmann::json> heuristic_algos(cublasLtHandle_t lt, int count, std::size_t workspace_bytes) const;
  // Switches to a cuBLASLt algorithm given as a cache entry's "algo"; false (and no change) where it does
  // not apply to this GEMM.
  bool use_algo(cublasLtHandle_t lt, const nlohmann::json& algo, std::size_t workspace_bytes);
  // The forward check's choices: what runs now ({"algo", "us"}, or {"small", "us"} where our small GEMM
  // was offered as an alternative and runs), in words, and switching to one of alternatives() (false, and
  // no change, where it does not apply).
  nlohmann::json choice_json(double us) const;
  std::string choice_name() const;
  bool use_choice(cublasLtHandle_t lt, const nlohmann::json& choice, std::size_t workspace_bytes);
  // Whether our small GEMM runs this GEMM as the forward check's choice (its plan then needs dependent
  // launches, which batch-1 plans do not have by default).
  bool small_by_check() const { return small_alternative_ > 0 && small_variant_ == small_alternative_; }
  // Our kernel runs this GEMM: the caller frees the exact weight, which this op then no longer names.
  void forget_exact_weight() {
    VITRT_CHECK(own_kernel() && own_weight_, "internal: only a GEMM on our kernel can drop its cuBLASLt weight");
    weight_ = nullptr;
  }

 private:
  cublasStatus_t matmul(cublasLtHandle_t lt, const cublasLtMatmulAlgo_t& algo, std::size_t algo_ws, const void* src,
                        void* dst, void* workspace, cudaStream_t s) const;
  // matmul with `algo`, then the activation pass (post_) when the matmul was accepted.
  cublasStatus_t run_cublaslt(cublasLtHandle_t lt, const cublasLtMatmulAlgo_t& algo, std::size_t algo_ws,
                              const LinearArgs& a, void* workspace, cudaStream_t s) const;
  // Up to `count` of cuBLASLt's heuristic picks that fit the workspace (the first is its best guess).
  std::vector<cublasLtMatmulHeuristicResult_t> heuristics(cublasLtHandle_t lt, int count, std::size_t workspace_bytes,
                                                          cublasStatus_t& status) const;
  // Times every candidate for this shape and stores the winner in the tuner.
  void tune(cublasLtHandle_t lt, const LinearArgs& a, const GemmContext& ctx, const std::string& key);
  // The algorithm a configuration (a cache entry's "algo") describes, checked against this GEMM and the
  // workspace: false, and `algo` / `workspace` unchanged, where it does not apply.
  bool checked(cublasLtHandle_t lt, const nlohmann::json& config, std::size_t workspace_bytes,
               cublasLtMatmulAlgo_t& algo, std::size_t& workspace) const;
  // The algorithm a cache entry describes, checked against this GEMM; false if it no longer applies.
  bool restore(cublasLtHandle_t lt, const nlohmann::json& entry, std::size_t workspace_bytes);
  // The own-kernel launch for this call's buffers (variant own_variant_).
  GemmTf32Params own_params(const LinearArgs& a, int variant) const;
  template <typename P>
  P operands(const LinearArgs& a) const;
  // The small-batch GEMM's launch for this call's buffers (epilogue, residual and activation included).
  GemmSmallParams small_params(const LinearArgs& a, int variant) const;
  // The warp-specialized GEMM's launch for this call's buffers (bias and activation included).
  GemmWsParams ws_params(const LinearArgs& a, int variant) const;
  std::string ws_name() const;  // ws_variant_ in words (and w_first)
  // The warp-specialized GEMM's variants that take this GEMM; for ws_checked_ only the ping-pong ones whose
  // work items fit on the SMs at once (for a residual the split-K ones).
  std::vector<int> ws_candidates(const LinearArgs& a) const;
  // The few-row kernel's launch for this call's buffers (activation and residual included).
  GemvParams gemv_params(const LinearArgs& a) const;

  cublasLtMatmulDesc_t desc_ = nullptr;
  cublasLtMatrixLayout_t a_ = nullptr, b_ = nullptr, c_ = nullptr;
  cublasComputeType_t compute_ = CUBLAS_COMPUTE_32F;
  cudaDataType_t in_t_ = CUDA_R_32F, out_t_ = CUDA_R_32F;
  cublasLtMatmulAlgo_t algo_{};
  std::size_t algo_workspace_ = 0;
  std::string key_;
  std::vector<nlohmann::json> alternatives_;
  const void* weight_ = nullptr;
  const void* own_weight_ = nullptr;  // set_own_weight; weight_ until then
  float beta_ = 0.0f;
  Epilogue post_ = Epilogue::none;  // activation run after the GEMM (exact GELU / QuickGELU)
  const void* bias_ = nullptr;
  int arch_ = 0;
  bool own_eligible_ = false;  // a TF32 GEMM with an activation pass: our fused kernel may take it
  int own_variant_ = 0;        // > 0: our kernel runs instead of cuBLASLt + the pass
  Epilogue act_ = Epilogue::none;  // the layer's activation (the small GEMM applies it itself)
  bool small_eligible_ = false;    // 16-bit, few rows, a shape our small GEMM takes: it runs
  bool small_checkable_ = false;   // 16-bit, up to kSmallGemmCheckMaxRows rows: small GEMM as an alternative
  int small_alternative_ = 0;      // > 0: the variant the forward check may choose (small_checkable_)
  int small_variant_ = 0;          // > 0: our small GEMM runs instead of cuBLASLt
  int sm_count_ = 0;
  // Our warp-specialized GEMM may take it: 16-bit, no residual, bias (+ exact GELU), or (ws_checked_) a
  // 16-bit GEMM with fewer 128 x 128 output tiles than SMs, adding into an fp32 residual (the split-K
  // variants) or with a bias (+ cuBLASLt's tanh-form GELU, on 64-row tiles; the ping-pong variants), where
  // its variants are the forward check's alternatives.
  bool ws_checked_ = false;
  bool gelu_tanh_ = false;  // the GELU is fused in cuBLASLt's epilogue, so ours computes the same tanh form
  bool ws_w_first_ = false;  // GemmWsParams::w_first for ws_variant_ (the forward check's choice)
  // The variants that take it (ws_candidates; empty where neither form applies): what tuning times, and
  // for ws_checked_ what the forward check may choose.
  std::vector<int> ws_variants_;
  int ws_variant_ = 0;  // > 0: our warp-specialized GEMM runs instead of cuBLASLt (+ the GELU pass)
  bool gemv_ = false;   // our few-row kernel runs instead of cuBLASLt
};

}  // namespace vitrt::cuda

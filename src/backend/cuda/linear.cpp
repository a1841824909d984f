#include "backend/cuda/linear.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "backend/cuda/activation.cuh"
#include "backend/cuda/cuda_check.h"
#include "core/env.h"

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

// An algorithm's configuration attributes (the documented way to save and restore one).
struct AlgoConfig {
  std::int32_t id = 0, splitk = 1;
  std::uint32_t tile = 0, stages = 0, reduction = 0, swizzle = 0, custom = 0;
  std::uint16_t inner = 0, cluster = 0;

  template <typename V>
  static void get(const cublasLtMatmulAlgo_t& a, cublasLtMatmulAlgoConfigAttributes_t attr, V& v) {
    std::size_t written = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoConfigGetAttribute(&a, attr, &v, sizeof(v), &written));
  }
  template <typename V>
  static bool set(cublasLtMatmulAlgo_t& a, cublasLtMatmulAlgoConfigAttributes_t attr, const V& v) {
    return cublasLtMatmulAlgoConfigSetAttribute(&a, attr, &v, sizeof(v)) == CUBLAS_STATUS_SUCCESS;
  }
  static AlgoConfig of(const cublasLtMatmulAlgo_t& a) {
    AlgoConfig c;
    get(a, CUBLASLT_ALGO_CONFIG_ID, c.id);
    get(a, CUBLASLT_ALGO_CONFIG_TILE_ID, c.tile);
    get(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, c.stages);
    get(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, c.splitk);
    get(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, c.reduction);
    get(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, c.swizzle);
    get(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, c.custom);
    get(a, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, c.inner);
    get(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, c.cluster);
    return c;
  }
  bool apply(cublasLtMatmulAlgo_t& a) const {
    return set(a, CUBLASLT_ALGO_CONFIG_TILE_ID, tile) && set(a, CUBLASLT_ALGO_CONFIG_STAGES_ID, stages) &&
           set(a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, splitk) && set(a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, reduction) &&
           set(a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, swizzle) && set(a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, custom) &&
           set(a, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, inner) && set(a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, cluster);
  }
  nlohmann::json json() const {
    return {{"id", id},          {"tile", tile},       {"stages", stages}, {"splitk", splitk}, {"reduction", reduction},
            {"swizzle", swizzle}, {"custom", custom}, {"inner", inner},   {"cluster", cluster}};
  }
  static AlgoConfig parse(const nlohmann::json& j) {
    AlgoConfig c;
    c.id = j.at("id").get<std::int32_t>();
    c.tile = j.at("tile").get<std::uint32_t>();
    c.stages = j.at("stages").get<std::uint32_t>();
    c.splitk = j.at("splitk").get<std::int32_t>();
    c.reduction = j.at("reduction").get<std::uint32_t>();
    c.swizzle = j.at("swizzle").get<std::uint32_t>();
    c.custom = j.at("custom").get<std::uint32_t>();
    c.inner = j.at("inner").get<std::uint16_t>();
    c.cluster = j.at("cluster").get<std::uint16_t>();
    return c;
  }
  std::string describe() const {
    return "algo " + std::to_string(id) + " tile " + std::to_string(tile) + " stages " + std::to_string(stages) +
           " split-k " + std::to_string(splitk) + " swizzle " + std::to_string(swizzle) + " cluster " +
           std::to_string(cluster);
  }
};

// Up to this many rows (one 64-row tile) 16-bit GEMMs of dependent-launch plans run our small-batch GEMM.
// Measured (session 21): with it the whole chain of a vit_base forward at 197 rows was 13-18% slower
// (the kernel alone takes 1.3-1.6x cuBLASLt's time there); with the class-token GEMMs of the last block
// only, b8 -1.0%, b16 -2.4%, b32 -0.8%, b64 0.
constexpr std::int64_t kSmallGemmMaxRows = 64;
// Above kSmallGemmMaxRows and up to this many rows (batch 1 of vit_base and the like: 197 rows), our
// small GEMM is one of the forward check's alternatives (small_checkable_): tuning keeps it only where
// the whole forward, run with dependent launches, is faster with it. Forced on vit_base b1's proj and
// patch embedding: 0.373 ms against 0.378-0.380 on the same tunings (run479, session 41); forced on proj,
// vit_small b1 +5% and vit_base b4 +7% (session 34), so neither a row count nor a shape decides. As the
// check's alternative (run480): kept for vit_small b1's proj (-0.8%) and in one of two vit_base tunings,
// never at b2 or b4. vit_large's 577-row GEMMs were 1.8-3.1x nvjet's chain (session 32): not offered.
constexpr std::int64_t kSmallGemmCheckMaxRows = 256;
// Up to this many rows 16-bit GEMMs run our few-row kernel (gemv.cuh) instead of cuBLASLt: the last
// block's class-token GEMMs at batches 1-4. Measured (run440-441, three alternating rounds against
// VITRT_GEMV_ROWS=0): vit_small b1 -1.0 to -1.3%, b4 -0.9 / 0%; vit_base b1 -1.5% on one machine and level
// on another, b2 -0.2 to -0.7%, b4 level; vit_large b1 level. At 8 and 16 rows our small GEMM's dependent
// launches are faster (vit_base b8 +1.4 to +3%, b16 +1.8 to +6% with this kernel there).
constexpr std::int64_t kGemv16BitMaxRows = 4;

const char* compute_name(cublasComputeType_t c) { return c == CUBLAS_COMPUTE_32F_FAST_TF32 ? "tf32" : "fp32acc"; }

// The GEMM's output tiles of 128 x 128 (our warp-specialized GEMM's ping-pong tile).
std::int64_t output_tiles(const LinearArgs& a) { return (a.rows + 127) / 128 * ((a.w->out + 127) / 128); }

}  // namespace

// VITRT_EXACT_GELU=1: 16-bit outputs get timm's exact GELU too, from our warp-specialized GEMM's epilogue
// or from cuBLASLt's bias-only GEMM and our GELU pass, whichever the tuner timed faster, instead of
// cuBLASLt's GELU epilogue (the tanh form; see the constructor).
bool exact_gelu_16bit() {
  static const bool on = env_integer("VITRT_EXACT_GELU", 0, 1, "0 or 1").value_or(0) == 1;
  return on;
}

bool tile_variants_on() {
  static const bool on = env_integer("VITRT_TUNE_TILES", 0, 1, "0 or 1").value_or(1) == 1;
  return on;
}

int gemm_ws_mode() {
  static const int mode = static_cast<int>(env_integer("VITRT_GEMM_WS", 0, 2, "0, 1 or 2").value_or(1));
  return mode;
}

// Measurement only: VITRT_GEMM_WS_VARIANT=V runs every GEMM that variant V of our warp-specialized GEMM
// takes on it, untimed (gemm_ws.cuh numbers them: 3 = 64-row tiles, 10 + P / 30 + P = a residual added in
// P parts of K on 128- / 64-row tiles); 0 or unset: none.
int gemm_ws_forced_variant() {
  static const int v = static_cast<int>(
      env_integer("VITRT_GEMM_WS_VARIANT", 0, kGemmWsResidualSplit64 + kGemmWsMaxParts, "a variant number").value_or(0));
  return v;
}

std::int64_t gemv_max_rows_16bit() {
  static const std::int64_t rows =
      env_integer("VITRT_GEMV_ROWS", 0, kGemvMaxRows, "a row count from 0 to 16").value_or(kGemv16BitMaxRows);
  return rows;
}

std::int64_t small_gemm_max_rows() {
  static const std::int64_t rows =
      env_integer("VITRT_SMALL_GEMM", 0, std::numeric_limits<long long>::max(), "a row count (0: never)")
          .value_or(kSmallGemmMaxRows);
  return rows;
}

// The KxN sizes (inner, output) listed in environment variable `name` as KxN[,KxN...]; empty when unset.
std::vector<std::pair<std::int64_t, std::int64_t>> env_shapes(const char* name) {
  std::vector<std::pair<std::int64_t, std::int64_t>> v;
  const char* env = std::getenv(name);
  for (const std::string_view listed : comma_items(env ? env : "")) {
    const std::string item(listed);
    long long k = 0, n = 0;
    char tail = 0;
    VITRT_CHECK(std::sscanf(item.c_str(), "%lldx%lld%c", &k, &n, &tail) == 2, name,
                " must list KxN sizes separated by commas, not '", env, "'");
    v.emplace_back(k, n);
  }
  return v;
}
bool shape_listed(const std::vector<std::pair<std::int64_t, std::int64_t>>& shapes, std::int64_t in,
                  std::int64_t out) {
  return shapes.empty() || std::find(shapes.begin(), shapes.end(), std::make_pair(in, out)) != shapes.end();
}

// Measurement only: VITRT_SMALL_GEMM_SHAPES=KxN[,KxN...] limits the small GEMM to GEMMs of those inner /
// output sizes (unset: any), to find which GEMMs of a forward gain from it.
bool small_gemm_shape_allowed(std::int64_t in, std::int64_t out) {
  static const auto shapes = env_shapes("VITRT_SMALL_GEMM_SHAPES");
  return shape_listed(shapes, in, out);
}
// Measurement only: VITRT_GEMM_WS_SHAPES limits VITRT_GEMM_WS_VARIANT alike.
bool ws_forced_shape_allowed(std::int64_t in, std::int64_t out) {
  static const auto shapes = env_shapes("VITRT_GEMM_WS_SHAPES");
  return shape_listed(shapes, in, out);
}

LinearOp::LinearOp(cublasLtHandle_t lt, const LinearArgs& a, const void* weight, const void* bias, Precision precision,
                   const GemmContext& ctx)
    : weight_(weight),
      beta_(a.accumulate ? 1.0f : 0.0f),
      post_(a.epilogue),
      bias_(bias),
      arch_(ctx.arch),
      act_(a.epilogue),
      sm_count_(ctx.sm_count) {
  const auto M = static_cast<std::uint64_t>(a.rows), K = static_cast<std::uint64_t>(a.w->in),
             N = static_cast<std::uint64_t>(a.w->out);
  // fp32 inputs run in fp32, or TF32 when the session asked for it (except full_fp32 GEMMs); 16-bit
  // inputs accumulate in fp32.
  const bool tf32 = a.src_dt == DT::f32 && precision == Precision::tf32 && !a.full_fp32;
  compute_ = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc_, compute_, CUDA_R_32F));
  const cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof(t)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof(n)));
  // GELU: for fp32 outputs the exact erf form, as a pass after the GEMM (or our TF32 GEMM's epilogue).
  // For 16-bit outputs by default cuBLASLt's GELU epilogue, fused, which is the tanh form, not timm's
  // exact erf form (`gemm_ws 0 0 0 gelu_probe`, run344: of 4,096 bf16 inputs in [-8, 8), 2,472 outputs
  // equal the exact GELU rounded to bf16 and 3,205 the tanh form's. For x <= -2 it is up to 4.95e-4 from
  // the exact value, at x = -2.70, where rounding alone would be 1.2e-4. It returned 0 at x = -5 and
  // below, where the exact value is -1.4e-6 at -5.) VITRT_EXACT_GELU=1 computes
  // the exact form: our warp-specialized GEMM's epilogue or cuBLASLt's bias-only GEMM and the pass,
  // whichever the tuner timed faster (session 28: 2-6% of a vit_base forward). It is not the default:
  // with it, vit_base bf16 agreed with PyTorch fp32 on 98.63% of tools/verify_torch.py's 512 inputs,
  // under that check's 99% (the tanh form: 99.22%), at the same relative error (run355-356).
  // QuickGELU always runs as a pass after the GEMM.
  const bool fuse_gelu = a.epilogue == Epilogue::gelu_erf && a.dst_dt != DT::f32 && !exact_gelu_16bit();
  if (fuse_gelu) post_ = Epilogue::none;
  const cublasLtEpilogue_t epi = fuse_gelu ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_BIAS;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
  in_t_ = cuda_type(a.src_dt);
  out_t_ = cuda_type(a.dst_dt);
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a_, in_t_, K, N, K));  // W^T viewed column-major: K x N, op T
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b_, in_t_, K, M, static_cast<std::int64_t>(a.src_ld)));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c_, out_t_, N, M, static_cast<std::int64_t>(a.dst_ld)));

  // Our fused kernel applies to TF32 GEMMs whose activation would otherwise be a separate pass; their
  // keys name that activation (the cuBLASLt candidates are timed with the pass included).
  own_eligible_ = tf32 && post_ != Epilogue::none && !a.accumulate && a.dst_dt == DT::f32;
  // Our warp-specialized GEMM: 16-bit in and out, no residual, with the exact GELU this session computes
  // (where it saves the pass). Bias-only GEMMs (qkv) only with VITRT_GEMM_WS=2: tuning timed it up to 5%
  // faster than cuBLASLt's heuristic pick there, but in the forward it was level at b64 and b128 and
  // 0.6-1.3% slower at b256 (run362).
  // GEMMs whose output has fewer 128 x 128 tiles than the GPU has SMs, 16-bit in: its variants as
  // alternatives for the forward check of tuning sessions (ws_checked_). Residual GEMMs (fp32 residual
  // added): the split-K variants (session 44: vit_base's fc2 at b1 on 8 parts made the forward 3.9%
  // faster, vit_large's on 3 parts 1.6%, where alone and flushed they were level with cuBLASLt or slower;
  // the proj GEMMs were slower both ways). 16-bit out with a bias and no activation or cuBLASLt's GELU:
  // the ping-pong tiles, with the same tanh-form GELU on 64-row tiles (session 45).
  const int ws_mode = gemm_ws_mode();
  const bool residual_form =
      a.src_dt != DT::f32 && a.dst_dt == DT::f32 && a.accumulate && a.epilogue == Epilogue::none;
  const bool bias_form = a.src_dt != DT::f32 && a.dst_dt == a.src_dt && !a.accumulate &&
                         (a.epilogue == Epilogue::none || fuse_gelu);
  gelu_tanh_ = fuse_gelu;
  ws_checked_ = ws_mode >= 1 && (residual_form || bias_form) && output_tiles(a) < ctx.sm_count;
  const bool ws_form = (a.src_dt != DT::f32 && a.dst_dt == a.src_dt && !a.accumulate &&
                        ((ws_mode >= 1 && a.epilogue == Epilogue::gelu_erf && !fuse_gelu) ||
                         (ws_mode == 2 && a.epilogue == Epilogue::none))) ||
                       ws_checked_;
  if (ws_form) ws_variants_ = ws_candidates(a);
  // Keys name an activation pass that follows cuBLASLt's GEMM (its candidates are timed with it).
  key_ = "gemm rows=" + std::to_string(M) + " in=" + std::to_string(K) + " out=" + std::to_string(N) +
         " " + dt_name(a.src_dt) + "->" + dt_name(a.dst_dt) + " " + compute_name(compute_) +
         (fuse_gelu ? " gelu_bias" : " bias") + (a.accumulate ? " beta=1" : " beta=0") +
         " ld=" + std::to_string(a.src_ld) + "," + std::to_string(a.dst_ld) +
         (post_ == Epilogue::gelu_erf     ? " +gelu"
          : post_ == Epilogue::quick_gelu ? " +quick_gelu"
                                          : "");
  // A few rows: our kernel, by row count (linear.h); nothing to tune. fp32 rows in fp32 without an
  // activation pass; 16-bit rows up to gemv_max_rows_16bit(), with the activation in its epilogue.
  const bool gemv_fp32 = a.src_dt == DT::f32 && a.dst_dt == DT::f32 && compute_ == CUBLAS_COMPUTE_32F &&
                         post_ == Epilogue::none;
  const bool gemv_16bit = a.src_dt != DT::f32 && a.rows <= gemv_max_rows_16bit();
  gemv_ = (gemv_fp32 || gemv_16bit) && gemv_takes(gemv_params(a));
  if (gemv_) {
    ctx.tuner->report({key_,
                       std::string("vitrt gemv ") + dt_name(a.src_dt) +
                           " (few rows: chosen by the row count, not timed)",
                       0.0, 0.0, 0, false});
    return;
  }
  // Measurement only (VITRT_GEMM_WS_VARIANT, VITRT_GEMM_WS_SHAPES): the 16-bit GEMMs a variant of our
  // warp-specialized GEMM takes run on it, untimed, whatever the cache says.
  if (const int v = gemm_ws_forced_variant(); v > 0 && a.src_dt != DT::f32 && ws_forced_shape_allowed(a.w->in, a.w->out) &&
                                              gemm_ws_takes(ws_params(a, v), arch_, v)) {
    ws_variant_ = v;
    ctx.tuner->report({key_, gemm_ws_variant_name(ws_variant_) + " (VITRT_GEMM_WS_VARIANT: not timed)", 0.0, 0.0, 0,
                       false});
    return;
  }
  const bool small_takes = a.src_dt != DT::f32 && small_gemm_shape_allowed(a.w->in, a.w->out) &&
                          !gemm_small_variants(small_params(a, 0), arch_).empty();
  small_eligible_ = small_takes && ctx.dependent && a.rows <= small_gemm_max_rows();
  static const bool small_check = env_integer("VITRT_TUNE_FORWARD_SMALL", 0, 1, "0 or 1").value_or(1) == 1;
  small_checkable_ = small_takes && !small_eligible_ && a.rows <= kSmallGemmCheckMaxRows &&
                     small_gemm_max_rows() > 0 && small_check;
  const std::string& key = key_;
  TuneCache& tuner = *ctx.tuner;
  if (tuner.tuning() && !tuner.find(key)) tune(lt, a, ctx, key);
  if (const nlohmann::json* e = tuner.find(key); e && restore(lt, *e, ctx.workspace_bytes)) {
    // The variant of one of our kernels the entry names under `field` (0: none).
    const auto cached = [e](const char* field) {
      const auto it = e->find(field);
      return it != e->end() && it->is_number_integer() ? it->get<int>() : 0;
    };
    if (const int v = cached("own"); own_eligible_ && v > 0 && gemm_tf32_takes(own_params(a, v), arch_, v))
      own_variant_ = v;
    if (const int v = cached("ws"); !ws_variants_.empty() && v > 0 && gemm_ws_takes(ws_params(a, v), arch_, v)) {
      ws_variant_ = v;
      ws_w_first_ = e->value("w_first", false);
    }
    const int small = cached("small");
    const bool small_ok = small > 0 && gemm_small_takes(small_params(a, small), arch_, small);
    if (small_eligible_)
      small_variant_ = small_ok ? small : gemm_small_default_variant(small_params(a, 0), arch_, ctx.sm_count);
    if (small_checkable_ && small_ok) {
      small_alternative_ = small;
      if (e->value("small_chosen", false)) small_variant_ = small;  // the forward check kept it
    }
    if (const auto alts = e->find("alternatives");
        alts != e->end() && alts->is_array() && !small_eligible_ && !own_variant_ &&
        (!ws_variant_ || ws_checked_))
      alternatives_.assign(alts->begin(), alts->end());
    if (small_alternative_ && !small_variant_)
      alternatives_.push_back({{"small", small_alternative_}, {"us", e->value("small_us", 0.0)}});
    tuner.report({key,
                  small_variant_ ? gemm_small_variant_name(small_variant_) + forward_check_note(*e)
                  : own_variant_ ? gemm_tf32_variant_name(own_variant_)
                  : ws_variant_  ? ws_name() + forward_check_note(*e)
                                 : AlgoConfig::of(algo_).describe() + forward_check_note(*e),
                  e->value("default_us", 0.0), e->value("us", 0.0), e->value("candidates", 0), true});
    return;
  }
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  const auto results = heuristics(lt, 1, ctx.workspace_bytes, st);
  VITRT_CHECK(!results.empty(), "cuBLASLt has no algorithm for a ", M, "x", K, "x", N, " GEMM (", dt_name(a.src_dt),
              " -> ", dt_name(a.dst_dt), "): ", cublas_status_name(st));
  algo_ = results[0].algo;
  algo_workspace_ = results[0].workspaceSize;
  if (own_eligible_) own_variant_ = gemm_tf32_default_variant(own_params(a, 0), arch_, ctx.sm_count);
  if (small_eligible_) small_variant_ = gemm_small_default_variant(small_params(a, 0), arch_, ctx.sm_count);
  tuner.note_untuned(key);
}

std::vector<cublasLtMatmulHeuristicResult_t> LinearOp::heuristics(cublasLtHandle_t lt, int count,
                                                                  std::size_t workspace_bytes,
                                                                  cublasStatus_t& status) const {
  cublasLtMatmulPreference_t pref = nullptr;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace_bytes,
                                                    sizeof(workspace_bytes)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<std::size_t>(count));
  int found = 0;
  status = cublasLtMatmulAlgoGetHeuristic(lt, desc_, a_, b_, c_, c_, pref, count, results.data(), &found);
  cublasLtMatmulPreferenceDestroy(pref);
  results.resize(status == CUBLAS_STATUS_SUCCESS ? static_cast<std::size_t>(found) : 0);
  std::erase_if(results, [](const cublasLtMatmulHeuristicResult_t& r) { return r.state != CUBLAS_STATUS_SUCCESS; });
  return results;
}

std::vector<nlohmann::json> LinearOp::heuristic_algos(cublasLtHandle_t lt, int count,
                                                      std::size_t workspace_bytes) const {
  cublasStatus_t status = CUBLAS_STATUS_SUCCESS;
  std::vector<nlohmann::json> out;
  for (const cublasLtMatmulHeuristicResult_t& r : heuristics(lt, count, workspace_bytes, status))
    out.push_back(AlgoConfig::of(r.algo).json());
  return out;
}

nlohmann::json LinearOp::algo_json() const { return AlgoConfig::of(algo_).json(); }
std::string LinearOp::algo_name() const { return AlgoConfig::of(algo_).describe(); }

bool LinearOp::use_algo(cublasLtHandle_t lt, const nlohmann::json& algo, std::size_t workspace_bytes) {
  return checked(lt, algo, workspace_bytes, algo_, algo_workspace_);
}

nlohmann::json LinearOp::choice_json(double us) const {
  if (small_by_check()) return {{"small", small_variant_}, {"us", us}};
  if (ws_variant_ > 0 && ws_w_first_) return {{"ws", ws_variant_}, {"w_first", true}, {"us", us}};
  if (ws_variant_ > 0) return {{"ws", ws_variant_}, {"us", us}};
  return {{"algo", algo_json()}, {"us", us}};
}

std::string LinearOp::choice_name() const {
  return small_variant_ ? gemm_small_variant_name(small_variant_)
         : ws_variant_  ? ws_name()
                        : algo_name();
}

bool LinearOp::use_choice(cublasLtHandle_t lt, const nlohmann::json& choice, std::size_t workspace_bytes) {
  if (const auto it = choice.find("small"); it != choice.end()) {
    if (!small_alternative_ || !it->is_number_integer() || it->get<int>() != small_alternative_) return false;
    small_variant_ = small_alternative_;
    if (ws_checked_) ws_variant_ = 0;
    return true;
  }
  if (const auto it = choice.find("ws"); it != choice.end()) {
    if (!ws_checked_ || !it->is_number_integer() ||
        std::find(ws_variants_.begin(), ws_variants_.end(), it->get<int>()) == ws_variants_.end())
      return false;
    ws_variant_ = it->get<int>();
    ws_w_first_ = choice.value("w_first", false);
    if (small_alternative_) small_variant_ = 0;
    return true;
  }
  const auto it = choice.find("algo");
  if (it == choice.end() || !use_algo(lt, *it, workspace_bytes)) return false;
  if (small_alternative_) small_variant_ = 0;
  if (ws_checked_) ws_variant_ = 0;
  return true;
}

bool LinearOp::checked(cublasLtHandle_t lt, const nlohmann::json& config, std::size_t workspace_bytes,
                       cublasLtMatmulAlgo_t& algo, std::size_t& workspace) const {
  AlgoConfig cfg;
  try {
    cfg = AlgoConfig::parse(config);
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  cublasLtMatmulAlgo_t a{};
  if (cublasLtMatmulAlgoInit(lt, compute_, CUDA_R_32F, in_t_, in_t_, out_t_, out_t_, cfg.id, &a) !=
          CUBLAS_STATUS_SUCCESS ||
      !cfg.apply(a))
    return false;
  cublasLtMatmulHeuristicResult_t check{};
  if (cublasLtMatmulAlgoCheck(lt, desc_, a_, b_, c_, c_, &a, &check) != CUBLAS_STATUS_SUCCESS ||
      check.workspaceSize > workspace_bytes)
    return false;
  algo = a;
  workspace = check.workspaceSize;
  return true;
}

bool LinearOp::restore(cublasLtHandle_t lt, const nlohmann::json& entry, std::size_t workspace_bytes) {
  const auto it = entry.find("algo");
  return it != entry.end() && checked(lt, *it, workspace_bytes, algo_, algo_workspace_);
}

void LinearOp::tune(cublasLtHandle_t lt, const LinearArgs& a, const GemmContext& ctx, const std::string& key) {
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  struct Candidate {
    cublasLtMatmulAlgo_t algo;
    std::size_t workspace;
  };
  std::vector<Candidate> cands;
  for (const auto& r : heuristics(lt, 24, ctx.workspace_bytes, st)) cands.push_back({r.algo, r.workspaceSize});
  if (cands.empty()) return;  // the heuristic path reports the error
  // Tile and cluster-shape variants of cuBLASLt's first pick that its heuristic does not list: 128 x 128
  // tiles and the 128 x 256 / 256 x 128 ones, each alone and in clusters of two along either side, with
  // the first pick's algorithm and stages and no other options (keeping the first pick's swizzle, custom
  // option and inner shape, they did not win: run395). Session 30's sweep of every configuration
  // (bench/kernels/lt_sweep.cpp) found 128 x 128 tiles in clusters of two 5-7% faster than the heuristic's
  // candidates on fc1 with the GELU epilogue; with these variants the tuner picks them for most large
  // GEMMs, and forwards of vit_base b128-b256 and vit_large b32-b128 took 1.2-3.9% less (run396).
  // VITRT_TUNE_TILES=0 leaves them out.
  const std::size_t first_tile = cands.size();
  if (tile_variants_on()) {
    const AlgoConfig first = AlgoConfig::of(cands.front().algo);
    for (const std::uint32_t tile :
         {CUBLASLT_MATMUL_TILE_128x128, CUBLASLT_MATMUL_TILE_128x256, CUBLASLT_MATMUL_TILE_256x128})
      for (const std::uint16_t cluster : {CUBLASLT_CLUSTER_SHAPE_1x1x1, CUBLASLT_CLUSTER_SHAPE_2x1x1,
                                          CUBLASLT_CLUSTER_SHAPE_1x2x1}) {
        AlgoConfig c;
        c.id = first.id;
        c.stages = first.stages;
        c.tile = tile;
        c.cluster = cluster;
        Candidate v{};
        if (!checked(lt, c.json(), ctx.workspace_bytes, v.algo, v.workspace)) continue;
        const nlohmann::json j = AlgoConfig::of(v.algo).json();
        if (std::none_of(cands.begin(), cands.end(),
                         [&](const Candidate& x) { return AlgoConfig::of(x.algo).json() == j; }))
          cands.push_back(v);
      }
  }
  const std::size_t end_tile = cands.size();
  // Split-K variants of the leading candidates when the output has too few tiles to fill the GPU
  // (small batches): K is cut in parts computed in parallel and reduced.
  if (output_tiles(a) < 2 * static_cast<std::int64_t>(ctx.sm_count)) {
    const std::size_t leading = std::min<std::size_t>(cands.size(), 6);
    for (std::size_t i = 0; i < leading; ++i) {
      int splitk_ok = 0;
      std::uint32_t schemes = 0;
      std::size_t written = 0;
      if (cublasLtMatmulAlgoCapGetAttribute(&cands[i].algo, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &splitk_ok,
                                            sizeof(splitk_ok), &written) != CUBLAS_STATUS_SUCCESS ||
          !splitk_ok)
        continue;
      cublasLtMatmulAlgoCapGetAttribute(&cands[i].algo, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK, &schemes,
                                        sizeof(schemes), &written);
      for (std::uint32_t scheme : {CUBLASLT_REDUCTION_SCHEME_INPLACE, CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE}) {
        if (!(schemes & scheme)) continue;
        for (std::int32_t parts : {2, 3, 4, 6, 8, 12}) {
          if (static_cast<std::int64_t>(a.w->in) / parts < 64) break;
          cublasLtMatmulAlgo_t v = cands[i].algo;
          cublasLtMatmulHeuristicResult_t check{};
          if (!AlgoConfig::set(v, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, parts) ||
              !AlgoConfig::set(v, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, scheme) ||
              cublasLtMatmulAlgoCheck(lt, desc_, a_, b_, c_, c_, &v, &check) != CUBLAS_STATUS_SUCCESS ||
              check.workspaceSize > ctx.workspace_bytes)
            continue;
          cands.push_back({v, check.workspaceSize});
        }
      }
    }
  }
  // Our fused TF32 kernel's variants follow cuBLASLt's candidates (those run with the activation pass),
  // then the warp-specialized GEMM's, then the small-batch GEMM's.
  const std::vector<int> own = own_eligible_ ? gemm_tf32_variants(own_params(a, 0), arch_) : std::vector<int>{};
  const std::vector<int>& wsv = ws_variants_;
  const bool time_small = small_eligible_ || small_checkable_;
  const std::vector<int> small =
      time_small ? gemm_small_variants(small_params(a, 0), arch_) : std::vector<int>{};
  const std::size_t first_ws = cands.size() + own.size(), first_small = first_ws + wsv.size();
  const CandidateTimes t = time_candidates(
      first_small + small.size(),
      [&](std::size_t i) {
        if (i >= first_small) {
          gemm_small(small_params(a, small[i - first_small]), arch_, ctx.stream);
          return true;
        }
        if (i >= first_ws) {
          gemm_ws(ws_params(a, wsv[i - first_ws]), arch_, ctx.stream);
          return true;
        }
        if (i >= cands.size()) {
          GemmTf32Params p = own_params(a, own[i - cands.size()]);
          gemm_tf32(p, arch_, ctx.stream);
          return true;
        }
        return run_cublaslt(lt, cands[i].algo, cands[i].workspace, a, ctx.workspace, ctx.stream) ==
               CUBLAS_STATUS_SUCCESS;
      },
      ctx.stream, ctx.flush);
  // Where the small GEMM is only the forward check's alternative, the pick comes from the other candidates.
  const int pick = small_checkable_ ? fastest(t, 0, first_small) : t.best;
  if (pick < 0) return;
  // The fastest cuBLASLt candidate is kept in the entry even when our kernel wins (the fallback where
  // that kernel is not built in).
  const auto best_lt = static_cast<std::size_t>(std::max(fastest(t, 0, cands.size()), 0));
  const auto best = static_cast<std::size_t>(pick);
  nlohmann::json entry = {{"algo", AlgoConfig::of(cands[best_lt].algo).json()},
                          {"us", t.us[best]},
                          {"default_us", t.us[0]},  // cuBLASLt's first pick
                          {"candidates", first_small}};
  if (best >= cands.size() && best < first_ws) {
    entry["own"] = own[best - cands.size()];
    entry["cublaslt_us"] = t.us[best_lt];
  }
  if (best >= first_ws && best < first_small) {
    entry["ws"] = wsv[best - first_ws];
    entry["cublaslt_us"] = t.us[best_lt];
  }
  // cuBLASLt's candidates within 15% of a cuBLASLt pick (near_ties): flushed and alone they
  // are near-ties, and in the forward they need not be (three tunings of vit_base at batch 1 gave forwards of
  // 0.432-0.443 ms; session 29). A tuning session times the forward with each (refine_tuning).
  // Where one of the tile variants won, the fastest other candidate is an alternative however far behind
  // alone: at vit_base b32 the variants' forward was 1-2% slower than the heuristic's pick (run396).
  nlohmann::json alts = nlohmann::json::array();
  if (best < cands.size()) {
    std::vector<std::size_t> near = near_ties(t, best, cands.size());
    if (best >= first_tile && best < end_tile) {
      std::size_t other = cands.size();
      for (std::size_t i = 0; i < cands.size(); ++i)
        if ((i < first_tile || i >= end_tile) && t.us[i] > 0 &&
            (other == cands.size() || t.us[i] < t.us[other]))
          other = i;
      if (other < cands.size() && std::find(near.begin(), near.end(), other) == near.end())
        near.push_back(other);
    }
    for (std::size_t i : near)
      alts.push_back({{"algo", AlgoConfig::of(cands[i].algo).json()}, {"us", t.us[i]}});
  }
  // Our variants within the same window of the pick (a cuBLASLt candidate or one of them), the fastest
  // first, up to kWsAlternatives, and where one of them won, the fastest cuBLASLt candidate:
  // alone they do not show what the forward gains (session 44: vit_base's fc2 at b1 was fastest alone on
  // 9 parts, and the forward faster on 8). Each of ours also with W's first stages copied before the wait
  // for the kernel before ("w_first"): that gains after a kernel that lets its dependents start early and
  // costs after one that does not (session 45: vit_base b1 0.339 -> 0.334 ms, vit_large b1 1.218 -> 1.227),
  // and only the forward shows which comes before.
  if (ws_checked_) {
    CandidateTimes ws_t = t;
    for (std::size_t i = 0; i < ws_t.us.size(); ++i)
      if (i != best && (i < first_ws || i >= first_small)) ws_t.us[i] = 0;
    std::vector<std::size_t> ws_near = near_ties(ws_t, best, ws_t.us.size());
    if (ws_near.size() > kWsAlternatives) ws_near.resize(kWsAlternatives);
    if (best >= first_ws && best < first_small)
      alts.push_back({{"ws", wsv[best - first_ws]}, {"w_first", true}, {"us", t.us[best]}});
    for (std::size_t i : ws_near) {
      alts.push_back({{"ws", wsv[i - first_ws]}, {"us", t.us[i]}});
      alts.push_back({{"ws", wsv[i - first_ws]}, {"w_first", true}, {"us", t.us[i]}});
    }
    if (best >= first_ws && best < first_small)
      alts.push_back({{"algo", AlgoConfig::of(cands[best_lt].algo).json()}, {"us", t.us[best_lt]}});
  }
  if (!alts.empty()) entry["alternatives"] = std::move(alts);
  // The small GEMM's fastest variant, timed alone (its launch overlap is not part of that time).
  if (const int best_small = fastest(t, first_small, t.us.size()); best_small >= 0) {
    entry["small"] = small[static_cast<std::size_t>(best_small) - first_small];
    entry["small_us"] = t.us[static_cast<std::size_t>(best_small)];
  }
  ctx.tuner->put(key, std::move(entry));
}

GemmTf32Params LinearOp::own_params(const LinearArgs& a, int variant) const {
  GemmTf32Params p;
  p.a = static_cast<const float*>(a.src);
  p.lda = a.src_ld;
  p.w = static_cast<const float*>(own_weight_ ? own_weight_ : weight_);
  p.bias = static_cast<const float*>(bias_);
  p.d = static_cast<float*>(a.dst);
  p.ldd = a.dst_ld;
  p.rows = a.rows;
  p.in = a.w->in;
  p.out = a.w->out;
  p.act = post_;
  p.variant = variant;
  return p;
}

// The operands our GEMMs' launches share (their parameter structs name them alike).
template <typename P>
P LinearOp::operands(const LinearArgs& a) const {
  P p;
  p.a = a.src;
  p.lda = a.src_ld;
  p.w = weight_;
  p.bias = bias_;
  p.d = a.dst;
  p.ldd = a.dst_ld;
  p.rows = a.rows;
  p.in = a.w->in;
  p.out = a.w->out;
  p.act = act_;  // the few-row kernel takes fp32 GEMMs only without an activation (the constructor)
  return p;
}

GemmSmallParams LinearOp::small_params(const LinearArgs& a, int variant) const {
  GemmSmallParams p = operands<GemmSmallParams>(a);
  p.variant = variant;
  p.in_dt = a.src_dt;
  p.out_dt = a.dst_dt;
  p.accumulate = a.accumulate;
  return p;
}

std::string LinearOp::ws_name() const {
  return gemm_ws_variant_name(ws_variant_) + (ws_w_first_ ? ", W copied first" : "");
}

GemmWsParams LinearOp::ws_params(const LinearArgs& a, int variant) const {
  GemmWsParams p = operands<GemmWsParams>(a);
  p.variant = variant;
  p.dt = a.src_dt;
  p.accumulate = a.accumulate;
  p.gelu_tanh = gelu_tanh_;
  p.w_first = ws_w_first_;
  p.sm_count = sm_count_;
  return p;
}

std::vector<int> LinearOp::ws_candidates(const LinearArgs& a) const {
  const GemmWsParams p = ws_params(a, 0);
  std::vector<int> v = gemm_ws_variants(p, arch_);
  if (ws_checked_) {  // ping-pong tiles with no second wave of blocks
    std::erase_if(v, [&](int variant) { return gemm_ws_work_items(p, variant) > sm_count_ || variant == kGemmWsCoop; });
  }
  return v;
}

LinearOp::~LinearOp() {
  if (c_) cublasLtMatrixLayoutDestroy(c_);
  if (b_) cublasLtMatrixLayoutDestroy(b_);
  if (a_) cublasLtMatrixLayoutDestroy(a_);
  if (desc_) cublasLtMatmulDescDestroy(desc_);
}

cublasStatus_t LinearOp::matmul(cublasLtHandle_t lt, const cublasLtMatmulAlgo_t& algo, std::size_t algo_ws,
                                const void* src, void* dst, void* workspace, cudaStream_t s) const {
  const float alpha = 1.0f;
  return cublasLtMatmul(lt, desc_, &alpha, weight_, a_, src, b_, &beta_, dst, c_, dst, c_, &algo, workspace, algo_ws,
                        s);
}

GemvParams LinearOp::gemv_params(const LinearArgs& a) const {
  GemvParams p = operands<GemvParams>(a);
  p.in_dt = a.src_dt;
  p.out_dt = a.dst_dt;
  p.accumulate = a.accumulate;
  return p;
}

void LinearOp::execute(cublasLtHandle_t lt, const LinearArgs& a, void* workspace, cudaStream_t s) const {
  if (gemv_) {
    gemv(gemv_params(a), s);  // checks that it takes these buffers
    return;
  }
  if (small_variant_ > 0) {
    gemm_small(small_params(a, small_variant_), arch_, s);  // checks that the variant takes these buffers
    return;
  }
  if (own_variant_ > 0) {
    gemm_tf32(own_params(a, own_variant_), arch_, s);  // checks that the variant takes these buffers
    return;
  }
  if (ws_variant_ > 0) {
    gemm_ws(ws_params(a, ws_variant_), arch_, s);  // checks that the variant takes these buffers
    return;
  }
  CUBLAS_CHECK(run_cublaslt(lt, algo_, algo_workspace_, a, workspace, s));
}

cublasStatus_t LinearOp::run_cublaslt(cublasLtHandle_t lt, const cublasLtMatmulAlgo_t& algo, std::size_t algo_ws,
                                      const LinearArgs& a, void* workspace, cudaStream_t s) const {
  const cublasStatus_t st = matmul(lt, algo, algo_ws, a.src, a.dst, workspace, s);
  if (st == CUBLAS_STATUS_SUCCESS && post_ != Epilogue::none)
    activation({a.dst, a.rows, a.w->out, a.dst_ld, a.dst_dt, post_}, s);
  return st;
}

}  // namespace vitrt::cuda

// The library's instantiations of the warp-specialized 16-bit GEMM (gemm_ws.cuh, gemm_ws_kernel.cuh):
// no clusters; bias or bias + exact GELU (on 64-row tiles also the tanh form) stored through one
// TMA-store buffer per consumer warpgroup, or the fp32 residual added by TMA from two buffers, with K
// optionally split; tiles of 128 or 64 rows per consumer.
#include "backend/cuda/gemm_ws.cuh"

#include <cuda.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "backend/cuda/cuda_check.h"
#include "backend/cuda/gemm_ws_kernel.cuh"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tensor_map.h"

namespace vitrt::cuda {
namespace {

#ifdef VITRT_CUDA_SM90A
constexpr bool kSm90aBuild = true;  // the kernels have bodies (sm_90a code is compiled in)
#else
constexpr bool kSm90aBuild = false;
#endif

// Epilogue buffers per consumer: with one, a fourth stage fits the coop tile (bias, GELU); the residual
// variants keep two (5 stages), which ran fc2 at 577 rows split three ways in 12.7 us back to back where
// one buffer and 6 stages took 13.6 (run505).
constexpr int kBuffers = 1, kResidualBuffers = 2;

// The residual variants' parts of K (0: not a residual variant), and whether their tiles are 64 rows.
int residual_parts(int variant) {
  for (const int first : {kGemmWsResidualSplit, kGemmWsResidualSplit64})
    if (variant > first && variant <= first + kGemmWsMaxParts) return variant - first;
  return 0;
}
bool residual_variant(int variant) { return residual_parts(variant) > 0; }
bool rows64(int variant) { return variant == kGemmWsPingPong64 || variant > kGemmWsResidualSplit64; }
// Rows per output tile.
int tile_rows(int variant) { return variant == kGemmWsCoop ? 256 : rows64(variant) ? 64 : 128; }

template <typename T, bool Coop, ws::Epi E, int NB = kBuffers, int R = 2>
void launch(const GemmWsParams& p, cudaStream_t s, int parts = 1) {
  constexpr int S = ws::fit_stages(Coop, R, E, NB), bytes = ws::smem_bytes(Coop, R, S, E, NB);
  constexpr auto kernel = ws::gemm_ws_kernel<T, Coop, R, S, E, 1, NB, false>;
  allow_dynamic_smem(kernel, bytes);
  const int blocks = p.sm_count > 0 ? p.sm_count : resident_blocks(kernel, ws::kThreads, bytes);
  ws::Args args = ws::make_args(Coop, R, E, 1, p.a, p.lda, p.w, p.bias, p.d, p.ldd, p.dt, p.rows, p.out, p.in, 0,
                                nullptr, parts);
  args.early = 1 | (p.w_first ? 2 : 0);  // the next kernel may always launch early
  launch_dependent(Pdl::gemm, kernel, dim3(static_cast<unsigned>(std::min(blocks, args.tiles * parts))),
                   dim3(ws::kThreads), bytes, s, args);
}

template <typename T>
void launch_type(const GemmWsParams& p, cudaStream_t s) {
  const bool gelu = p.act == Epilogue::gelu_erf;
  if (residual_variant(p.variant)) {
    if (rows64(p.variant)) launch<T, false, ws::Epi::residual_tma, kResidualBuffers, 1>(p, s, residual_parts(p.variant));
    else launch<T, false, ws::Epi::residual_tma, kResidualBuffers>(p, s, residual_parts(p.variant));
  } else if (p.variant == kGemmWsPingPong64) {
    if (gelu && p.gelu_tanh) launch<T, false, ws::Epi::gelu_tanh_tma, kBuffers, 1>(p, s);
    else if (gelu) launch<T, false, ws::Epi::gelu_tma, kBuffers, 1>(p, s);
    else launch<T, false, ws::Epi::bias_tma, kBuffers, 1>(p, s);
  } else if (p.variant == kGemmWsCoop) {
    if (gelu) launch<T, true, ws::Epi::gelu_tma>(p, s);
    else launch<T, true, ws::Epi::bias_tma>(p, s);
  } else {
    if (gelu) launch<T, false, ws::Epi::gelu_tma>(p, s);
    else launch<T, false, ws::Epi::bias_tma>(p, s);
  }
}

}  // namespace

bool gemm_ws_takes(const GemmWsParams& p, int arch, int variant) {
  const bool residual = residual_variant(variant);
  const std::int64_t bm = tile_rows(variant), parts = residual ? residual_parts(variant) : 1;
  const bool form = residual ? p.accumulate && p.act == Epilogue::none && parts <= p.in / ws::kBK &&
                                   p.ldd % 4 == 0 && aligned(p.bias, 8)
                             : (variant == kGemmWsCoop || variant == kGemmWsPingPong || variant == kGemmWsPingPong64) &&
                                   !p.accumulate && p.ldd % 8 == 0 && aligned(p.bias, 4) &&
                                   (p.act == Epilogue::none || p.act == Epilogue::gelu_erf) &&
                                   (!p.gelu_tanh || variant == kGemmWsPingPong64);
  return kSm90aBuild && arch == 90 && form && (p.dt == DT::f16 || p.dt == DT::bf16) && p.rows > 0 &&
         p.rows <= INT_MAX - 256 && p.in > 0 && p.in % ws::kBK == 0 && p.out > 0 && p.out % 128 == 0 &&
         (p.rows + bm - 1) / bm * (p.out / 128) * parts <= INT_MAX && p.lda >= p.in && p.lda % 8 == 0 &&
         p.ldd >= p.out && aligned(p.a, 16) && aligned(p.w, 16) && aligned(p.d, 16) && p.bias != nullptr;
}

std::vector<int> gemm_ws_variants(const GemmWsParams& p, int arch) {
  std::vector<int> v;
  for (int variant : {kGemmWsCoop, kGemmWsPingPong, kGemmWsPingPong64})
    if (gemm_ws_takes(p, arch, variant)) v.push_back(variant);
  for (const int first : {kGemmWsResidualSplit, kGemmWsResidualSplit64})
    for (int parts = 1; parts <= kGemmWsMaxParts; ++parts)
      if (gemm_ws_takes(p, arch, first + parts)) v.push_back(first + parts);
  return v;
}

std::int64_t gemm_ws_work_items(const GemmWsParams& p, int variant) {
  return (p.rows + tile_rows(variant) - 1) / tile_rows(variant) * ((p.out + 127) / 128) *
         std::max(residual_parts(variant), 1);
}

std::string gemm_ws_variant_name(int variant) {
  if (residual_variant(variant))
    return std::string("vitrt gemm ") + (rows64(variant) ? "64" : "128") + "x128 ping-pong, residual added by TMA, K in " +
           std::to_string(residual_parts(variant)) + (residual_parts(variant) == 1 ? " part" : " parts");
  switch (variant) {
    case kGemmWsCoop: return "vitrt gemm 256x128 cooperative, 4 stages";
    case kGemmWsPingPong: return "vitrt gemm 128x128 ping-pong, 6 stages";
    case kGemmWsPingPong64: return "vitrt gemm 64x128 ping-pong, 8 stages";
    default: return "vitrt gemm variant " + std::to_string(variant);
  }
}

void gemm_ws(const GemmWsParams& p, int arch, cudaStream_t s) {
  VITRT_CHECK(gemm_ws_takes(p, arch, p.variant), "16-bit GEMM: ", gemm_ws_variant_name(p.variant), " does not take a ",
              p.rows, "x", p.in, "x", p.out, " ", dt_name(p.dt), " GEMM on compute capability ", arch,
              " (it needs sm_90a, fp16 or bf16, K a multiple of 64, N of 128, 16-byte aligned rows, a bias, no "
              "activation or GELU, GELU's tanh form only on 64 x 128 tiles; the residual variants an fp32 D and bias "
              "and at most K / 64 parts)");
  if (p.dt == DT::f16) launch_type<__half>(p, s);
  else launch_type<__nv_bfloat16>(p, s);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda

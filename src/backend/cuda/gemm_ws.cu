// The library's instantiations of the warp-specialized 16-bit GEMM (gemm_ws.cuh, gemm_ws_kernel.cuh):
// no clusters, epilogue through one TMA-store buffer per consumer warpgroup, bias or bias + exact GELU.
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

constexpr int kBuffers = 1;  // epilogue buffers per consumer: with one, a fourth stage fits the coop tile

template <typename T, bool Coop, ws::Epi E>
void launch(const GemmWsParams& p, cudaStream_t s) {
  constexpr int S = ws::fit_stages(Coop, E, kBuffers), bytes = ws::smem_bytes(Coop, S, E, kBuffers);
  constexpr auto kernel = ws::gemm_ws_kernel<T, Coop, S, E, 1, kBuffers, false>;
  allow_dynamic_smem(kernel, bytes);
  const int blocks = p.sm_count > 0 ? p.sm_count : resident_blocks(kernel, ws::kThreads, bytes);
  const ws::Args args = ws::make_args(Coop, E, 1, p.a, p.lda, p.w, p.bias, p.d, p.ldd, p.dt, p.rows, p.out, p.in);
  launch_dependent(Pdl::gemm, kernel, dim3(static_cast<unsigned>(std::min(blocks, args.tiles))),
                   dim3(ws::kThreads), bytes, s, args);
}

template <typename T>
void launch_type(const GemmWsParams& p, cudaStream_t s) {
  const bool gelu = p.act == Epilogue::gelu_erf;
  if (p.variant == kGemmWsCoop) {
    if (gelu) launch<T, true, ws::Epi::gelu_tma>(p, s);
    else launch<T, true, ws::Epi::bias_tma>(p, s);
  } else {
    if (gelu) launch<T, false, ws::Epi::gelu_tma>(p, s);
    else launch<T, false, ws::Epi::bias_tma>(p, s);
  }
}

}  // namespace

bool gemm_ws_takes(const GemmWsParams& p, int arch, int variant) {
  const int bm = variant == kGemmWsCoop ? 256 : 128;
  return kSm90aBuild && arch == 90 && (variant == kGemmWsCoop || variant == kGemmWsPingPong) &&
         (p.dt == DT::f16 || p.dt == DT::bf16) && p.rows > 0 && p.rows <= INT_MAX - 256 && p.in > 0 &&
         p.in % ws::kBK == 0 && p.out > 0 && p.out % 128 == 0 && (p.rows + bm - 1) / bm * (p.out / 128) <= INT_MAX &&
         p.lda >= p.in && p.lda % 8 == 0 && p.ldd >= p.out && p.ldd % 8 == 0 && aligned(p.a, 16) && aligned(p.w, 16) &&
         aligned(p.d, 16) && p.bias != nullptr && aligned(p.bias, 4) &&
         (p.act == Epilogue::none || p.act == Epilogue::gelu_erf);
}

std::vector<int> gemm_ws_variants(const GemmWsParams& p, int arch) {
  std::vector<int> v;
  for (int variant : {kGemmWsCoop, kGemmWsPingPong})
    if (gemm_ws_takes(p, arch, variant)) v.push_back(variant);
  return v;
}

std::string gemm_ws_variant_name(int variant) {
  switch (variant) {
    case kGemmWsCoop: return "vitrt gemm 256x128 cooperative, 4 stages";
    case kGemmWsPingPong: return "vitrt gemm 128x128 ping-pong, 6 stages";
    default: return "vitrt gemm variant " + std::to_string(variant);
  }
}

void gemm_ws(const GemmWsParams& p, int arch, cudaStream_t s) {
  VITRT_CHECK(gemm_ws_takes(p, arch, p.variant), "16-bit GEMM: ", gemm_ws_variant_name(p.variant), " does not take a ",
              p.rows, "x", p.in, "x", p.out, " ", dt_name(p.dt), " GEMM on compute capability ", arch,
              " (it needs sm_90a, fp16 or bf16, K a multiple of 64, N of 128, 16-byte aligned rows, a bias, no "
              "activation or GELU)");
  if (p.dt == DT::f16) launch_type<__half>(p, s);
  else launch_type<__nv_bfloat16>(p, s);
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda

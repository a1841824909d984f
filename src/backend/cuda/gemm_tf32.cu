// Our own TF32 GEMM with the bias and activation in the epilogue (gemm_tf32.cuh), on wgmma.
// A block computes a 128 x BN tile with two consumer warpgroups of 64 rows each and one producer warp.
// K goes in tiles of 32 fp32 columns (128 bytes per row). The producer's one thread copies each k-tile
// of A and of W (whose [N, K] rows are B's columns, K-major as stored) with the tensor memory
// accelerator (TMA) into one of S shared-memory stages, 128-byte swizzled as the wgmma descriptors
// read them; rows of A past the end arrive as zeros. Stages are handed over with mbarriers: "full"
// when a stage's bytes have landed, "empty" when both warpgroups' wgmmas on it have completed. Each
// k-tile is 4 wgmma m64nBNk8 per warpgroup, both operands from shared memory; a warpgroup keeps one
// k-tile's wgmmas in flight while it issues the next.
// Epilogue from the accumulators (row g / g + 8, columns 2t, 2t + 1 of every 8): + bias, activation,
// one 8-byte store per pair (each quad of lanes writes 32 contiguous bytes of a row). The exact GELU
// takes erfc from a branch-free approximation (activation_fn.cuh): with erff the epilogue issued about
// as many instructions as the main loop, and with one block per SM nothing overlaps it.
// (A first version copied with cp.async by all 256 threads and a block barrier per k-tile: at batch
// 64 of vit_base's fc1 it took 253-298 us against 233 for cuBLASLt + the GELU pass.)
#include "backend/cuda/gemm_tf32.cuh"

#include <cuda.h>

#include <cstdint>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tma.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kBK = 32;
static_assert(kBK * 4 == 128, "matrix_tensor_map reads boxes of 128 bytes of columns");

template <int WG, int BN, int S>
constexpr int smem_bytes() {
  return 1024 + S * (64 * WG + BN) * kBK * 4 + 2 * S * 8;  // alignment slack, S stages of A and B, barriers
}

#ifdef VITRT_WGMMA_DEVICE

// D[64 x N] += A[64 x 8] B[8 x N], TF32, A and B K-major in shared memory (descriptors a, b).
// D is overwritten when !accumulate.
__device__ __forceinline__ void wgmma_tf32_ss(float (&d)[16][4], std::uint64_t a, std::uint64_t b, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 " VITRT_GEMM_LIST64 ", %64, %65, p, 1, 1;\n}\n"
               : VITRT_GEMM_D64(0)
               : "l"(a), "l"(b), "r"(accumulate));
}
__device__ __forceinline__ void wgmma_tf32_ss(float (&d)[32][4], std::uint64_t a, std::uint64_t b, int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n256k8.f32.tf32.tf32 " VITRT_GEMM_LIST128 ", %128, %129, p, 1, 1;\n}\n"
               : VITRT_GEMM_D64(0), VITRT_GEMM_D64(16)
               : "l"(a), "l"(b), "r"(accumulate));
}
#endif  // VITRT_WGMMA_DEVICE

// What a launch passes: the tensor maps of A and W (TMA descriptors) and the epilogue's operands.
struct GemmTf32Args {
  CUtensorMap a_map, w_map;
  const float* bias;
  float* d;
  std::int64_t ldd, rows;
  int in;
};

#ifdef VITRT_WGMMA_DEVICE
// mbarrier waits as a branch inside the PTX (tma.cuh's mbar_wait loops in C++ around one try_wait): the
// form this kernel was measured with; the other helpers are tma.cuh's.
__device__ __forceinline__ void mbar_wait_branch(unsigned bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
#endif  // VITRT_WGMMA_DEVICE

// Warps 0 .. 4 WG - 1: WG consumer warpgroups (64 rows each); warp 4 WG: the producer, one thread
// issuing TMA copies. full[s] completes when stage s has landed (the copies' byte count), empty[s] when
// every consumer warpgroup is done reading it (one arrive each, after its wgmma on it has completed).
template <int WG>
constexpr int threads() {
  return WG * 128 + 32;
}

template <int WG, int BN, int S, int MinBlocks, bool kQuick>
__global__ void __launch_bounds__(threads<WG>(), MinBlocks) gemm_tf32_kernel(const __grid_constant__ GemmTf32Args p) {
#ifdef VITRT_WGMMA_DEVICE
  constexpr int kBM = 64 * WG;
  static_assert(S >= 2 && BN % 32 == 0);
  constexpr int kABytes = kBM * kBK * 4, kStage = (kBM + BN) * kBK * 4;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned base = smem_addr(sm), bars = base + S * kStage;  // full[S], then empty[S] (8 bytes each)
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int n0 = static_cast<int>(blockIdx.x) * BN, m0 = static_cast<int>(blockIdx.y) * kBM;
  const int tiles = p.in / kBK;
  if (tid == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(bars + 8 * s, 1);
      mbar_init(bars + 8 * (S + s), WG);
    }
    mbar_init_fence();
  }
  __syncthreads();
  wait_prior_grid();  // A (and D, for its earlier readers) belong to the kernels before this one

  if (warp == 4 * WG) {  // producer
    if (lane == 0) {
      for (int kt = 0; kt < tiles; ++kt) {
        const int s = kt % S;
        if (kt >= S) mbar_wait_branch(bars + 8 * (S + s), static_cast<unsigned>((kt / S - 1) & 1));
        const unsigned full = bars + 8 * s, dst = base + static_cast<unsigned>(s * kStage);
        mbar_arrive_expect(full, kStage);
        tma_load_2d(dst, &p.a_map, kt * kBK, m0, full);  // rows past the end arrive as zeros
        tma_load_2d(dst + kABytes, &p.w_map, kt * kBK, n0, full);
      }
    }
    return;
  }

  const int wg = warp / 4;
  float d[BN / 8][4];
  for (int kt = 0; kt < tiles; ++kt) {
    const int s = kt % S;
    mbar_wait_branch(bars + 8 * s, static_cast<unsigned>((kt / S) & 1));
    const unsigned stage = base + static_cast<unsigned>(s * kStage);
    const Sw128Desc ad(stage + static_cast<unsigned>(wg * 64 * 128)), bd(stage + kABytes);
    wgmma_fence();
#pragma unroll
    for (int k8 = 0; k8 < kBK / 8; ++k8) wgmma_tf32_ss(d, ad.at(k8 * 32), bd.at(k8 * 32), kt > 0 || k8 > 0);
    wgmma_commit();
    wgmma_wait<1>();  // tile kt - 1's wgmmas are done: release its stage
    if (kt > 0 && tid % 128 == 0) mbar_arrive(bars + 8 * (S + (kt - 1) % S));
  }
  wgmma_wait<0>();
  fence_regs(d);

  // Epilogue: each thread's rows r0 and r0 + 8, columns n0 + 8 j + 2t, + 1.
  const std::int64_t r0 = m0 + wg * 64 + (warp % 4) * 16 + lane / 4;
  const int c0 = n0 + (lane % 4) * 2;
  float* const out0 = p.d + r0 * p.ldd + c0;
  float* const out1 = out0 + 8 * p.ldd;
  const float* const bias = p.bias + c0;
  const bool ok0 = r0 < p.rows, ok1 = r0 + 8 < p.rows;
  auto act = [](float v) { return kQuick ? quick_gelu(v) : gelu_erf_epilogue(v); };
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const float2 b = __ldg(reinterpret_cast<const float2*>(bias + 8 * j));
    if (ok0) *reinterpret_cast<float2*>(out0 + 8 * j) = make_float2(act(d[j][0] + b.x), act(d[j][1] + b.y));
    if (ok1) *reinterpret_cast<float2*>(out1 + 8 * j) = make_float2(act(d[j][2] + b.x), act(d[j][3] + b.y));
  }
#else
  (void)p;
#endif
}

template <int WG, int BN, int S, int MinBlocks>
void launch(const GemmTf32Params& p, cudaStream_t s) {
  constexpr int kBM = 64 * WG, bytes = smem_bytes<WG, BN, S>();
  const dim3 grid(static_cast<unsigned>(p.out / BN), static_cast<unsigned>((p.rows + kBM - 1) / kBM));
  // Boxes of 32 fp32 columns (kBK) x the tile's rows, 128-byte swizzled.
  const GemmTf32Args args{matrix_tensor_map(p.a, DT::f32, p.rows, p.in, p.lda, kBM),
                          matrix_tensor_map(p.w, DT::f32, p.out, p.in, p.in, BN),
                          p.bias,
                          p.d,
                          p.ldd,
                          p.rows,
                          p.in};
  if (p.act == Epilogue::quick_gelu) {
    allow_dynamic_smem(gemm_tf32_kernel<WG, BN, S, MinBlocks, true>, bytes);
    launch_dependent(Pdl::gemm, gemm_tf32_kernel<WG, BN, S, MinBlocks, true>, grid, threads<WG>(), bytes, s, args);
  } else {
    allow_dynamic_smem(gemm_tf32_kernel<WG, BN, S, MinBlocks, false>, bytes);
    launch_dependent(Pdl::gemm, gemm_tf32_kernel<WG, BN, S, MinBlocks, false>, grid, threads<WG>(), bytes, s, args);
  }
}

}  // namespace

bool gemm_tf32_takes(const GemmTf32Params& p, int arch, int variant) {
#ifdef VITRT_CUDA_SM90A
  const bool shape = arch == 90 && p.rows > 0 && (p.rows + 63) / 64 <= 65535 && p.in > 0 && p.in % kBK == 0 &&
                     p.out > 0 && p.out % 128 == 0 && p.lda >= p.in && p.lda % 4 == 0 && p.ldd >= p.out &&
                     p.ldd % 2 == 0 && aligned(p.a, 16) && aligned(p.w, 16) && aligned(p.d, 8) &&
                     p.bias && aligned(p.bias, 8) &&
                     (p.act == Epilogue::gelu_erf || p.act == Epilogue::quick_gelu);
  if (!shape) return false;
  const bool n256 = p.out % 256 == 0;
  return variant == kGemmTf32N128x2 || variant == kGemmTf32M64N128x3 || (n256 && variant == kGemmTf32N256) ||
         (n256 && variant == kGemmTf32M64N256x2);
#else
  (void)p;
  (void)arch;
  (void)variant;
  return false;
#endif
}

std::vector<int> gemm_tf32_variants(const GemmTf32Params& p, int arch) {
  std::vector<int> v;
  for (int variant : {kGemmTf32N256, kGemmTf32N128x2, kGemmTf32M64N256x2, kGemmTf32M64N128x3})
    if (gemm_tf32_takes(p, arch, variant)) v.push_back(variant);
  return v;
}

int gemm_tf32_default_variant(const GemmTf32Params& p, int arch, int sm_count) {
  const std::int64_t tiles = (p.rows + 127) / 128 * (p.out / 128);
  return tiles >= 8 * static_cast<std::int64_t>(sm_count) && gemm_tf32_takes(p, arch, kGemmTf32N128x2) ? kGemmTf32N128x2
                                                                                                        : 0;
}

std::string gemm_tf32_variant_name(int variant) {
  switch (variant) {
    case kGemmTf32N256: return "vitrt tf32 gemm 128x256, 4 stages";
    case kGemmTf32N128x2: return "vitrt tf32 gemm 128x128, 3 stages, 2 blocks/SM";
    case kGemmTf32M64N256x2: return "vitrt tf32 gemm 64x256, 2 stages, 2 blocks/SM";
    case kGemmTf32M64N128x3: return "vitrt tf32 gemm 64x128, 3 stages, 3 blocks/SM";
    default: return "vitrt tf32 gemm variant " + std::to_string(variant);
  }
}

void gemm_tf32(const GemmTf32Params& p, int arch, cudaStream_t s) {
  VITRT_CHECK(gemm_tf32_takes(p, arch, p.variant), "tf32 GEMM: ", gemm_tf32_variant_name(p.variant),
              " does not take a ", p.rows, "x", p.in, "x", p.out, " GEMM on compute capability ", arch,
              " (it needs sm_90a, K a multiple of 32, N of 128 or 256, aligned rows, GELU or QuickGELU)");
  switch (p.variant) {
    case kGemmTf32N256: launch<2, 256, 4, 1>(p, s); break;
    case kGemmTf32N128x2: launch<2, 128, 3, 2>(p, s); break;
    case kGemmTf32M64N256x2: launch<1, 256, 2, 2>(p, s); break;
    default: launch<1, 128, 3, 3>(p, s); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda

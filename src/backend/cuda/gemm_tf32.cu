// Our own TF32 GEMM with the bias and activation in the epilogue (gemm_tf32.cuh), on wgmma.
// A block computes a 128 x BN tile with two warpgroups of 64 rows each. K goes in tiles of 32 fp32
// columns (128 bytes per row), copied with cp.async into S shared-memory stages in the 128-byte-swizzled
// K-major layout the wgmma descriptors read (A's rows, and W's rows as B's columns: W [N, K] is K-major
// as it is stored). Each k-tile is 4 wgmma m64nBNk8 per warpgroup with both operands from shared memory.
// Pipeline: at step kt every thread waits for its copies of tile kt, then a barrier; then the copy of
// tile kt + S - 2 starts into the stage that tile kt - 2 used (every warpgroup waited for its wgmma of
// kt - 2 before the barrier: wgmma_wait<1> after issuing kt - 1), then tile kt's wgmmas are issued and
// the warpgroup waits for kt - 1's. So S - 2 tiles are in flight while one is multiplied.
// Epilogue from the accumulators (row g / g + 8, columns 2t, 2t + 1 of every 8): + bias, activation,
// one 8-byte store per pair (each quad of lanes writes 32 contiguous bytes of a row).
#include "backend/cuda/gemm_tf32.cuh"

#include <cstdint>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cp_async.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kBM = 128, kBK = 32, kThreads = 256;

template <int BN, int S>
constexpr int smem_bytes() {
  return 1024 + S * (kBM + BN) * kBK * 4;  // alignment slack, S stages of A and B tiles
}

#ifdef VITRT_WGMMA_DEVICE
// The accumulator registers d[i..i+15][0..3] as in/out operands.
#define VITRT_GEMM_D4(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define VITRT_GEMM_D16(i) VITRT_GEMM_D4(i), VITRT_GEMM_D4(i + 1), VITRT_GEMM_D4(i + 2), VITRT_GEMM_D4(i + 3)
#define VITRT_GEMM_D64(i) VITRT_GEMM_D16(i), VITRT_GEMM_D16(i + 4), VITRT_GEMM_D16(i + 8), VITRT_GEMM_D16(i + 12)
#define VITRT_GEMM_LIST64 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, " \
  "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, " \
  "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, " \
  "%59, %60, %61, %62, %63}"
#define VITRT_GEMM_LIST128 \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, " \
  "%21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, " \
  "%40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, " \
  "%59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, " \
  "%78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, " \
  "%97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, " \
  "%114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}"

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

template <int BN, int S, int MinBlocks, bool kQuick>
__global__ void __launch_bounds__(kThreads, MinBlocks) gemm_tf32_kernel(GemmTf32Params p) {
#ifdef VITRT_WGMMA_DEVICE
  static_assert(S >= 3 && BN % 32 == 0);
  constexpr int kABytes = kBM * kBK * 4, kStage = (kBM + BN) * kBK * 4;
  constexpr int kACopies = kBM * 8 / kThreads, kBCopies = BN * 8 / kThreads;  // 16-byte chunks per thread
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const int tid = threadIdx.x, wg = tid / 128, warp = (tid / 32) % 4, lane = tid % 32;
  const int n0 = static_cast<int>(blockIdx.x) * BN;
  const std::int64_t m0 = static_cast<std::int64_t>(blockIdx.y) * kBM;
  const int tiles = p.in / kBK;

  // Copies: thread tid takes chunk c = tid % 8 of rows tid / 8 + 32 j (8 threads per 128-byte row),
  // stored at chunk c ^ (row % 8); rows 32 apart share the swizzle, so only the row offset changes.
  const int c = tid % 8, r = tid / 8;
  const unsigned dst = static_cast<unsigned>(r * 128 + ((c ^ (r & 7)) << 4));
  const float* a_src[kACopies];
  bool a_ok[kACopies];
#pragma unroll
  for (int j = 0; j < kACopies; ++j) {
    const std::int64_t row = m0 + r + 32 * j;
    a_ok[j] = row < p.rows;
    a_src[j] = p.a + (a_ok[j] ? row : 0) * p.lda + c * 4;  // rows past the end: zeros, from row 0
  }
  const float* const b_src = p.w + static_cast<std::int64_t>(n0 + r) * p.in + c * 4;
  auto load = [&](int kt, int stage) {
    unsigned char* const a_s = sm + stage * kStage;
    const int k0 = kt * kBK;
#pragma unroll
    for (int j = 0; j < kACopies; ++j) cp_async16(a_s + dst + j * 4096, a_src[j] + k0, a_ok[j]);
#pragma unroll
    for (int j = 0; j < kBCopies; ++j)
      cp_async16(a_s + kABytes + dst + j * 4096, b_src + static_cast<std::int64_t>(32 * j) * p.in + k0, true);
  };

  float d[BN / 8][4];
#pragma unroll
  for (int s = 0; s < S - 2; ++s) {
    if (s < tiles) load(s, s);
    cp_async_commit();
  }
  const unsigned base = smem_addr(sm);
  for (int kt = 0; kt < tiles; ++kt) {
    cp_async_wait<S - 3>();  // this thread's copies of tile kt have landed
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    __syncthreads();
    if (kt + S - 2 < tiles) load(kt + S - 2, (kt + S - 2) % S);
    cp_async_commit();  // possibly empty: keeps one group per step for the wait count
    const unsigned stage = base + static_cast<unsigned>((kt % S) * kStage);
    const Sw128Desc ad(stage + static_cast<unsigned>(wg * 64 * 128)), bd(stage + kABytes);
    wgmma_fence();
#pragma unroll
    for (int k8 = 0; k8 < kBK / 8; ++k8) wgmma_tf32_ss(d, ad.at(k8 * 32), bd.at(k8 * 32), kt > 0 || k8 > 0);
    wgmma_commit();
    wgmma_wait<1>();
  }
  wgmma_wait<0>();
  fence_regs(d);

  const int row_in = wg * 64 + warp * 16 + lane / 4, col_in = (lane % 4) * 2;
#pragma unroll
  for (int j = 0; j < BN / 8; ++j) {
    const int col = n0 + 8 * j + col_in;
    const float2 bias = p.bias ? *reinterpret_cast<const float2*>(p.bias + col) : make_float2(0.0f, 0.0f);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const std::int64_t row = m0 + row_in + 8 * h;
      if (row < p.rows)
        *reinterpret_cast<float2*>(p.d + row * p.ldd + col) =
            make_float2(activate<kQuick>(d[j][2 * h] + bias.x), activate<kQuick>(d[j][2 * h + 1] + bias.y));
    }
  }
#else
  (void)p;
#endif
}

template <int BN, int S, int MinBlocks>
void launch(const GemmTf32Params& p, cudaStream_t s) {
  constexpr int bytes = smem_bytes<BN, S>();
  const dim3 grid(static_cast<unsigned>(p.out / BN), static_cast<unsigned>((p.rows + kBM - 1) / kBM));
  if (p.act == Epilogue::quick_gelu) {
    allow_dynamic_smem(gemm_tf32_kernel<BN, S, MinBlocks, true>, bytes);
    gemm_tf32_kernel<BN, S, MinBlocks, true><<<grid, kThreads, bytes, s>>>(p);
  } else {
    allow_dynamic_smem(gemm_tf32_kernel<BN, S, MinBlocks, false>, bytes);
    gemm_tf32_kernel<BN, S, MinBlocks, false><<<grid, kThreads, bytes, s>>>(p);
  }
}

bool aligned(const void* ptr, std::uintptr_t bytes) { return reinterpret_cast<std::uintptr_t>(ptr) % bytes == 0; }

}  // namespace

bool gemm_tf32_takes(const GemmTf32Params& p, int arch, int variant) {
#ifdef VITRT_CUDA_SM90A
  const bool shape = arch == 90 && p.rows > 0 && (p.rows + kBM - 1) / kBM <= 65535 && p.in > 0 && p.in % kBK == 0 &&
                     p.out > 0 && p.out % 128 == 0 && p.lda >= p.in && p.lda % 4 == 0 && p.ldd >= p.out &&
                     p.ldd % 2 == 0 && aligned(p.a, 16) && aligned(p.w, 16) && aligned(p.d, 8) &&
                     (!p.bias || aligned(p.bias, 8)) &&
                     (p.act == Epilogue::gelu_erf || p.act == Epilogue::quick_gelu);
  if (!shape) return false;
  return variant == kGemmTf32N128 || variant == kGemmTf32N128x2 || (variant == kGemmTf32N256 && p.out % 256 == 0);
#else
  (void)p;
  (void)arch;
  (void)variant;
  return false;
#endif
}

std::vector<int> gemm_tf32_variants(const GemmTf32Params& p, int arch) {
  std::vector<int> v;
  for (int variant : {kGemmTf32N256, kGemmTf32N128, kGemmTf32N128x2})
    if (gemm_tf32_takes(p, arch, variant)) v.push_back(variant);
  return v;
}

std::string gemm_tf32_variant_name(int variant) {
  switch (variant) {
    case kGemmTf32N256: return "vitrt tf32 gemm 128x256, 4 stages";
    case kGemmTf32N128: return "vitrt tf32 gemm 128x128, 6 stages";
    case kGemmTf32N128x2: return "vitrt tf32 gemm 128x128, 3 stages, 2 blocks/SM";
    default: return "vitrt tf32 gemm variant " + std::to_string(variant);
  }
}

void gemm_tf32(const GemmTf32Params& p, int arch, cudaStream_t s) {
  VITRT_CHECK(gemm_tf32_takes(p, arch, p.variant), "tf32 GEMM: ", gemm_tf32_variant_name(p.variant),
              " does not take a ", p.rows, "x", p.in, "x", p.out, " GEMM on compute capability ", arch,
              " (it needs sm_90a, K a multiple of 32, N of 128 or 256, aligned rows, GELU or QuickGELU)");
  switch (p.variant) {
    case kGemmTf32N256: launch<256, 4, 1>(p, s); break;
    case kGemmTf32N128: launch<128, 6, 1>(p, s); break;
    default: launch<128, 3, 2>(p, s); break;
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda

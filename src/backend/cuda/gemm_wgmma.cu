// Our own GEMM with the bias and activation (or the residual add) in the epilogue (gemm_wgmma.cuh).
// A block computes a BM x BN tile with one or two consumer warpgroups of 64 rows each and one producer
// warp. K goes in tiles of 128 bytes per row (32 fp32 or 64 16-bit columns). The producer's one thread
// copies each k-tile of A and of W (whose [N, K] rows are B's columns, K-major as stored) with the
// tensor memory accelerator (TMA) into one of S shared-memory stages, 128-byte swizzled as the wgmma
// descriptors read them; rows of A past the end arrive as zeros. Stages are handed over with mbarriers:
// "full" when a stage's bytes have landed, "empty" when every warpgroup's wgmmas on it have completed.
// Each k-tile is 4 wgmma per warpgroup (m64nBNk8 TF32 or m64nBNk16 bf16 / fp16, 32 bytes of K each),
// both operands from shared memory; a warpgroup keeps one k-tile's wgmmas in flight while it issues
// the next.
// Epilogue from the accumulators (row g / g + 8, columns 2t, 2t + 1 of every 8): + bias, activation or
// + D, one store per pair (each quad of lanes writes 16 or 32 contiguous bytes of a row). The exact
// GELU takes erfc from a branch-free approximation (activation_fn.cuh): with erff the epilogue issued
// about as many instructions as the TF32 main loop, and with one block per SM nothing overlaps it.
// (A first TF32 version copied with cp.async by all 256 threads and a block barrier per k-tile: at
// batch 64 of vit_base's fc1 it took 253-298 us against 233 for cuBLASLt + the GELU pass.)
#include "backend/cuda/gemm_wgmma.cuh"

#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <cstdint>

#include "backend/cuda/activation_fn.cuh"
#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kRowBytes = 128;  // bytes of K per row in a stage (one 128-byte swizzle row)

template <typename T>
constexpr int k_tile() {
  return kRowBytes / static_cast<int>(sizeof(T));
}

template <int WG, int BN, int S>
constexpr int smem_bytes() {
  return 1024 + S * (64 * WG + BN) * kRowBytes + 2 * S * 8;  // alignment slack, S stages of A and B, barriers
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

// D[64 x N] (+)= A[64 x k] B[k x N] for one 32-byte step of K, A and B K-major in shared memory
// (descriptors a, b); D is overwritten when !accumulate. TYPES names the shape's k and the operand
// types; 16-bit operands take two more immediates (no transpose of A or B).
#define VITRT_GEMM_MMA(TYPES, TAIL)                                                                               \
  static __device__ __forceinline__ void run(float (&d)[16][4], std::uint64_t a, std::uint64_t b, int accumulate) { \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                     \
                 "wgmma.mma_async.sync.aligned.m64n128" TYPES " " VITRT_GEMM_LIST64 ", %64, %65, p, 1, 1" TAIL   \
                 ";\n}\n"                                                                                         \
                 : VITRT_GEMM_D64(0)                                                                              \
                 : "l"(a), "l"(b), "r"(accumulate));                                                              \
  }                                                                                                               \
  static __device__ __forceinline__ void run(float (&d)[32][4], std::uint64_t a, std::uint64_t b, int accumulate) { \
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"                                                    \
                 "wgmma.mma_async.sync.aligned.m64n256" TYPES " " VITRT_GEMM_LIST128 ", %128, %129, p, 1, 1" TAIL \
                 ";\n}\n"                                                                                         \
                 : VITRT_GEMM_D64(0), VITRT_GEMM_D64(16)                                                          \
                 : "l"(a), "l"(b), "r"(accumulate));                                                              \
  }
template <typename T>
struct Mma;
template <>
struct Mma<float> {
  VITRT_GEMM_MMA("k8.f32.tf32.tf32", "")
};
template <>
struct Mma<__nv_bfloat16> {
  VITRT_GEMM_MMA("k16.f32.bf16.bf16", ", 0, 0")
};
template <>
struct Mma<__half> {
  VITRT_GEMM_MMA("k16.f32.f16.f16", ", 0, 0")
};
#undef VITRT_GEMM_MMA

// Two adjacent values of an epilogue operand, as floats, and their store.
__device__ __forceinline__ float2 load_pair(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load_pair(const __nv_bfloat16* p) {
  return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(p));
}
__device__ __forceinline__ float2 load_pair(const __half* p) { return __half22float2(*reinterpret_cast<const __half2*>(p)); }
__device__ __forceinline__ void store_pair(float* p, float a, float b) {
  *reinterpret_cast<float2*>(p) = make_float2(a, b);
}
__device__ __forceinline__ void store_pair(__nv_bfloat16* p, float a, float b) {
  *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(a, b);
}
__device__ __forceinline__ void store_pair(__half* p, float a, float b) {
  *reinterpret_cast<__half2*>(p) = __floats2half2_rn(a, b);
}
#endif  // VITRT_WGMMA_DEVICE

// What a launch passes: the tensor maps of A and W (TMA descriptors) and the epilogue's operands.
struct GemmArgs {
  CUtensorMap a_map, w_map;
  const void* bias;
  void* d;
  std::int64_t ldd, rows;
  int in;
  int n_tiles, tiles;  // output tiles along N, and in all
};

#ifdef VITRT_WGMMA_DEVICE
__device__ __forceinline__ void mbar_init(unsigned bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count));
}
__device__ __forceinline__ void mbar_wait(unsigned bar, unsigned parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}
__device__ __forceinline__ void mbar_arrive(unsigned bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(unsigned bar, unsigned bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
// A box of the 2-D tensor `map` at (column x, row y) into shared memory at dst; completes on bar.
__device__ __forceinline__ void tma_load_2d(unsigned dst, const CUtensorMap* map, int x, int y, unsigned bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          dst),
      "l"(reinterpret_cast<std::uint64_t>(map)), "r"(x), "r"(y), "r"(bar)
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

// T: operand type (float = TF32); O: output / bias type; Act: activation (none with Residual);
// Residual: D += the result.
// Persistent: block b takes output tiles b, b + gridDim.x, ... (N fastest, so neighbouring blocks share
// A's row tile in L2). The producer's copies run on across tiles (one stage sequence for the whole
// block), so the next tile's first k-tiles are loading while the warpgroups finish a tile and run its
// epilogue.
template <typename T, typename O, Epilogue Act, bool Residual, int WG, int BN, int S, int MinBlocks>
__global__ void __launch_bounds__(threads<WG>(), MinBlocks) gemm_wgmma_kernel(const __grid_constant__ GemmArgs p) {
#ifdef VITRT_WGMMA_DEVICE
  constexpr int kBM = 64 * WG;
  static_assert(S >= 2 && BN % 32 == 0 && !(Residual && Act != Epilogue::none));
  constexpr int kABytes = kBM * kRowBytes, kStage = (kBM + BN) * kRowBytes;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned base = smem_addr(sm), bars = base + S * kStage;  // full[S], then empty[S] (8 bytes each)
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int ktiles = p.in / k_tile<T>();
  if (tid == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(bars + 8 * s, 1);
      mbar_init(bars + 8 * (S + s), WG);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  wait_prior_grid();  // A (and D, for its earlier readers) belong to the kernels before this one

  if (warp == 4 * WG) {  // producer
    if (lane == 0) {
      int it = 0;  // k-tiles copied by this block so far
      for (int tile = static_cast<int>(blockIdx.x); tile < p.tiles; tile += static_cast<int>(gridDim.x)) {
        const int n0 = tile % p.n_tiles * BN, m0 = tile / p.n_tiles * kBM;
        for (int kt = 0; kt < ktiles; ++kt, ++it) {
          const int s = it % S;
          if (it >= S) mbar_wait(bars + 8 * (S + s), static_cast<unsigned>((it / S - 1) & 1));
          const unsigned full = bars + 8 * s, dst = base + static_cast<unsigned>(s * kStage);
          mbar_expect_tx(full, kStage);
          tma_load_2d(dst, &p.a_map, kt * k_tile<T>(), m0, full);  // rows past the end arrive as zeros
          tma_load_2d(dst + kABytes, &p.w_map, kt * k_tile<T>(), n0, full);
        }
      }
    }
    return;
  }

  const int wg = warp / 4;
  auto act = [](float v) {
    if constexpr (Act == Epilogue::gelu_erf) return gelu_erf_epilogue(v);
    if constexpr (Act == Epilogue::quick_gelu) return quick_gelu(v);
    return v;
  };
  int it = 0;  // k-tiles consumed so far
  for (int tile = static_cast<int>(blockIdx.x); tile < p.tiles; tile += static_cast<int>(gridDim.x)) {
    const int n0 = tile % p.n_tiles * BN, m0 = tile / p.n_tiles * kBM;
    float d[BN / 8][4];
    for (int kt = 0; kt < ktiles; ++kt, ++it) {
      const int s = it % S;
      mbar_wait(bars + 8 * s, static_cast<unsigned>((it / S) & 1));
      const unsigned stage = base + static_cast<unsigned>(s * kStage);
      const Sw128Desc ad(stage + static_cast<unsigned>(wg * 64 * kRowBytes)), bd(stage + kABytes);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < kRowBytes / 32; ++k) Mma<T>::run(d, ad.at(k * 32), bd.at(k * 32), kt > 0 || k > 0);
      wgmma_commit();
      wgmma_wait<1>();  // k-tile it - 1's wgmmas are done: release its stage
      if (kt > 0 && tid % 128 == 0) mbar_arrive(bars + 8 * (S + (it - 1) % S));
    }
    wgmma_wait<0>();
    fence_regs(d);
    if (tid % 128 == 0) mbar_arrive(bars + 8 * (S + (it - 1) % S));  // the tile's last stage

    // Epilogue: each thread's rows r0 and r0 + 8, columns n0 + 8 j + 2t, + 1.
    const std::int64_t r0 = m0 + wg * 64 + (warp % 4) * 16 + lane / 4;
    const int c0 = n0 + (lane % 4) * 2;
    O* const out0 = static_cast<O*>(p.d) + r0 * p.ldd + c0;
    O* const out1 = out0 + 8 * p.ldd;
    const O* const bias = static_cast<const O*>(p.bias) + c0;
    const bool ok0 = r0 < p.rows, ok1 = r0 + 8 < p.rows;
#pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
      const float2 b = load_pair(bias + 8 * j);
      float v[4] = {act(d[j][0] + b.x), act(d[j][1] + b.y), act(d[j][2] + b.x), act(d[j][3] + b.y)};
      if constexpr (Residual) {
        if (ok0) {
          const float2 r = load_pair(out0 + 8 * j);
          v[0] += r.x;
          v[1] += r.y;
        }
        if (ok1) {
          const float2 r = load_pair(out1 + 8 * j);
          v[2] += r.x;
          v[3] += r.y;
        }
      }
      if (ok0) store_pair(out0 + 8 * j, v[0], v[1]);
      if (ok1) store_pair(out1 + 8 * j, v[2], v[3]);
    }
  }
#else
  (void)p;
#endif
}

// cuTensorMapEncodeTiled from the driver, found once through the runtime (no link to libcuda).
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q));
    VITRT_CHECK(q == cudaDriverEntryPointSuccess && f, "wgmma GEMM: the driver has no cuTensorMapEncodeTiled");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

// The tensor map of a row-major matrix [rows, cols] of `dt` with row stride ld (elements), read in
// boxes of box_rows x 128 bytes, 128-byte swizzled (the layout the wgmma descriptors expect).
CUtensorMap tensor_map(const void* ptr, DT dt, std::int64_t rows, int cols, std::int64_t ld, int box_rows) {
  CUtensorMap m{};
  const std::size_t es = dt_size(dt);
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(cols), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * es};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kRowBytes / es), static_cast<cuuint32_t>(box_rows)},
                   elem[2] = {1, 1};
  const CUtensorMapDataType type = dt == DT::f32    ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32
                                   : dt == DT::bf16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16
                                                    : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  const CUresult r = encode_tiled()(&m, type, 2, const_cast<void*>(ptr), dims, strides, box, elem,
                                    CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                    CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  VITRT_CHECK(r == CUDA_SUCCESS, "wgmma GEMM: cuTensorMapEncodeTiled failed (", static_cast<int>(r), ") for a ", rows,
              " x ", cols, " ", dt_name(dt), " matrix with row stride ", ld);
  return m;
}

template <typename T, typename O, Epilogue Act, bool Residual, int WG, int BN, int S, int MinBlocks>
void launch(const GemmWgmmaParams& p, cudaStream_t s) {
  constexpr int kBM = 64 * WG, bytes = smem_bytes<WG, BN, S>();
  const int n_tiles = p.out / BN, tiles = static_cast<int>((p.rows + kBM - 1) / kBM) * n_tiles;
  // One wave of persistent blocks (MinBlocks per SM), or a block per tile when the SM count is unknown.
  const int blocks = p.sm_count > 0 ? std::min(tiles, p.sm_count * MinBlocks) : tiles;
  const GemmArgs args{tensor_map(p.a, p.in_dt, p.rows, p.in, p.lda, kBM),
                      tensor_map(p.w, p.in_dt, p.out, p.in, p.in, BN),
                      p.bias,
                      p.d,
                      p.ldd,
                      p.rows,
                      p.in,
                      n_tiles,
                      tiles};
  const dim3 grid(static_cast<unsigned>(blocks));
  constexpr auto kernel = gemm_wgmma_kernel<T, O, Act, Residual, WG, BN, S, MinBlocks>;
  allow_dynamic_smem(kernel, bytes);
  launch_dependent(Pdl::gemm, kernel, grid, threads<WG>(), bytes, s, args);
}

template <typename T, typename O, Epilogue Act, bool Residual>
void launch_variant(const GemmWgmmaParams& p, cudaStream_t s) {
  switch (p.variant) {
    case kGemmN256: launch<T, O, Act, Residual, 2, 256, 4, 1>(p, s); break;
    case kGemmN128x2: launch<T, O, Act, Residual, 2, 128, 3, 2>(p, s); break;
    case kGemmM64N256x2: launch<T, O, Act, Residual, 1, 256, 2, 2>(p, s); break;
    default: launch<T, O, Act, Residual, 1, 128, 3, 3>(p, s); break;
  }
}

// The epilogues of 16-bit inputs T: bias (+ activation) into T, or the residual add into fp32 or T.
template <typename T>
void launch_16bit(const GemmWgmmaParams& p, cudaStream_t s) {
  if (p.accumulate) {
    if (p.out_dt == DT::f32)
      launch_variant<T, float, Epilogue::none, true>(p, s);
    else
      launch_variant<T, T, Epilogue::none, true>(p, s);
    return;
  }
  switch (p.act) {
    case Epilogue::none: launch_variant<T, T, Epilogue::none, false>(p, s); break;
    case Epilogue::gelu_erf: launch_variant<T, T, Epilogue::gelu_erf, false>(p, s); break;
    case Epilogue::quick_gelu: launch_variant<T, T, Epilogue::quick_gelu, false>(p, s); break;
  }
}

bool aligned(const void* ptr, std::uintptr_t bytes) { return reinterpret_cast<std::uintptr_t>(ptr) % bytes == 0; }

// The input / output / epilogue combinations compiled in (gemm_wgmma.cuh).
bool combination(const GemmWgmmaParams& p) {
  if (p.in_dt == DT::f32)
    return p.out_dt == DT::f32 && !p.accumulate && (p.act == Epilogue::gelu_erf || p.act == Epilogue::quick_gelu);
  if (p.accumulate) return p.act == Epilogue::none && (p.out_dt == DT::f32 || p.out_dt == p.in_dt);
  return p.out_dt == p.in_dt;
}

}  // namespace

bool gemm_wgmma_takes(const GemmWgmmaParams& p, int arch, int variant) {
#ifdef VITRT_CUDA_SM90A
  if (arch != 90 || !combination(p)) return false;
  const auto in_bytes = static_cast<std::int64_t>(dt_size(p.in_dt)), out_bytes = static_cast<std::int64_t>(dt_size(p.out_dt));
  const bool shape = p.rows > 0 && (p.rows + 63) / 64 * (p.out / 128) <= 0x7fffffff && p.in > 0 && p.in * in_bytes % kRowBytes == 0 &&
                     p.out > 0 && p.out % 128 == 0 && p.lda >= p.in && p.lda * in_bytes % 16 == 0 && p.ldd >= p.out &&
                     p.ldd % 2 == 0 && aligned(p.a, 16) && aligned(p.w, 16) &&
                     aligned(p.d, static_cast<std::uintptr_t>(2 * out_bytes)) && p.bias &&
                     aligned(p.bias, static_cast<std::uintptr_t>(2 * out_bytes));
  if (!shape) return false;
  const bool n256 = p.out % 256 == 0;
  return variant == kGemmN128x2 || variant == kGemmM64N128x3 || (n256 && variant == kGemmN256) ||
         (n256 && variant == kGemmM64N256x2);
#else
  (void)p;
  (void)arch;
  (void)variant;
  return false;
#endif
}

std::vector<int> gemm_wgmma_variants(const GemmWgmmaParams& p, int arch) {
  std::vector<int> v;
  for (int variant : {kGemmN256, kGemmN128x2, kGemmM64N256x2, kGemmM64N128x3})
    if (gemm_wgmma_takes(p, arch, variant)) v.push_back(variant);
  return v;
}

int gemm_wgmma_default_variant(const GemmWgmmaParams& p, int arch, int sm_count) {
  if (p.in_dt != DT::f32) return 0;
  const std::int64_t tiles = (p.rows + 127) / 128 * (p.out / 128);
  return tiles >= 8 * static_cast<std::int64_t>(sm_count) && gemm_wgmma_takes(p, arch, kGemmN128x2) ? kGemmN128x2 : 0;
}

std::string gemm_wgmma_variant_name(const GemmWgmmaParams& p, int variant) {
  const std::string kind = std::string("vitrt ") + (p.in_dt == DT::f32 ? "tf32" : dt_name(p.in_dt)) + " gemm ";
  switch (variant) {
    case kGemmN256: return kind + "128x256, 4 stages";
    case kGemmN128x2: return kind + "128x128, 3 stages, 2 blocks/SM";
    case kGemmM64N256x2: return kind + "64x256, 2 stages, 2 blocks/SM";
    case kGemmM64N128x3: return kind + "64x128, 3 stages, 3 blocks/SM";
    default: return kind + "variant " + std::to_string(variant);
  }
}

void gemm_wgmma(const GemmWgmmaParams& p, int arch, cudaStream_t s) {
  VITRT_CHECK(gemm_wgmma_takes(p, arch, p.variant), gemm_wgmma_variant_name(p, p.variant), " does not take a ", p.rows,
              "x", p.in, "x", p.out, " ", dt_name(p.in_dt), " -> ", dt_name(p.out_dt),
              p.accumulate ? " accumulating" : "", " GEMM on compute capability ", arch,
              " (it needs sm_90a, K a multiple of 128 bytes, N of 128 or 256, aligned rows, a bias, and a supported "
              "epilogue)");
  if (p.in_dt == DT::f32) {
    if (p.act == Epilogue::quick_gelu)
      launch_variant<float, float, Epilogue::quick_gelu, false>(p, s);
    else
      launch_variant<float, float, Epilogue::gelu_erf, false>(p, s);
  } else if (p.in_dt == DT::bf16) {
    launch_16bit<__nv_bfloat16>(p, s);
  } else {
    launch_16bit<__half>(p, s);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace vitrt::cuda

// Does a GEMM main loop fed from L2 by TMA run at the tensor rate wgmma_rate measures from shared memory
// alone? Session 43 measured the two ceilings apart: one warpgroup's m64n128k16 wgmmas from shared memory
// reach 99.9% of the dense peak (wgmma_rate), and TMA brings 76 bytes per clock into every SM at once
// (tma_feed); cuBLASLt's 577-row GEMMs and ours still run their main loops at 58-69% of the peak
// (docs/performance.md, sessions 43-44). This puts the two together on one SM (docs/performance.md,
// session 48).
//   wgmma_feed [KTILES] [gemm]
// One block per SM: WG consumer warpgroups, each on 64 rows of the block's tile, and a producer warpgroup
// whose thread 0 issues the TMA copies. A k-tile is 64 columns of K: the tile's rows of A (WG x 64) and N
// rows of B (128 bytes each, 128-byte swizzled, as the GEMMs stage them) in one stage of a ring of S. A and
// B are L2-resident bf16 matrices (640 x 4096 and 1024 x 4096), block b taking A's row tile b % (640 / 64
// WG) and B's (b / that) % (1024 / N), and K's 64 k-tiles in turn (wrapping around). Each consumer issues
// 4 m64nNk16 wgmmas per k-tile (N = 256 as one m64n256k16), one commit, and waits until one k-tile is
// pending, as our GEMM's main loop does. With `gemm`, the operands and the blocks' tiles are those of
// vit_large's fc1 at 577 rows instead (session 49): A 640 x 1024, B 4096 x 1024, block b on output tile b
// (row tile b / (4096 / N), column tile b % (4096 / N); at most that many blocks), its 16 k-tiles in turn:
// few blocks then read the same box at once. Three modes:
//   0  no copies: every k-tile from one stage (wgmma_rate's measure, in this kernel);
//   1  the producer copies k-tiles into the other stages as fast as they are freed, and a thread of its
//      second warp frees each once it has landed; the consumers still take every k-tile from the one stage
//      they keep: what the copies' traffic costs the wgmmas, and the feed's rate while they run;
//   2  a GEMM's main loop: each consumer waits for a k-tile's stage to land, and the stage is copied again
//      once every consumer is done with it.
// Reported per (WG, N, mode): the consumers' clocks per k-tile (median block), the SM's FLOP per clock
// against Hopper's dense 16-bit peak of 4,096, and the bytes per clock landed in the SM while the
// consumers ran (median of 5 launches after one warm-up).
// Build: part of the bench targets (CUDA builds with sm_90a).
#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tma.cuh"
#include "backend/cuda/wgmma.cuh"

namespace {

using namespace vitrt::cuda;
using T = __nv_bfloat16;
constexpr int kPeak = 4096;  // dense 16-bit FLOP per clock per SM
constexpr int kARows = 640, kBRows = 1024, kK = 4096;
constexpr int kGemmARows = 640, kGemmBRows = 4096, kGemmK = 1024;  // `gemm`: fc1 at 577 rows
constexpr int kSmemMax = 200 * 1024;

__host__ __device__ constexpr int stage_bytes(int wg, int n) { return (wg * 64 + n) * 128; }
__host__ __device__ constexpr int stages(int wg, int n) {
  return kSmemMax / stage_bytes(wg, n) < 8 ? kSmemMax / stage_bytes(wg, n) : 8;
}
__host__ __device__ constexpr int smem_bytes(int wg, int n) { return 1024 + stages(wg, n) * stage_bytes(wg, n) + 256; }

struct Out {
  unsigned long long clocks;  // the consumers' loop, slowest warpgroup
  unsigned long long landed;  // bytes landed while the consumers ran
};

#ifdef VITRT_WGMMA_DEVICE
// D[64 x 256] (+)= A[64 x 16] B[16 x 256], both K-major from shared memory.
__device__ __forceinline__ void wgmma_ss_n256(float (&d)[32][4], std::uint64_t a_desc, std::uint64_t b_desc) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 " VITRT_GEMM_LIST128
               ", %128, %129, p, 1, 1, 0, 0;\n}\n"
               : VITRT_GEMM_D64(0), VITRT_GEMM_D64(16)
               : "l"(a_desc), "l"(b_desc));
}
template <int R>
__device__ __forceinline__ void fence_acc(float (&d)[R][4]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])::"memory");
}
// One try_wait: whether the phase of the given parity has completed (it may wait a while first).
__device__ __forceinline__ bool mbar_ready(unsigned bar, unsigned parity) {
  unsigned done;
  asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done)
               : "r"(bar), "r"(parity)
               : "memory");
  return done != 0;
}
#endif

template <int WG, int N, int MODE>
__global__ void __launch_bounds__((WG + 1) * 128, 1)
    feed_mma(const __grid_constant__ CUtensorMap a_map, const __grid_constant__ CUtensorMap b_map, int ktiles,
             Out* out, float* sink, int kmat, int a_tiles, int b_tiles, int gemm) {
#ifdef VITRT_WGMMA_DEVICE
  constexpr int S = stages(WG, N), kStage = stage_bytes(WG, N), kAB = WG * 64 * 128;
  // Mode 1 keeps stage 0 for the consumers and copies into the others.
  constexpr int kRing = MODE == 1 ? S - 1 : S, kFirst = MODE == 1 ? 1 : 0;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned base = smem_addr(sm), full0 = base + S * kStage, empty0 = full0 + 8 * S;
  // After the barriers: the consumers done (count), the copies the producer issued (-1 while it runs).
  volatile int* const flags = reinterpret_cast<volatile int*>(sm + S * kStage + 16 * S);
  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;
  if (tid == 0) {
    for (int s = 0; s < S; ++s) {
      mbar_init(full0 + 8 * s, 1);
      mbar_init(empty0 + 8 * s, MODE == 2 ? WG : 1);
    }
    mbar_init_fence();
    flags[0] = 0;
    flags[1] = -1;
  }
  // Stage 0 holds small values of both signs for modes 0 and 1 (the products are not all zeros).
  for (int i = tid; MODE != 2 && i < kStage / 2; i += blockDim.x)
    reinterpret_cast<T*>(sm)[i] = __float2bfloat16(static_cast<float>((i * 37) % 17 - 8) / 16.0f);
  __syncthreads();
  const int b = static_cast<int>(blockIdx.x);
  const int m0 = (gemm ? b / b_tiles % a_tiles : b % a_tiles) * WG * 64,
            n0 = (gemm ? b % b_tiles : b / a_tiles % b_tiles) * N;

  if (wg == 0) {
    if (MODE != 0 && tid == 0) {  // the producer
      int it = 0;
      for (; MODE == 2 ? it < ktiles : flags[0] < WG; ++it) {
        const int r = it % kRing, s = kFirst + r;
        if (it >= kRing) mbar_wait(empty0 + 8 * s, static_cast<unsigned>((it / kRing - 1) & 1));
        const unsigned full = full0 + 8 * s, dst = base + static_cast<unsigned>(s * kStage);
        mbar_arrive_expect(full, kStage);
        tma_load_2d(dst, &a_map, it % kmat * 64, m0, full);
        tma_load_2d(dst + kAB, &b_map, it % kmat * 64, n0, full);
      }
      flags[1] = it;
    } else if (MODE == 1 && tid == 32) {  // frees each stage once it has landed, counting those in the window
      long long landed = 0, in_window = -1;
      for (;;) {
        const int issued = flags[1];
        if (issued >= 0 && landed == issued) break;
        if (in_window < 0 && flags[0] == WG) in_window = landed;
        const int r = static_cast<int>(landed % kRing), s = kFirst + r;
        if (mbar_ready(full0 + 8 * s, static_cast<unsigned>((landed / kRing) & 1))) {
          mbar_arrive(empty0 + 8 * s);
          ++landed;
        }
      }
      if (in_window < 0) in_window = landed;
      out[blockIdx.x].landed = static_cast<unsigned long long>(in_window) * kStage;
    }
  } else {
    const int c = wg - 1;
    const bool leader = tid % 128 == 0;
    constexpr int R = N / 8;
    float d[R][4] = {};
    asm volatile("bar.sync 1, %0;\n" ::"n"(WG * 128) : "memory");  // the consumers start together
    const long long t0 = clock64();
    for (int it = 0; it < ktiles; ++it) {
      const int s = MODE == 2 ? it % S : 0;
      if constexpr (MODE == 2) mbar_wait(full0 + 8 * s, static_cast<unsigned>((it / S) & 1));
      const unsigned stage = base + static_cast<unsigned>(s * kStage);
      const Sw128Desc ad(stage + static_cast<unsigned>(c * 64 * 128)), bd(stage + kAB);
      wgmma_fence();
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        if constexpr (N == 256) wgmma_ss_n256(d, ad.at(k * 32), bd.at(k * 32));
        else wgmma_ss_n128<T>(d, ad.at(k * 32), bd.at(k * 32), 1);
      }
      wgmma_commit();
      wgmma_wait<1>();
      if (MODE == 2 && it > 0 && leader) mbar_arrive(empty0 + 8 * ((it - 1) % S));
    }
    wgmma_wait<0>();
    fence_acc(d);
    if (MODE == 2 && leader) mbar_arrive(empty0 + 8 * ((ktiles - 1) % S));
    const long long t1 = clock64();
    if (leader) {
      atomicMax(&out[blockIdx.x].clocks, static_cast<unsigned long long>(t1 - t0));
      atomicAdd(const_cast<int*>(flags), 1);
    }
    float sum = 0;
#pragma unroll
    for (int i = 0; i < R; ++i) sum += d[i][0] + d[i][1] + d[i][2] + d[i][3];
    if (sum == 12345.0f) sink[tid] = sum;  // keeps the accumulators live
  }
  __syncthreads();  // no block leaves with copies in flight (mode 2's last stages are waited for above)
#else
  (void)a_map;
  (void)b_map;
  (void)ktiles;
  (void)out;
  (void)sink;
  (void)kmat;
  (void)a_tiles;
  (void)b_tiles;
  (void)gemm;
#endif
}

template <int WG, int N, int MODE>
void report(const void* a, const void* b, int sms, int ktiles, Out* out, float* sink, bool gemm) {
  const int a_rows = gemm ? kGemmARows : kARows, b_rows = gemm ? kGemmBRows : kBRows, k = gemm ? kGemmK : kK;
  const CUtensorMap a_map = matrix_tensor_map(a, vitrt::DT::bf16, a_rows, k, k, WG * 64);
  const CUtensorMap b_map = matrix_tensor_map(b, vitrt::DT::bf16, b_rows, k, k, N);
  const int a_tiles = a_rows / (WG * 64), b_tiles = b_rows / N;
  const int blocks = gemm ? std::min(sms, a_tiles * b_tiles) : sms;
  constexpr int smem = smem_bytes(WG, N);
  CUDA_CHECK(cudaFuncSetAttribute(feed_mma<WG, N, MODE>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
  std::vector<Out> host(static_cast<std::size_t>(sms));
  std::vector<double> per_ktile, bytes_per_clock;
  for (int r = 0; r < 6; ++r) {
    CUDA_CHECK(cudaMemset(out, 0, sizeof(Out) * host.size()));
    feed_mma<WG, N, MODE><<<blocks, (WG + 1) * 128, smem>>>(a_map, b_map, ktiles, out, sink, k / 64, a_tiles, b_tiles,
                                                           gemm ? 1 : 0);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(host.data(), out, host.size() * sizeof(Out), cudaMemcpyDeviceToHost));
    if (r == 0) continue;
    std::vector<double> clocks, rates;
    for (int i = 0; i < blocks; ++i) {
      const Out& o = host[static_cast<std::size_t>(i)];
      clocks.push_back(static_cast<double>(o.clocks));
      const double landed = MODE == 2 ? static_cast<double>(ktiles) * stage_bytes(WG, N) : static_cast<double>(o.landed);
      rates.push_back(landed / static_cast<double>(o.clocks));
    }
    std::sort(clocks.begin(), clocks.end());
    std::sort(rates.begin(), rates.end());
    per_ktile.push_back(clocks[clocks.size() / 2] / ktiles);
    bytes_per_clock.push_back(rates[rates.size() / 2]);
  }
  std::sort(per_ktile.begin(), per_ktile.end());
  std::sort(bytes_per_clock.begin(), bytes_per_clock.end());
  const double c = per_ktile[per_ktile.size() / 2], flop = 2.0 * 64 * N * 64 * WG;
  std::printf("| %d x %d | %d | %d | %d | %.1f | %.1f%% | %.1f | %.1f |\n", WG * 64, N, stages(WG, N),
              stage_bytes(WG, N) / 1024, MODE, c, 100.0 * flop / c / kPeak, bytes_per_clock[bytes_per_clock.size() / 2],
              stage_bytes(WG, N) / c);
}

template <int WG, int N>
void report_modes(const void* a, const void* b, int sms, int ktiles, Out* out, float* sink, bool gemm) {
  report<WG, N, 0>(a, b, sms, ktiles, out, sink, gemm);
  report<WG, N, 1>(a, b, sms, ktiles, out, sink, gemm);
  report<WG, N, 2>(a, b, sms, ktiles, out, sink, gemm);
}

}  // namespace

int main(int argc, char** argv) {
  const int ktiles = argc > 1 ? std::atoi(argv[1]) : 2048;
  const bool gemm = argc > 2 && std::string(argv[2]) == "gemm";
  if (ktiles < 1 || (argc > 2 && !gemm)) {
    std::fprintf(stderr, "usage: wgmma_feed [KTILES >= 1] [gemm]\n");
    return 2;
  }
  try {
    int sms = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
    void *a = nullptr, *b = nullptr;
    Out* out = nullptr;
    float* sink = nullptr;
    // The larger of the two layouts' sizes (both are A 640 rows; B 1024 x 4096 or 4096 x 1024).
    CUDA_CHECK(cudaMalloc(&a, std::size_t{kARows} * kK * 2));
    CUDA_CHECK(cudaMalloc(&b, std::size_t{kBRows} * kK * 2));
    CUDA_CHECK(cudaMemset(a, 0x3c, std::size_t{kARows} * kK * 2));
    CUDA_CHECK(cudaMemset(b, 0x3c, std::size_t{kBRows} * kK * 2));
    CUDA_CHECK(cudaMalloc(&out, sizeof(Out) * static_cast<std::size_t>(sms)));
    CUDA_CHECK(cudaMalloc(&sink, sizeof(float) * 512));
    std::printf(
        "%d SMs, one block per SM, %d k-tiles per block; modes: 0 no copies, 1 copies beside, 2 main loop; %s\n\n",
        sms, ktiles, gemm ? "fc1's operands and tiles (A 640 x 1024, B 4096 x 1024, one output tile per block)"
                          : "A 640 x 4096, B 1024 x 4096, boxes shared by many blocks");
    std::printf(
        "| tile | stages | stage KB | mode | clocks per k-tile | of peak | bytes / clock landed | stage "
        "bytes / clock |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    report_modes<1, 128>(a, b, sms, ktiles, out, sink, gemm);
    report_modes<2, 128>(a, b, sms, ktiles, out, sink, gemm);
    report_modes<1, 256>(a, b, sms, ktiles, out, sink, gemm);
    report_modes<2, 256>(a, b, sms, ktiles, out, sink, gemm);
    for (void* p : {a, b, static_cast<void*>(out), static_cast<void*>(sink)}) CUDA_CHECK(cudaFree(p));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wgmma_feed: %s\n", e.what());
    return 1;
  }
  return 0;
}

// How many bytes per clock TMA copies bring into an SM's shared memory from L2 when every SM pulls at
// once, as the GEMMs' producers do: the feed that a batch-1 GEMM's main loop waits on (docs/performance.md,
// session 43). wgmma_rate shows one warpgroup keeps the tensor cores busy from shared memory; a 64 x 88
// k-tile at that rate needs 111 bytes per clock per SM.
//   tma_feed [PASSES] [TILES]
// One block per SM. Thread 0 copies k-tiles of 128 rows x 64 columns (16 KB, 128-byte swizzled) of an
// L2-resident bf16 matrix of TILES x 128 rows (default 5: 640 x 4096, an A operand at 577 rows, 5.2 MB)
// into a ring of 12 stages; one thread of another warp waits for each stage and frees it at once. Block b
// takes row tile b % TILES and all its k-tiles, PASSES times: with 5 tiles ~26 blocks read each box at
// about the same time; with 132 every block reads its own, as a GEMM's blocks mostly do (session 49).
// Above 5 tiles the matrix keeps 8 MB (columns cut to a multiple of 64), so that it stays in L2. In clusters of CL blocks (1, 2 or 4), each block copies 128 / CL of the rows
// into every block of its cluster (TMA multicast): L2 serves a box once per cluster, each SM still
// receives 16 KB per k-tile. Reported: per SM, bytes received per clock (clock64 over the block's loop,
// median over blocks) and the aggregate rates (bytes over the span from the first block's start to the
// last block's end, %globaltimer), median of 5 launches after one warm-up.
// Build: part of the bench targets (CUDA builds with sm_90a).
#include <cuda.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/tensor_map.h"
#include "backend/cuda/tma.cuh"

namespace {

using namespace vitrt::cuda;
constexpr int kTileRows = 128, kStages = 12;
constexpr int kStage = kTileRows * 128;  // bytes
constexpr int kSmem = 1024 + kStages * kStage + 2 * kStages * 8;

struct Stamp {
  unsigned long long clocks, start_ns, end_ns;
};

template <int CL>
__global__ void __launch_bounds__(64, 1) feed(const __grid_constant__ CUtensorMap map, int tiles, int ktiles, int passes,
                                              Stamp* out) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const unsigned base = smem_addr(sm), full0 = base + kStages * kStage, empty0 = full0 + 8 * kStages;
  const int tid = static_cast<int>(threadIdx.x);
  unsigned rank = 0;
  if constexpr (CL > 1) asm volatile("mov.u32 %0, %%cluster_ctarank;\n" : "=r"(rank));
  if (tid == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(full0 + 8 * s, 1);
      mbar_init(empty0 + 8 * s, CL);  // every block of the cluster frees a stage its copies reach
    }
    mbar_init_fence();
  }
  if constexpr (CL > 1) asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
  else __syncthreads();
  unsigned long long start_ns = 0;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(start_ns));
  const long long t0 = clock64();
  const int m0 = static_cast<int>(blockIdx.x / CL) % tiles * kTileRows, total = passes * ktiles;
  if (tid == 0) {
    for (int it = 0; it < total; ++it) {
      const int s = it % kStages, kt = it % ktiles;
      if (it >= kStages) mbar_wait(empty0 + 8 * s, static_cast<unsigned>((it / kStages - 1) & 1));
      const unsigned full = full0 + 8 * s, dst = base + static_cast<unsigned>(s * kStage);
      mbar_arrive_expect(full, kStage);
      if constexpr (CL > 1) {
        constexpr int kPart = kTileRows / CL;
        tma_load_2d_multicast(dst + rank * kPart * 128, &map, kt * 64, m0 + static_cast<int>(rank) * kPart, full,
                              static_cast<std::uint16_t>((1u << CL) - 1));
      } else {
        tma_load_2d(dst, &map, kt * 64, m0, full);
      }
    }
  } else if (tid == 32) {
    for (int it = 0; it < total; ++it) {
      const int s = it % kStages;
      mbar_wait(full0 + 8 * s, static_cast<unsigned>((it / kStages) & 1));
      for (unsigned r = 0; r < CL; ++r) {
        if constexpr (CL > 1)
          asm volatile("{\n.reg .b32 a;\nmapa.shared::cluster.u32 a, %0, %1;\nmbarrier.arrive.shared::cluster.b64 _, [a];\n}\n" ::"r"(
                           empty0 + 8 * s),
                       "r"(r)
                       : "memory");
        else
          mbar_arrive(empty0 + 8 * s);
      }
    }
  }
  __syncthreads();
  const long long t1 = clock64();
  unsigned long long end_ns = 0;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(end_ns));
  // No block leaves while a peer's copies into it or arrivals on its barriers may be in flight.
  if constexpr (CL > 1) asm volatile("barrier.cluster.arrive.release.aligned;\nbarrier.cluster.wait.acquire.aligned;\n" ::: "memory");
  if (tid == 0) out[blockIdx.x] = {static_cast<unsigned long long>(t1 - t0), start_ns, end_ns};
#else
  (void)map;
  (void)tiles;
  (void)ktiles;
  (void)passes;
  (void)out;
#endif
}

bool ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "tma_feed: %s: %s\n", what, cudaGetErrorString(e));
  return false;
}

template <int CL>
bool report(const void* matrix, int tiles, int cols, int sms, int passes, Stamp* out) {
  const CUtensorMap map = matrix_tensor_map(matrix, vitrt::DT::bf16, tiles * kTileRows, cols, cols, kTileRows / CL);
  const int ktiles = cols / 64;
  if (!ok(cudaFuncSetAttribute(feed<CL>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem), "attribute")) return false;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = dim3(static_cast<unsigned>(sms / CL * CL));
  cfg.blockDim = dim3(64);
  cfg.dynamicSmemBytes = kSmem;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeClusterDimension;
  attr.val.clusterDim.x = CL;
  attr.val.clusterDim.y = 1;
  attr.val.clusterDim.z = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  const int blocks = static_cast<int>(cfg.gridDim.x);
  std::vector<Stamp> host(static_cast<std::size_t>(blocks));
  std::vector<double> per_sm, delivered;
  for (int r = 0; r < 6; ++r) {
    if (!ok(cudaLaunchKernelEx(&cfg, feed<CL>, map, tiles, ktiles, passes, out), "launch") || !ok(cudaDeviceSynchronize(), "run") ||
        !ok(cudaMemcpy(host.data(), out, host.size() * sizeof(Stamp), cudaMemcpyDeviceToHost), "copy"))
      return false;
    if (r == 0) continue;
    std::vector<double> clocks;
    unsigned long long first = ~0ull, last = 0;
    for (const Stamp& s : host) {
      clocks.push_back(static_cast<double>(s.clocks));
      first = std::min(first, s.start_ns);
      last = std::max(last, s.end_ns);
    }
    std::sort(clocks.begin(), clocks.end());
    const double bytes = static_cast<double>(passes) * ktiles * kStage;  // per block
    per_sm.push_back(bytes / clocks[clocks.size() / 2]);
    delivered.push_back(bytes * blocks / static_cast<double>(last - first) / 1e3);  // TB/s
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double received = median(delivered);  // L2 serves each box once per cluster
  std::printf("| %d | %d | %.1f | %.2f | %.2f |\n", CL, blocks, median(per_sm), received, received / CL);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int passes = argc > 1 ? std::atoi(argv[1]) : 8, tiles = argc > 2 ? std::atoi(argv[2]) : 5;
  if (passes < 1 || tiles < 1 || tiles > 1024) {
    std::fprintf(stderr, "usage: tma_feed [PASSES >= 1] [TILES 1-1024]\n");
    return 2;
  }
  const int cols = tiles <= 5 ? 4096 : std::max(64, (8 << 20) / (tiles * kTileRows * 2) / 64 * 64);
  const int rows = tiles * kTileRows;
  int sms = 0;
  if (!ok(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "device")) return 1;
  void* matrix = nullptr;
  Stamp* out = nullptr;
  if (!ok(cudaMalloc(&matrix, std::size_t(rows) * cols * 2), "malloc") ||
      !ok(cudaMemset(matrix, 0x3c, std::size_t(rows) * cols * 2), "memset") ||
      !ok(cudaMalloc(&out, sizeof(Stamp) * static_cast<std::size_t>(sms)), "malloc"))
    return 1;
  std::printf("%d x %d matrix, %d row tiles; %d k-tiles of 16 KB per block, %d stages\n\n", rows, cols, tiles,
              passes * (cols / 64), kStages);
  std::printf("| cluster | blocks | bytes / clock / SM received | TB/s received, all SMs | TB/s read from L2 |\n");
  std::printf("|---:|---:|---:|---:|---:|\n");
  const bool all = report<1>(matrix, tiles, cols, sms, passes, out) && report<2>(matrix, tiles, cols, sms, passes, out) &&
                   report<4>(matrix, tiles, cols, sms, passes, out);
  cudaFree(out);
  cudaFree(matrix);
  return all ? 0 : 1;
}

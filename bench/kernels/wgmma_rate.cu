// How fast one SM runs 16-bit wgmmas from shared memory, by the number of warpgroups issuing them and the
// tile width: the question behind a batch-1 GEMM of our own (docs/performance.md, sessions 31 and 43).
// cuBLASLt's kernels at 197 and 577 rows run one warpgroup per SM on 64-row tiles 72-152 columns wide and
// reach 14-45% of the SMs' tensor throughput. Is one warpgroup on such a tile able to keep the tensor cores
// busy at all, even with its operands already in shared memory, or does that take two or three in flight?
//   wgmma_rate [ITERS]
// Every block (one per SM) has WG warpgroups, each with its own A (64 x 64) and B (N x 64) k-tile in
// shared memory, 128-byte swizzled as the GEMMs keep them. Each warpgroup issues ITERS k-tiles (4
// m64nNk16 wgmmas each, N = 64, 80 as an n64 and an n16 piece, or 128), one commit per k-tile, and waits
// until at most P k-tiles are pending before the next (P = 1 as in our GEMMs' main loops; P = 0 exposes
// one k-tile's latency). Reported: clock cycles per k-tile of one warpgroup and the SM's FLOP per clock
// against Hopper's dense 16-bit peak of 4,096 (the slowest block's cycles, median of 5 launches).
// Build: part of the bench targets (CUDA builds with sm_90a).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "backend/cuda/cp_async.cuh"  // smem_addr
#include "backend/cuda/wgmma.cuh"

namespace {

using vitrt::cuda::smem_addr;
using T = __nv_bfloat16;
constexpr int kPeak = 4096;  // dense 16-bit FLOP per clock per SM (4 tensor cores x 1,024)

template <int N>
__host__ __device__ constexpr int tile_bytes() {
  return 64 * 128 + N * 128;  // A then B, one k-tile of 64 columns each
}

template <int WG, int N, int P>
__global__ void __launch_bounds__(WG * 128, 1) rate(int iters, unsigned long long* cycles, float* sink) {
#ifdef VITRT_WGMMA_DEVICE
  using namespace vitrt::cuda;
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sm = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  const int tid = static_cast<int>(threadIdx.x), wg = tid / 128;
  // Operands: small values of both signs, so that the products are not all zeros.
  for (int i = tid; i < WG * tile_bytes<N>() / 2; i += blockDim.x)
    reinterpret_cast<T*>(sm)[i] = __float2bfloat16(static_cast<float>((i * 37) % 17 - 8) / 16.0f);
  __syncthreads();
  const unsigned a = smem_addr(sm) + static_cast<unsigned>(wg * tile_bytes<N>()), b = a + 64 * 128;
  const Sw128Desc ad(a), bd(b);
  constexpr int R = N / 8;
  float d[R][4] = {};
  const long long t0 = clock64();
  for (int it = 0; it < iters; ++it) {
    wgmma_fence();
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      if constexpr (N == 128) {
        wgmma_ss_n128<T>(d, ad.at(k * 32), bd.at(k * 32), 1);
      } else {
        wgmma_ss_n64_at<T, 0, R>(d, ad.at(k * 32), bd.at(k * 32), 1);
        if constexpr (N == 80) wgmma_ss_n16<T, 4, R>(d, ad.at(k * 32), bd.at(64 * 128 + k * 32), 1);
      }
    }
    wgmma_commit();
    wgmma_wait<P>();
  }
  wgmma_wait<0>();
  fence_regs(d);
  __syncthreads();
  const long long t1 = clock64();
  float s = 0;
#pragma unroll
  for (int i = 0; i < R; ++i) s += d[i][0] + d[i][1] + d[i][2] + d[i][3];
  if (s == 12345.0f) sink[tid] = s;  // keeps the accumulators live
  if (tid == 0) cycles[blockIdx.x] = static_cast<unsigned long long>(t1 - t0);
#else
  (void)iters;
  (void)cycles;
  (void)sink;
#endif
}

bool ok(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return true;
  std::fprintf(stderr, "wgmma_rate: %s: %s\n", what, cudaGetErrorString(e));
  return false;
}

// Median over 5 launches of the slowest block's cycles; -1 on a CUDA error.
template <int WG, int N, int P>
double measure(int sms, int iters, unsigned long long* cycles, float* sink) {
  const int smem = WG * tile_bytes<N>() + 1024;
  if (!ok(cudaFuncSetAttribute(rate<WG, N, P>, cudaFuncAttributeMaxDynamicSharedMemorySize, smem), "attribute"))
    return -1;
  std::vector<double> runs;
  std::vector<unsigned long long> host(static_cast<std::size_t>(sms));
  for (int r = 0; r < 6; ++r) {
    rate<WG, N, P><<<sms, WG * 128, smem>>>(iters, cycles, sink);
    if (!ok(cudaGetLastError(), "launch") || !ok(cudaDeviceSynchronize(), "run")) return -1;
    if (!ok(cudaMemcpy(host.data(), cycles, host.size() * sizeof(host[0]), cudaMemcpyDeviceToHost), "copy"))
      return -1;
    if (r > 0) runs.push_back(static_cast<double>(*std::max_element(host.begin(), host.end())));
  }
  std::sort(runs.begin(), runs.end());
  return runs[runs.size() / 2];
}

template <int WG, int N, int P>
bool report(int sms, int iters, unsigned long long* cycles, float* sink) {
  const double c = measure<WG, N, P>(sms, iters, cycles, sink);
  if (c < 0) return false;
  const double per_ktile = c / iters, flop = 2.0 * 64 * N * 64 * WG;  // per k-tile of every warpgroup
  std::printf("| %d | %d | %d | %.1f | %.0f | %.1f%% |\n", WG, N, P, per_ktile, flop / per_ktile,
              100.0 * flop / per_ktile / kPeak);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = argc > 1 ? std::atoi(argv[1]) : 2048;
  if (iters < 1) {
    std::fprintf(stderr, "usage: wgmma_rate [ITERS >= 1]\n");
    return 2;
  }
  int sms = 0;
  if (!ok(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "device")) return 1;
  unsigned long long* cycles = nullptr;
  float* sink = nullptr;
  if (!ok(cudaMalloc(&cycles, sizeof(unsigned long long) * static_cast<std::size_t>(sms)), "malloc") ||
      !ok(cudaMalloc(&sink, sizeof(float) * 512), "malloc"))
    return 1;
  std::printf("%d blocks (one per SM), %d k-tiles per warpgroup\n\n", sms, iters);
  std::printf("| warpgroups | N | pending | cycles per k-tile | FLOP / clock / SM | of peak |\n|---:|---:|---:|---:|---:|---:|\n");
  const bool all = report<1, 64, 1>(sms, iters, cycles, sink) && report<2, 64, 1>(sms, iters, cycles, sink) &&
                   report<3, 64, 1>(sms, iters, cycles, sink) && report<1, 80, 1>(sms, iters, cycles, sink) &&
                   report<2, 80, 1>(sms, iters, cycles, sink) && report<1, 128, 1>(sms, iters, cycles, sink) &&
                   report<2, 128, 1>(sms, iters, cycles, sink) && report<1, 64, 0>(sms, iters, cycles, sink) &&
                   report<1, 80, 0>(sms, iters, cycles, sink) && report<1, 128, 0>(sms, iters, cycles, sink) &&
                   report<2, 64, 0>(sms, iters, cycles, sink);
  cudaFree(cycles);
  cudaFree(sink);
  return all ? 0 : 1;
}

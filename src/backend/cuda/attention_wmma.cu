// Fused attention on tensor cores (WMMA 16x16x16, fp16/bf16 in, fp32 accumulate), flash-attention
// style: a block of 4 warps owns 64 queries of one (batch, head); key/value tiles of 64 keys are staged
// in shared memory; each warp computes its 16x64 score tile S = Q K^T, updates the online softmax in
// fp32 (two lanes per row), rescales its fp32 output tile and adds P V. Q, K, V are read in place from
// the qkv GEMM output [B, N, 3, H, D] with 16-byte loads, so D must be a multiple of 8 (<= 128).
#include <mma.h>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/attention_tiles.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/dtype.cuh"

namespace vitrt::cuda {
namespace {

using namespace nvcuda;

constexpr int kWarps = 4, kRows = 16, kBQ = kWarps * kRows, kBK = 64;

constexpr int align128(int bytes) { return (bytes + 127) / 128 * 128; }

template <int DP>
struct Layout {
  static constexpr int ld_t = DP + 8;    // 16-bit tiles (padding against bank conflicts)
  static constexpr int ld_s = kBK + 4;   // fp32 scores
  static constexpr int ld_p = kBK + 8;   // 16-bit probabilities
  static constexpr int ld_o = DP + 4;    // fp32 output accumulators
  static constexpr int q = 0;
  static constexpr int k = q + align128(kBQ * ld_t * 2);
  static constexpr int v = k + align128(kBK * ld_t * 2);
  static constexpr int s = v + align128(kBK * ld_t * 2);
  static constexpr int p = s + align128(kWarps * kRows * ld_s * 4);
  static constexpr int o = p + align128(kWarps * kRows * ld_p * 2);
  static constexpr int bytes = o + align128(kWarps * kRows * ld_o * 4);
};

// Copies `rows` rows of D elements (16-byte chunks) from global rows `stride` apart into a tile with
// leading dimension ld_t, zero-filling rows past `valid` and columns D..DP.
template <typename T, int DP>
__device__ void load_tile(T* tile, const T* src, std::size_t stride, int rows, int valid, int D) {
  constexpr int ld = Layout<DP>::ld_t;
  const int chunks = DP / 8;  // 8 elements = 16 bytes
  for (int i = threadIdx.x; i < rows * chunks; i += blockDim.x) {
    const int r = i / chunks, c = (i % chunks) * 8;
    uint4 val = make_uint4(0, 0, 0, 0);
    if (r < valid && c < D) val = *reinterpret_cast<const uint4*>(src + r * stride + c);
    *reinterpret_cast<uint4*>(tile + r * ld + c) = val;
  }
}

template <typename T, int DP>
__global__ void __launch_bounds__(kWarps * 32) attention_wmma_kernel(AttentionParams p) {
  using L = Layout<DP>;
  extern __shared__ __align__(128) unsigned char smem[];
  T* q_s = reinterpret_cast<T*>(smem + L::q);
  T* k_s = reinterpret_cast<T*>(smem + L::k);
  T* v_s = reinterpret_cast<T*>(smem + L::v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* s_w = reinterpret_cast<float*>(smem + L::s) + warp * kRows * L::ld_s;
  T* p_w = reinterpret_cast<T*>(smem + L::p) + warp * kRows * L::ld_p;
  float* o_w = reinterpret_cast<float*>(smem + L::o) + warp * kRows * L::ld_o;

  const int N = p.tokens, D = p.head_dim, E = p.heads * D;
  const int h = blockIdx.y, b = blockIdx.z, q0 = blockIdx.x * kBQ;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const T* base = static_cast<const T*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * D;

  load_tile<T, DP>(q_s, base + q0 * stride, stride, kBQ, N - q0, D);
  for (int i = lane; i < kRows * L::ld_o; i += 32) o_w[i] = 0.0f;
  // Two lanes per row: lane 2r and 2r+1 own columns [0, 32) and [32, 64) of row r.
  const int row = lane / 2, half = (lane % 2) * (kBK / 2);
  float m = -INFINITY, l = 0.0f;

  for (int k0 = 0; k0 < N; k0 += kBK) {
    __syncthreads();
    load_tile<T, DP>(k_s, base + k0 * stride + E, stride, kBK, N - k0, D);
    load_tile<T, DP>(v_s, base + k0 * stride + 2 * E, stride, kBK, N - k0, D);
    __syncthreads();

    // S (16 x 64) = Q_w (16 x DP) K^T (DP x 64)
    for (int kb = 0; kb < kBK / 16; ++kb) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int d = 0; d < DP / 16; ++d) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> bk;
        wmma::load_matrix_sync(a, q_s + warp * kRows * L::ld_t + d * 16, L::ld_t);
        wmma::load_matrix_sync(bk, k_s + kb * 16 * L::ld_t + d * 16, L::ld_t);
        wmma::mma_sync(acc, a, bk, acc);
      }
      wmma::store_matrix_sync(s_w + kb * 16, acc, L::ld_s, wmma::mem_row_major);
    }
    __syncwarp();

    // Online softmax for this tile, fp32.
    float* srow = s_w + row * L::ld_s + half;
    float tile_max = -INFINITY;
    for (int j = 0; j < kBK / 2; ++j) {
      const bool ok = k0 + half + j < N;
      srow[j] = ok ? srow[j] * p.scale : -INFINITY;
      tile_max = fmaxf(tile_max, srow[j]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    const float m_new = fmaxf(m, tile_max);
    float sum = 0.0f;
    T* prow = p_w + row * L::ld_p + half;
    for (int j = 0; j < kBK / 2; ++j) {
      const float e = __expf(srow[j] - m_new);  // masked keys: exp(-inf) = 0
      const T et = from_f32<T>(e);
      prow[j] = et;
      sum += to_f32(et);  // the normalizer sums what P V will use
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    const float corr = __expf(m - m_new);  // 0 on the first tile
    l = l * corr + sum;
    m = m_new;
    float* orow = o_w + row * L::ld_o;
    for (int c = (lane % 2); c < DP; c += 2) orow[c] *= corr;
    __syncwarp();

    // O_w (16 x DP) += P_w (16 x 64) V (64 x DP)
#pragma unroll
    for (int d = 0; d < DP / 16; ++d) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, o_w + d * 16, L::ld_o, wmma::mem_row_major);
#pragma unroll
      for (int kb = 0; kb < kBK / 16; ++kb) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> bv;
        wmma::load_matrix_sync(a, p_w + kb * 16, L::ld_p);
        wmma::load_matrix_sync(bv, v_s + kb * 16 * L::ld_t + d * 16, L::ld_t);
        wmma::mma_sync(acc, a, bv, acc);
      }
      wmma::store_matrix_sync(o_w + d * 16, acc, L::ld_o, wmma::mem_row_major);
    }
    __syncwarp();
  }

  const int q = q0 + warp * kRows + row;
  if (q < N) {
    const float inv = 1.0f / l;
    T* out = static_cast<T*>(p.out) + (static_cast<std::size_t>(b) * N + q) * E + static_cast<std::size_t>(h) * D;
    const float* orow = o_w + row * L::ld_o;
    for (int c = (lane % 2); c < D; c += 2) out[c] = from_f32<T>(orow[c] * inv);
  }
}

template <typename T, int DP>
void launch_dp(const AttentionParams& p, cudaStream_t s) {
  constexpr int bytes = Layout<DP>::bytes;
  allow_dynamic_smem(attention_wmma_kernel<T, DP>, bytes);
  const dim3 grid((query_tokens(p) + kBQ - 1) / kBQ, p.heads, p.batch);
  attention_wmma_kernel<T, DP><<<grid, kWarps * 32, bytes, s>>>(p);
  CUDA_CHECK_LAUNCH();
}

template <typename T>
void launch(const AttentionParams& p, cudaStream_t s) {
  // Head dims that are a multiple of 8 run padded to the next multiple of 16.
  const bool ok =
      with_head_dim16((p.head_dim + 15) / 16 * 16, [&](auto dp) { launch_dp<T, decltype(dp)::value>(p, s); });
  VITRT_CHECK(ok, "attention: head dim ", p.head_dim, " is not supported on tensor cores");
}

}  // namespace

bool attention_wmma_supports(const AttentionParams& p) {
  return p.dt != DT::f32 && p.head_dim % 8 == 0 && p.head_dim <= 128;
}

void attention_wmma(const AttentionParams& p, cudaStream_t s) {
  if (p.dt == DT::f16) launch<__half>(p, s);
  else launch<__nv_bfloat16>(p, s);
}

}  // namespace vitrt::cuda

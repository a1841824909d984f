// Fused attention on tensor cores with register-resident state (FlashAttention-2 style): each warp owns
// 16 query rows; S = Q K^T, the online softmax and O += P V all live in mma.sync.m16n8k16 fragments
// (layouts as documented in the PTX ISA), so only the K/V tiles go through shared memory. K/V tiles
// are double-buffered with cp.async (the next tile loads while this one is used) and read into
// fragments with ldmatrix (.trans for V). The score fragments are re-packed in place as the A operand
// of P V. fp16/bf16 in, fp32 accumulate; head dims that are multiples of 16 up to 128; Q, K, V read in
// place from the qkv GEMM output [B, N, 3, H, D]. Variants: 1, 2, 4 or 8 warps per block (16 to 128
// queries sharing each K/V tile; fewer warps = more blocks for small batches); every variant computes
// each row identically.
#include <cstdint>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/attention_tiles.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"

namespace vitrt::cuda {
namespace {

// Keys per shared-memory tile: two stages of K and V stay within the 48 KiB of static shared memory.
template <int D>
constexpr int key_tile() {
  return D <= 80 ? 64 : 32;
}

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1);

template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                         std::uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0,
                                                  std::uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8x8 16-bit matrices from shared memory; lane l gives the address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void ldmatrix_x4(std::uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* row) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(row)));
}

template <typename T, int D, int W>
__global__ void __launch_bounds__(W * 32) attention_mma_kernel(AttentionParams p) {
  constexpr int kBQ = 16 * W, kBK = key_tile<D>();
  constexpr int LD = D + 8;  // shared-memory row stride (elements): ldmatrix rows hit distinct banks
  __shared__ __align__(16) T k_s[2][kBK * LD];
  __shared__ __align__(16) T v_s[2][kBK * LD];

  const int N = p.tokens, E = p.heads * D;
  const int h = blockIdx.y, b = blockIdx.z, q0 = blockIdx.x * kBQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const T* base = static_cast<const T*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * D;
  const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;  // this thread's two query rows
  const bool warp_active = q0 + warp * 16 < query_tokens(p);

  std::uint32_t qf[D / 16][4];
  load_q_fragments<T, D>(base, stride, N, r0, r1, t, qf);
  float o[D / 8][4] = {};
  OnlineSoftmax sm(p.scale);
  kv_tile_loop(
      (N + kBK - 1) / kBK,
      [&](int tile, int stage) {
        load_kv_tile<T, D, kBK, PaddedRows<LD>, W * 32>(base, stride, E, N, tile, k_s[stage], v_s[stage]);
      },
      [&](int tile, int stage) {
        if (!warp_active) return;
        const T* ks = k_s[stage];
        const T* vs = v_s[stage];
        const int valid = min(kBK, N - tile * kBK);
        float s[kBK / 8][4];
#pragma unroll
        for (int nt = 0; nt < kBK / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
        // S = Q K^T: one ldmatrix.x4 gives the B fragments of two 8-key tiles for one 16-wide slice of D.
#pragma unroll
        for (int ks16 = 0; ks16 < D / 16; ++ks16) {
#pragma unroll
          for (int nt = 0; nt < kBK / 8; nt += 2) {
            if (nt * 8 < valid) {
              std::uint32_t kb[4];
              ldmatrix_x4(kb, ks + (nt * 8 + (lane / 16) * 8 + lane % 8) * LD + ks16 * 16 + ((lane / 8) % 2) * 8);
              mma16816<T>(s[nt], qf[ks16], kb[0], kb[1]);
              mma16816<T>(s[nt + 1], qf[ks16], kb[2], kb[3]);
            }
          }
        }
        sm.next_tile(s, o, valid, t);
        // P V, 16 keys at a time: the two score tiles of those keys form the A fragment.
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk) {
          if (kk * 16 >= valid) break;
          std::uint32_t pf[4];
          probs_to_a_fragment<T>(sm, s[2 * kk], s[2 * kk + 1], pf);
          // V B fragments of two 8-wide column tiles per ldmatrix.x4.trans (V is [key][d] in shared memory).
#pragma unroll
          for (int nt = 0; nt < D / 8; nt += 2) {
            std::uint32_t vb[4];
            ldmatrix_x4_trans(vb, vs + (kk * 16 + ((lane / 8) % 2) * 8 + lane % 8) * LD + (nt + lane / 16) * 8);
            mma16816<T>(o[nt], pf, vb[0], vb[1]);
            mma16816<T>(o[nt + 1], pf, vb[2], vb[3]);
          }
        }
      });
  if (!warp_active) return;
  float i0, i1;
  sm.finish(i0, i1);
  store_rows<T, D>(p.out, o, i0, i1, static_cast<std::size_t>(b) * N, h, E, N, r0, r1, t);
}

template <typename T, int D>
void launch_d(const AttentionParams& p, cudaStream_t s) {
  const int warps = p.variant ? p.variant : 4;
  const auto grid = [&](int w) { return dim3((query_tokens(p) + 16 * w - 1) / (16 * w), p.heads, p.batch); };
  switch (warps) {
    case 1: attention_mma_kernel<T, D, 1><<<grid(1), 32, 0, s>>>(p); break;
    case 2: attention_mma_kernel<T, D, 2><<<grid(2), 64, 0, s>>>(p); break;
    case 4: attention_mma_kernel<T, D, 4><<<grid(4), 128, 0, s>>>(p); break;
    case 8: attention_mma_kernel<T, D, 8><<<grid(8), 256, 0, s>>>(p); break;
    default: VITRT_FAIL("attention: no mma kernel variant with ", warps, " warps (1, 2, 4 or 8)");
  }
}

template <typename T>
void launch(const AttentionParams& p, cudaStream_t s) {
  const bool ok = with_head_dim16(p.head_dim, [&](auto d) { launch_d<T, decltype(d)::value>(p, s); });
  VITRT_CHECK(ok, "attention: head dim ", p.head_dim, " is not supported by the mma kernel");
  CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_mma_supports(const AttentionParams& p) {
  return p.dt != DT::f32 && p.head_dim % 16 == 0 && p.head_dim <= 128;
}

void attention_mma(const AttentionParams& p, cudaStream_t s) {
  if (p.dt == DT::f16) launch<__half>(p, s);
  else launch<__nv_bfloat16>(p, s);
}

}  // namespace vitrt::cuda

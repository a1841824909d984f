// Fused attention for fp32 activations on tensor cores: mma.sync.m16n8k8 with TF32 operands, the same
// register-resident online-softmax design as attention_mma.cu (each warp owns 16 query rows; K/V tiles
// double-buffered in shared memory with cp.async).
// 3xTF32: an operand is split as big + small TF32 parts and big*big + big*small + small*big are
// accumulated, which keeps fp32-level accuracy on tensor cores. S = Q K^T is always 3xTF32: plain TF32
// operands everywhere were measured to push a tf32 session's error to 1.35x PyTorch's on one
// verification row (PyTorch keeps attention in fp32 under TF32), beyond the 1.25x bound; an error in a
// score is multiplied by the score's size in the softmax. P V is 3xTF32 in fp32 sessions; in tf32
// sessions (AttentionParams::tf32_session) it is 2xTF32, P split and V rounded to TF32 (big*big +
// small*big). Measured on the worst tf32 verification row: 1.20x PyTorch's error with P V on plain
// TF32 operands, 1.12x with 2xTF32, 1.03x with 3xTF32; attention at batch 256 0.72 / 0.75 / 0.92 ms.
// K and V are split once per tile, in shared memory, by the threads that copied them (big in place,
// small beside it); the warps then read both parts as fragments. (Each of the 4 warps used to split
// the whole tile again at its fragment reads, with cvt.rna.tf32.f32, which ptxas expands to 5
// instructions: 457M instructions at batch 256 then, 328M after.)
// The P V product uses P straight from the score fragments: within each 8-key tile, the A operand's
// column t holds key 2t and column t + 4 key 2t + 1, and the V rows are read in that same order.
// Two kernels: on mma.sync (head dims that are multiples of 16 up to 128) and, on Hopper for head dim
// 64, on wgmma (kAttentionTf32Wgmma, below; 23-30% faster at batches 8-256).
#include <cstdint>

#include "backend/cuda/attention.cuh"
#include "backend/cuda/attention_tiles.cuh"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/dtype.cuh"
#include "backend/cuda/kernel_attrs.h"
#include "backend/cuda/launch.cuh"
#include "backend/cuda/wgmma.cuh"

namespace vitrt::cuda {
namespace {

constexpr int kWarps = 4, kBQ = 16 * kWarps;

template <int D>
constexpr int key_tile() {
  return D <= 64 ? 32 : 16;
}
template <int D>
constexpr int row_stride() {
  return D + 4;  // floats: conflict-free fragment reads
}
// Shared memory: K and V in two stages (big parts, in place), and the small parts of the tile in use
// (V's only for a 3xTF32 P V, kPv = 3).
template <int D, int kPv>
constexpr int smem_bytes() {
  return (kPv == 3 ? 6 : 5) * key_tile<D>() * row_stride<D>() * static_cast<int>(sizeof(float));
}

// x rounded to TF32, to nearest with ties away from zero (cvt.rna.tf32.f32, done on the bit pattern:
// ptxas expands the cvt to 5 instructions).
__device__ __forceinline__ std::uint32_t tf32_rna(float x) { return (__float_as_uint(x) + 0x1000u) & 0xffffe000u; }

// x = big + small, both TF32. big = tf32_rna(x); x - big is exact in fp32, and small is it truncated to
// TF32 (it has at most 12 significant bits, so that drops at most one). Not-a-number inputs stay
// not-a-number in small even where big wraps to zero; infinities give big = inf and a not-a-number
// small, as the cvt did.
__device__ __forceinline__ void split(float x, std::uint32_t& big, std::uint32_t& small) {
  big = tf32_rna(x);
  small = __float_as_uint(x - __uint_as_float(big)) & 0xffffe000u;
}

// Splits, in place, the K/V chunks this thread copied into a tile (load_kv_tile's assignment): the big
// parts replace the values, the small parts go to the same offsets of k_lo / v_lo. With kPv = 2, V is
// only rounded to TF32 (and v_lo unused).
template <int D, int BK, int LD, int Threads, int kPv>
__device__ __forceinline__ void split_own_chunks(float* k, float* v, float* k_lo, float* v_lo) {
  constexpr int kChunks = BK * (D / 4), kPerThread = (kChunks + Threads - 1) / Threads;
#pragma unroll
  for (int j = 0; j < kPerThread; ++j) {
    const int i = threadIdx.x + j * Threads;
    if (kChunks % Threads != 0 && i >= kChunks) break;
    const int off = PaddedRows<LD>::offset(i / (D / 4), (i % (D / 4)) * 4);
#pragma unroll
    for (int m = 0; m < 2; ++m) {
      float* hi = m == 0 ? k : v;
      const float4 x = *reinterpret_cast<const float4*>(hi + off);
      if (m == 1 && kPv != 3) {
        *reinterpret_cast<uint4*>(hi + off) = make_uint4(tf32_rna(x.x), tf32_rna(x.y), tf32_rna(x.z), tf32_rna(x.w));
        continue;
      }
      std::uint32_t b[4], l[4];
      split(x.x, b[0], l[0]);
      split(x.y, b[1], l[1]);
      split(x.z, b[2], l[2]);
      split(x.w, b[3], l[3]);
      *reinterpret_cast<uint4*>(hi + off) = make_uint4(b[0], b[1], b[2], b[3]);
      *reinterpret_cast<uint4*>((m == 0 ? k_lo : v_lo) + off) = make_uint4(l[0], l[1], l[2], l[3]);
    }
  }
}

// Q rows r0, r1 (zeros past N) as split A fragments, big and small parts, of m16n8k8 / m64nNk8 TF32
// (per k-step of 8: a0 = (g, t), a1 = (g + 8, t), a2 = (g, t + 4), a3 = (g + 8, t + 4)).
template <int D>
__device__ __forceinline__ void load_q_split(const float* base, std::size_t stride, int N, int r0, int r1, int t,
                                             std::uint32_t (&qb)[D / 8][4], std::uint32_t (&qs)[D / 8][4]) {
#pragma unroll
  for (int k8 = 0; k8 < D / 8; ++k8) {
    const int c = k8 * 8 + t;
    split(r0 < N ? base[r0 * stride + c] : 0.0f, qb[k8][0], qs[k8][0]);
    split(r1 < N ? base[r1 * stride + c] : 0.0f, qb[k8][1], qs[k8][1]);
    split(r0 < N ? base[r0 * stride + c + 4] : 0.0f, qb[k8][2], qs[k8][2]);
    split(r1 < N ? base[r1 * stride + c + 4] : 0.0f, qb[k8][3], qs[k8][3]);
  }
}

__device__ __forceinline__ void mma1688(float (&d)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// kPv: the number of TF32 products in P V, 3 (fp32 sessions) or 2 (tf32 sessions; see the top).
// Each product d += a * b is two or three MMAs, small parts first and big * big last; they are issued
// in passes over all accumulators, so that consecutive MMAs are independent (one accumulator's three
// in a row waited on each other: 12% slower at batch 64).
template <int D, int kPv>
__global__ void __launch_bounds__(kWarps * 32, D <= 64 ? 3 : 1) attention_tf32_kernel(AttentionParams p) {
  wait_prior_grid();
  constexpr int kBK = key_tile<D>(), LD = row_stride<D>(), kTile = kBK * LD;
  extern __shared__ __align__(16) float smem[];
  float* const k_s = smem;               // [2][kTile]: big parts (raw values until split)
  float* const v_s = smem + 2 * kTile;   // [2][kTile]
  float* const k_lo = smem + 4 * kTile;  // [kTile]: small parts of the tile in use
  float* const v_lo = smem + 5 * kTile;  // (kPv = 3 only)

  const int N = p.tokens, E = p.heads * D;
  const int h = blockIdx.y, b = blockIdx.z, q0 = blockIdx.x * kBQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const float* base =
      static_cast<const float*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * D;
  const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;
  const bool warp_active = q0 + warp * 16 < query_tokens(p);

  // Q as split A fragments.
  std::uint32_t qb[D / 8][4], qs[D / 8][4];
  load_q_split<D>(base, stride, N, r0, r1, t, qb, qs);
  float o[D / 8][4] = {};
  OnlineSoftmax sm(p.scale);
  kv_tile_loop(
      (N + kBK - 1) / kBK,
      [&](int tile, int stage) {
        load_kv_tile<float, D, kBK, PaddedRows<LD>, kWarps * 32>(base, stride, E, N, tile, k_s + stage * kTile,
                                                                 v_s + stage * kTile);
      },
      [&](int, int stage) {
        split_own_chunks<D, kBK, LD, kWarps * 32, kPv>(k_s + stage * kTile, v_s + stage * kTile, k_lo, v_lo);
      },
      [&](int tile, int stage) {
        if (!warp_active) return;
        const std::uint32_t* kb = reinterpret_cast<const std::uint32_t*>(k_s + stage * kTile);
        const std::uint32_t* vb = reinterpret_cast<const std::uint32_t*>(v_s + stage * kTile);
        const std::uint32_t* ks = reinterpret_cast<const std::uint32_t*>(k_lo);
        const std::uint32_t* vs = reinterpret_cast<const std::uint32_t*>(v_lo);
        const int valid = min(kBK, N - tile * kBK);
        float s[kBK / 8][4];
#pragma unroll
        for (int nt = 0; nt < kBK / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
        for (int k8 = 0; k8 < D / 8; ++k8) {
          std::uint32_t bb[kBK / 8][2], bs[kBK / 8][2];  // B: (k = t, n = g), (k = t + 4, n = g)
#pragma unroll
          for (int nt = 0; nt < kBK / 8; ++nt) {
            const int at = (nt * 8 + g) * LD + k8 * 8 + t;
            bb[nt][0] = kb[at];
            bb[nt][1] = kb[at + 4];
            bs[nt][0] = ks[at];
            bs[nt][1] = ks[at + 4];
          }
#pragma unroll
          for (int nt = 0; nt < kBK / 8; ++nt)
            if (nt * 8 < valid) mma1688(s[nt], qs[k8], bb[nt][0], bb[nt][1]);
#pragma unroll
          for (int nt = 0; nt < kBK / 8; ++nt)
            if (nt * 8 < valid) mma1688(s[nt], qb[k8], bs[nt][0], bs[nt][1]);
#pragma unroll
          for (int nt = 0; nt < kBK / 8; ++nt)
            if (nt * 8 < valid) mma1688(s[nt], qb[k8], bb[nt][0], bb[nt][1]);
        }
        sm.next_tile(s, o, valid, t);
#pragma unroll
        for (int nt = 0; nt < kBK / 8; ++nt) {
          if (nt * 8 >= valid) break;
          float* sp = s[nt];
#pragma unroll
          for (int e = 0; e < 4; ++e) sp[e] = sm.prob(sp[e], e);
          sm.l0 += sp[0] + sp[1];
          sm.l1 += sp[2] + sp[3];
          // A = P with column t <- key 2t and column t + 4 <- key 2t + 1.
          const int at = (nt * 8 + 2 * t) * LD + g;
          std::uint32_t pb[4], ps[4];
          split(sp[0], pb[0], ps[0]);
          split(sp[2], pb[1], ps[1]);
          split(sp[1], pb[2], ps[2]);
          split(sp[3], pb[3], ps[3]);
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt) mma1688(o[dt], ps, vb[at + dt * 8], vb[at + LD + dt * 8]);
          if constexpr (kPv == 3) {
#pragma unroll
            for (int dt = 0; dt < D / 8; ++dt) mma1688(o[dt], pb, vs[at + dt * 8], vs[at + LD + dt * 8]);
          }
#pragma unroll
          for (int dt = 0; dt < D / 8; ++dt) mma1688(o[dt], pb, vb[at + dt * 8], vb[at + LD + dt * 8]);
        }
      });
  if (!warp_active) return;
  float i0, i1;
  sm.finish(i0, i1);
  store_rows<float, D>(p.out, o, i0, i1, static_cast<std::size_t>(b) * N, h, E, N, r0, r1, t);
}

template <int D, int kPv>
void launch_d(const AttentionParams& p, cudaStream_t s) {
  constexpr int bytes = smem_bytes<D, kPv>();
  allow_dynamic_smem(attention_tf32_kernel<D, kPv>, bytes);
  const dim3 grid((query_tokens(p) + kBQ - 1) / kBQ, p.heads, p.batch);
  launch_dependent(Pdl::attention, attention_tf32_kernel<D, kPv>, grid, kWarps * 32, bytes, s, p);
}

// --- The wgmma (sm_90a) version, head dim 64: one warpgroup (64 query rows) per block, 32 keys per tile.
//   landed  each thread splits the K chunks it copied (raw rows of 68 floats) into big / small parts,
//           stored 128-byte-swizzled and K-major (a key row of 64 floats is two 128-byte atoms);
//   S       = Q K^T in three passes of 8 wgmma m64n32k8 (small * big, big * small, big * big): Q's
//           parts from registers, K's from shared memory;
//   V^T     while S runs: V transposed into rows of 32 keys per head-dim column (K-major, as TF32 B
//           operands must be), the keys of each 8 in P's fragment order (column t = key 2t, t + 4 =
//           key 2t + 1), rounded (and split for kPv = 3);
//   softmax on the accumulators (the mma fragment layout), then O += P V in kPv passes of 4 wgmma
//           m64n64k8.
constexpr int kWD = 64, kWBK = 32, kWLD = kWD + 4;  // head dim, keys per tile, raw row stride (floats)
constexpr int kWRaw = kWBK * kWLD;                  // one raw K or V tile (floats)
constexpr int kWSw = kWBK * kWD;                    // one swizzled tile: 8 KiB (floats)

template <int kPv>
constexpr int wgmma_smem_bytes() {
  return 1024 + (kPv == 3 ? 4 : 3) * kWSw * 4 + 2 * 2 * kWRaw * 4;  // alignment slack, swizzled, raw stages
}

#ifdef VITRT_WGMMA_DEVICE
// D[64 x 32] (+)= A[64 x 8] B[8 x 32] and D[64 x 64] (+)= A[64 x 8] B[8 x 64], TF32: A from registers,
// B K-major in shared memory. D is overwritten when !accumulate.
__device__ __forceinline__ void wgmma_tf32_n32(float (&d)[4][4], const std::uint32_t (&a)[4], std::uint64_t b_desc,
                                               int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k8.f32.tf32.tf32 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15}, {%16, %17, %18, %19}, %20, p, 1, 1;\n}\n"
      : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),
        "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),
        "+f"(d[3][2]), "+f"(d[3][3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate));
}
__device__ __forceinline__ void wgmma_tf32_n64(float (&d)[8][4], const std::uint32_t (&a)[4], std::uint64_t b_desc,
                                               int accumulate) {
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n64k8.f32.tf32.tf32 " VITRT_WGMMA_D32_LIST
               ", {%32, %33, %34, %35}, %36, p, 1, 1;\n}\n"
               : VITRT_WGMMA_D32
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate));
}
#endif  // VITRT_WGMMA_DEVICE

// Three blocks per SM: ptxas then fits the kernel in 168 registers without spilling (194 otherwise,
// which leaves 2 blocks: b256 tf32 attention 0.659 against 0.553 ms).
template <int kPv>
__global__ void __launch_bounds__(128, 3) attention_tf32_wgmma_kernel(AttentionParams p) {
#ifdef VITRT_WGMMA_DEVICE
  wait_prior_grid();
  extern __shared__ unsigned char smem_raw[];
  unsigned char* const sw = smem_raw + ((1024 - smem_addr(smem_raw) % 1024) % 1024);
  unsigned char* const kb = sw;                 // K big:   two atoms of 32 key rows x 128 bytes
  unsigned char* const ks = sw + kWSw * 4;      // K small
  unsigned char* const vt = sw + 2 * kWSw * 4;  // V^T big: 64 head-dim rows x 128 bytes (32 keys)
  unsigned char* const vts = sw + 3 * kWSw * 4; // V^T small (kPv = 3)
  float* const raw = reinterpret_cast<float*>(sw + (kPv == 3 ? 4 : 3) * kWSw * 4);  // [stage][K, V][32 x 68]

  const int N = p.tokens, E = p.heads * kWD;
  const int h = blockIdx.y, b = blockIdx.z, q0 = blockIdx.x * 64;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  const std::size_t stride = 3 * static_cast<std::size_t>(E);
  const float* base =
      static_cast<const float*>(p.qkv) + static_cast<std::size_t>(b) * N * stride + static_cast<std::size_t>(h) * kWD;
  const int r0 = q0 + warp * 16 + g, r1 = r0 + 8;

  // Q as split A fragments (the same layout for m64nNk8 TF32).
  std::uint32_t qb[kWD / 8][4], qs[kWD / 8][4];
  load_q_split<kWD>(base, stride, N, r0, r1, t, qb, qs);
  float o[kWD / 8][4] = {};
  OnlineSoftmax sm(p.scale);
  kv_tile_loop<true>(
      (N + kWBK - 1) / kWBK,
      [&](int tile, int stage) {
        float* k_raw = raw + stage * 2 * kWRaw;
        load_kv_tile<float, kWD, kWBK, PaddedRows<kWLD>, 128>(base, stride, E, N, tile, k_raw, k_raw + kWRaw);
      },
      [&](int, int stage) {
        // The K chunks this thread copied (load_kv_tile's assignment): row r, columns c .. c + 3, one
        // 16-byte swizzled chunk of atom c / 32.
        const float* k_raw = raw + stage * 2 * kWRaw;
#pragma unroll
        for (int j = 0; j < kWBK * (kWD / 4) / 128; ++j) {
          const int i = threadIdx.x + j * 128, r = i / (kWD / 4), c = (i % (kWD / 4)) * 4;
          const float4 x = *reinterpret_cast<const float4*>(k_raw + r * kWLD + c);
          std::uint32_t hi[4], lo[4];
          split(x.x, hi[0], lo[0]);
          split(x.y, hi[1], lo[1]);
          split(x.z, hi[2], lo[2]);
          split(x.w, hi[3], lo[3]);
          const unsigned off = (c / 32) * (kWBK * 128) + sw128_f32(r, c % 32);
          *reinterpret_cast<uint4*>(kb + off) = make_uint4(hi[0], hi[1], hi[2], hi[3]);
          *reinterpret_cast<uint4*>(ks + off) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
        }
      },
      [&](int tile, int stage) {
        const int valid = min(kWBK, N - tile * kWBK);
        // Descriptors first (an input register defined between two wgmmas makes ptxas serialize them).
        // K: k-step kk (8 head-dim columns, 32 bytes) in atom kk / 4; V^T: k-step kk = 8 keys.
        const Sw128Desc kbd(smem_addr(kb)), ksd(smem_addr(ks)), vtd(smem_addr(vt)), vtsd(smem_addr(vts));
        std::uint64_t dkb[kWD / 8], dks[kWD / 8], dvt[kWBK / 8], dvts[kWBK / 8];
#pragma unroll
        for (int kk = 0; kk < kWD / 8; ++kk) {
          dkb[kk] = kbd.at((kk / 4) * (kWBK * 128) + (kk % 4) * 32);
          dks[kk] = ksd.at((kk / 4) * (kWBK * 128) + (kk % 4) * 32);
        }
#pragma unroll
        for (int kk = 0; kk < kWBK / 8; ++kk) {
          dvt[kk] = vtd.at(kk * 32);
          dvts[kk] = vtsd.at(kk * 32);
        }
        pin(dkb);
        pin(dks);
        float s[kWBK / 8][4];
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kWD / 8; ++kk) wgmma_tf32_n32(s, qs[kk], dkb[kk], kk);
#pragma unroll
        for (int kk = 0; kk < kWD / 8; ++kk) wgmma_tf32_n32(s, qb[kk], dks[kk], 1);
#pragma unroll
        for (int kk = 0; kk < kWD / 8; ++kk) wgmma_tf32_n32(s, qb[kk], dkb[kk], 1);
        wgmma_commit();
        // V^T while S runs. Lane = key (so each store of a warp covers 32 distinct banks), warp w takes
        // head-dim columns 4w .. 4w + 3 + 16 j.
        {
          const float* v_raw = raw + stage * 2 * kWRaw + kWRaw;
          const int key = lane, pos = (key & ~7) | ((key & 1) ? 4 + ((key & 7) >> 1) : (key & 7) >> 1);
#pragma unroll
          for (int j = 0; j < kWD / 16; ++j) {
            const int n0 = 4 * warp + 16 * j;
            const float4 x = *reinterpret_cast<const float4*>(v_raw + key * kWLD + n0);
            const float xs[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
            for (int e = 0; e < 4; ++e) {
              const unsigned off = sw128_f32(n0 + e, pos);
              if constexpr (kPv == 3) {
                std::uint32_t hi, lo;
                split(xs[e], hi, lo);
                *reinterpret_cast<std::uint32_t*>(vt + off) = hi;
                *reinterpret_cast<std::uint32_t*>(vts + off) = lo;
              } else {
                *reinterpret_cast<std::uint32_t*>(vt + off) = tf32_rna(xs[e]);
              }
            }
          }
        }
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
        __syncthreads();
        pin(dvt);
        pin(dvts);
        wgmma_wait<0>();
        fence_regs(s);
        sm.next_tile(s, o, valid, t);  // masks keys >= valid
        std::uint32_t pb[kWBK / 8][4], ps[kWBK / 8][4];
#pragma unroll
        for (int kk = 0; kk < kWBK / 8; ++kk) {
          float* sp = s[kk];
#pragma unroll
          for (int e = 0; e < 4; ++e) sp[e] = sm.prob(sp[e], e);
          sm.l0 += sp[0] + sp[1];
          sm.l1 += sp[2] + sp[3];
          // A = P with column t <- key 2t and column t + 4 <- key 2t + 1 (V^T's order).
          split(sp[0], pb[kk][0], ps[kk][0]);
          split(sp[2], pb[kk][1], ps[kk][1]);
          split(sp[1], pb[kk][2], ps[kk][2]);
          split(sp[3], pb[kk][3], ps[kk][3]);
        }
        fence_regs(o);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kWBK / 8; ++kk) wgmma_tf32_n64(o, ps[kk], dvt[kk], 1);
        if constexpr (kPv == 3) {
#pragma unroll
          for (int kk = 0; kk < kWBK / 8; ++kk) wgmma_tf32_n64(o, pb[kk], dvts[kk], 1);
        }
#pragma unroll
        for (int kk = 0; kk < kWBK / 8; ++kk) wgmma_tf32_n64(o, pb[kk], dvt[kk], 1);
        wgmma_commit();
        wgmma_wait<0>();
        fence_regs(o);
      });
  float i0, i1;
  sm.finish(i0, i1);
  store_rows<float, kWD>(p.out, o, i0, i1, static_cast<std::size_t>(b) * N, h, E, N, r0, r1, t);
#else
  (void)p;
#endif
}

template <int kPv>
void launch_wgmma(const AttentionParams& p, cudaStream_t s) {
  constexpr int bytes = wgmma_smem_bytes<kPv>();
  allow_dynamic_smem(attention_tf32_wgmma_kernel<kPv>, bytes);
  const dim3 grid((query_tokens(p) + 63) / 64, p.heads, p.batch);
  launch_dependent(Pdl::attention, attention_tf32_wgmma_kernel<kPv>, grid, 128, bytes, s, p);
}

void launch(const AttentionParams& p, cudaStream_t s) {
  if (is_bf16x3_variant(p.variant)) {
    attention_bf16x3(p, s);  // checks that it takes the shape, session and device
    return;
  }
  if (p.variant == kAttentionTf32Wgmma) {
    VITRT_CHECK(attention_tf32_wgmma_supports(p), "attention: the 3xTF32 wgmma kernel does not take head dim ",
                p.head_dim, " on compute capability ", p.arch, " (it needs head dim 64, fp32, sm_90a)");
    if (p.tf32_session) launch_wgmma<2>(p, s);
    else launch_wgmma<3>(p, s);
    CUDA_CHECK_LAUNCH();
    return;
  }
  const bool ok = with_head_dim16(p.head_dim, [&](auto d) {
    if (p.tf32_session) launch_d<decltype(d)::value, 2>(p, s);
    else launch_d<decltype(d)::value, 3>(p, s);
  });
  VITRT_CHECK(ok, "attention: head dim ", p.head_dim, " is not supported by the 3xTF32 kernel");
  CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_tf32_supports(const AttentionParams& p) {
  return p.dt == DT::f32 && p.head_dim % 16 == 0 && p.head_dim <= 128;
}

bool attention_tf32_wgmma_supports(const AttentionParams& p) {
#ifdef VITRT_CUDA_SM90A
  return p.dt == DT::f32 && p.head_dim == kWD && p.arch == 90;
#else
  (void)p;
  return false;
#endif
}

void attention_tf32(const AttentionParams& p, cudaStream_t s) { launch(p, s); }

}  // namespace vitrt::cuda

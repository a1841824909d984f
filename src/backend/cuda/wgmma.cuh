// Device helpers for Hopper's warpgroup tensor-core instructions (wgmma, sm_90a), shared by the
// attention kernels: shared-memory descriptors, fence / commit / wait, register fences, the operand
// list of a 64 x 64 fp32 accumulator, and the 16-bit (fp16 / bf16) m64nNk16 instructions with A from
// registers or shared memory. VITRT_WGMMA_DEVICE is defined where they exist (device
// code compiled for sm_90a); elsewhere the kernels that use them have empty bodies.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>
#include <utility>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define VITRT_WGMMA_DEVICE 1
#endif

// The 32 registers of a 64 x 64 fp32 accumulator d[8][4] as in/out operands, and their list.
#define VITRT_WGMMA_D32                                                                                          \
  "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]),       \
      "+f"(d[1][3]), "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]),   \
      "+f"(d[3][2]), "+f"(d[3][3]), "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]),   \
      "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]), "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),   \
      "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
#define VITRT_WGMMA_D32_LIST                                                                                    \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, " \
  "%23, %24, %25, %26, %27, %28, %29, %30, %31}"

// The accumulator registers d[i..i+15][0..3] as in/out operands, and the operand lists of a 64 x 128
// (64 registers) and a 64 x 256 (128 registers) fp32 accumulator: the GEMMs' wide wgmma shapes.
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

namespace vitrt::cuda {

#ifdef VITRT_WGMMA_DEVICE
// Shared-memory matrix descriptors for 128-byte-swizzled operands starting at `addr`: start address,
// leading byte offset (unused by these layouts, 1 by convention), stride byte offset 1024 (the next 8
// rows), swizzle mode 1. at(bytes) is the descriptor of the operand `bytes` further (a multiple of 16):
// one 32-bit add to the start address field (bits 0-13, the address / 16), which cannot carry into the
// fields above it since shared addresses stay below 256 KB. Building every descriptor from scratch took
// about a fifth of the instructions of the all-keys kernel's tile loop.
class Sw128Desc {
 public:
  __device__ explicit Sw128Desc(unsigned addr) : lo_(((addr & 0x3FFFF) >> 4) | (1u << 16)) {}
  __device__ std::uint64_t at(unsigned bytes) const {
    return static_cast<std::uint64_t>(lo_ + (bytes >> 4)) | (std::uint64_t{1024 >> 4} << 32) | (std::uint64_t{1} << 62);
  }

 private:
  unsigned lo_;  // start address / 16 and the leading byte offset field
};

// Byte offset of element (row r, column c) in a 128-byte-swizzled tile whose rows hold 32 floats
// (chunk j of 4 floats of row r lives at chunk j ^ (r % 8)).
__device__ __forceinline__ unsigned sw128_f32(int r, int c) {
  return static_cast<unsigned>(r * 128 + ((((c >> 2) ^ r) & 7) << 4) + (c & 3) * 4);
}

// Byte offset of the 16-bit element (row r, column c) in a 128-byte-swizzled tile whose rows hold 64
// elements (chunk j of 8 elements of row r lives at chunk j ^ (r % 8)).
__device__ __forceinline__ unsigned sw128_b16(int r, int c) {
  return static_cast<unsigned>(r * 128 + ((((c >> 3) ^ r) & 7) << 4) + (c & 7) * 2);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int Pending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(Pending) : "memory");
}

// Keeps the compiler from moving reads or writes of accumulator registers across wgmma issue / wait.
template <int R>
__device__ __forceinline__ void fence_regs(float (&a)[R][4]) {
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(a[i][e])::"memory");
}

// Materializes descriptor registers at this point of the program (an empty asm that "defines" them).
template <int N>
__device__ __forceinline__ void pin(std::uint64_t (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+l"(d[i]));
}
template <int M, int N>
__device__ __forceinline__ void pin(std::uint64_t (&d)[M][N]) {
#pragma unroll
  for (int i = 0; i < M; ++i) pin(d[i]);
}

// --- 16-bit operands (fp16 / bf16), k16.

// Accumulator tiles 2C and 2C + 1 of d (16 columns) as the outputs of an m64n16k16 wgmma.
#define VITRT_WGMMA_D8                                                                                     \
  "+f"(d[2 * C][0]), "+f"(d[2 * C][1]), "+f"(d[2 * C][2]), "+f"(d[2 * C][3]), "+f"(d[2 * C + 1][0]),      \
      "+f"(d[2 * C + 1][1]), "+f"(d[2 * C + 1][2]), "+f"(d[2 * C + 1][3])
// D[64 x 64] (+)= A[64 x 16] B[16 x 64]: A from registers, B from shared memory (TransB: stored
// MN-major, as V is for P V; else K-major, as K is for Q K^T). D is overwritten when !accumulate.
#define VITRT_WGMMA_RS_N64(TYPE)                                                                        \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"                                             \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " " VITRT_WGMMA_D32_LIST    \
               ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"                                        \
               : VITRT_WGMMA_D32                                                                        \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate), "n"(TransB))
// The 16 columns of accumulator tiles 2C, 2C + 1 of d: D[64 x 16] (+)= A[64 x 16] B[16 x 16].
#define VITRT_WGMMA_RS_N16(TYPE)                                                                           \
  asm volatile(                                                                                            \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %13, 0;\n"                                                         \
      "wgmma.mma_async.sync.aligned.m64n16k16.f32." TYPE "." TYPE                                           \
      " {%0, %1, %2, %3, %4, %5, %6, %7}, {%8, %9, %10, %11}, %12, p, 1, 1, %14;\n}\n"                      \
      : VITRT_WGMMA_D8                                                                                    \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate), "n"(TransB))

// The same two shapes with A from shared memory too (K-major, as a Q tile is for Q K^T).
#define VITRT_WGMMA_SS_N64(TYPE)                                                                     \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                          \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " " VITRT_WGMMA_D32_LIST \
               ", %32, %33, p, 1, 1, 0, 0;\n}\n"                                                    \
               : VITRT_WGMMA_D32                                                                     \
               : "l"(a_desc), "l"(b_desc), "r"(accumulate))
#define VITRT_WGMMA_SS_N16(TYPE)                                                                           \
  asm volatile(                                                                                            \
      "{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"                                                         \
      "wgmma.mma_async.sync.aligned.m64n16k16.f32." TYPE "." TYPE                                           \
      " {%0, %1, %2, %3, %4, %5, %6, %7}, %8, %9, p, 1, 1, 0, 0;\n}\n"                                     \
      : VITRT_WGMMA_D8                                                                                    \
      : "l"(a_desc), "l"(b_desc), "r"(accumulate))

template <typename T, int TransB>
__device__ __forceinline__ void wgmma_n64(float (&d)[8][4], const std::uint32_t (&a)[4], std::uint64_t b_desc,
                                          int accumulate) {
  if constexpr (std::is_same_v<T, __half>) VITRT_WGMMA_RS_N64("f16");
  else VITRT_WGMMA_RS_N64("bf16");
}

template <typename T, int C, int TransB, int R>
__device__ __forceinline__ void wgmma_n16(float (&d)[R][4], const std::uint32_t (&a)[4], std::uint64_t b_desc,
                                          int accumulate) {
  if constexpr (std::is_same_v<T, __half>) VITRT_WGMMA_RS_N16("f16");
  else VITRT_WGMMA_RS_N16("bf16");
}

template <typename T>
__device__ __forceinline__ void wgmma_ss_n64(float (&d)[8][4], std::uint64_t a_desc, std::uint64_t b_desc, int accumulate) {
  if constexpr (std::is_same_v<T, __half>) VITRT_WGMMA_SS_N64("f16");
  else VITRT_WGMMA_SS_N64("bf16");
}

template <typename T, int C, int R>
__device__ __forceinline__ void wgmma_ss_n16(float (&d)[R][4], std::uint64_t a_desc, std::uint64_t b_desc, int accumulate) {
  if constexpr (std::is_same_v<T, __half>) VITRT_WGMMA_SS_N16("f16");
  else VITRT_WGMMA_SS_N16("bf16");
}

// The same n64 shape on accumulator tiles O .. O + 7 of a wider accumulator d[R][4] (a GEMM tile of
// R * 8 columns issued as n64 / n16 / n8 pieces), and an n8 piece on tile C, both from shared memory.
#define VITRT_WGMMA_D32_AT \
  "+f"(d[O + 0][0]), "+f"(d[O + 0][1]), "+f"(d[O + 0][2]), "+f"(d[O + 0][3]), "+f"(d[O + 1][0]), \
      "+f"(d[O + 1][1]), "+f"(d[O + 1][2]), "+f"(d[O + 1][3]), "+f"(d[O + 2][0]), "+f"(d[O + 2][1]), \
      "+f"(d[O + 2][2]), "+f"(d[O + 2][3]), "+f"(d[O + 3][0]), "+f"(d[O + 3][1]), "+f"(d[O + 3][2]), \
      "+f"(d[O + 3][3]), "+f"(d[O + 4][0]), "+f"(d[O + 4][1]), "+f"(d[O + 4][2]), "+f"(d[O + 4][3]), \
      "+f"(d[O + 5][0]), "+f"(d[O + 5][1]), "+f"(d[O + 5][2]), "+f"(d[O + 5][3]), "+f"(d[O + 6][0]), \
      "+f"(d[O + 6][1]), "+f"(d[O + 6][2]), "+f"(d[O + 6][3]), "+f"(d[O + 7][0]), "+f"(d[O + 7][1]), \
      "+f"(d[O + 7][2]), "+f"(d[O + 7][3])
#define VITRT_WGMMA_SS_N64_AT(TYPE)                                                                  \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                          \
               "wgmma.mma_async.sync.aligned.m64n64k16.f32." TYPE "." TYPE " " VITRT_WGMMA_D32_LIST \
               ", %32, %33, p, 1, 1, 0, 0;\n}\n"                                                    \
               : VITRT_WGMMA_D32_AT                                                                  \
               : "l"(a_desc), "l"(b_desc), "r"(accumulate))
#define VITRT_WGMMA_SS_N8(TYPE)                                                                  \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %6, 0;\n"                                       \
               "wgmma.mma_async.sync.aligned.m64n8k16.f32." TYPE "." TYPE                         \
               " {%0, %1, %2, %3}, %4, %5, p, 1, 1, 0, 0;\n}\n"                                  \
               : "+f"(d[C][0]), "+f"(d[C][1]), "+f"(d[C][2]), "+f"(d[C][3])                       \
               : "l"(a_desc), "l"(b_desc), "r"(accumulate))

template <typename T, int O, int R>
__device__ __forceinline__ void wgmma_ss_n64_at(float (&d)[R][4], std::uint64_t a_desc, std::uint64_t b_desc,
                                                int accumulate) {
  static_assert(O >= 0 && O + 8 <= R, "n64 piece outside the accumulator");
  if constexpr (std::is_same_v<T, __half>) VITRT_WGMMA_SS_N64_AT("f16");
  else VITRT_WGMMA_SS_N64_AT("bf16");
}

template <typename T, int C, int R>
__device__ __forceinline__ void wgmma_ss_n8(float (&d)[R][4], std::uint64_t a_desc, std::uint64_t b_desc, int accumulate) {
  static_assert(C >= 0 && C < R, "n8 piece outside the accumulator");
  if constexpr (std::is_same_v<T, __half>) VITRT_WGMMA_SS_N8("f16");
  else VITRT_WGMMA_SS_N8("bf16");
}

// D[64 x 128] (+)= A[64 x 16] B[16 x 128], both K-major from shared memory: the 16-bit GEMM's shape
// (gemm_ws_kernel.cuh). D is overwritten when !accumulate.
#define VITRT_WGMMA_SS_N128(TYPE)                                                                            \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"                                                  \
               "wgmma.mma_async.sync.aligned.m64n128k16.f32." TYPE "." TYPE " " VITRT_GEMM_LIST64            \
               ", %64, %65, p, 1, 1, 0, 0;\n}\n"                                                            \
               : VITRT_GEMM_D64(0)                                                                          \
               : "l"(a_desc), "l"(b_desc), "r"(accumulate))
template <typename T>
__device__ __forceinline__ void wgmma_ss_n128(float (&d)[16][4], std::uint64_t a_desc, std::uint64_t b_desc,
                                              int accumulate) {
  if constexpr (std::is_same_v<T, __half>) VITRT_WGMMA_SS_N128("f16");
  else VITRT_WGMMA_SS_N128("bf16");
}

// D[64 x 8] (+)= A[64 x 16] B[16 x 8], A from registers, B K-major from shared memory. d holds rows g
// and g + 8, columns 2t and 2t + 1 of the warp's 16 rows (the layout of one 8-wide accumulator tile).
#define VITRT_WGMMA_RS_N8(TYPE)                                                                              \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %9, 0;\n"                                                 \
               "wgmma.mma_async.sync.aligned.m64n8k16.f32." TYPE "." TYPE                                    \
               " {%0, %1, %2, %3}, {%4, %5, %6, %7}, %8, p, 1, 1, 0;\n}\n"                                  \
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                             \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b_desc), "r"(accumulate))
template <typename T>
__device__ __forceinline__ void wgmma_n8(float (&d)[4], const std::uint32_t (&a)[4], std::uint64_t b_desc, int accumulate) {
  if constexpr (std::is_same_v<T, __half>) VITRT_WGMMA_RS_N8("f16");
  else VITRT_WGMMA_RS_N8("bf16");
}

// Descriptor of an operand without swizzle at `addr` (16-byte aligned): 8 x 16-byte core matrices
// 128 bytes apart along K (leading byte offset) and 256 bytes apart along M / N (stride byte offset).
// With at most 8 rows and 16 columns the operand lies within the first 512 bytes either way.
__device__ __forceinline__ std::uint64_t plain_desc(unsigned addr) {
  return static_cast<std::uint64_t>((addr & 0x3FFFF) >> 4) | (std::uint64_t{128 >> 4} << 16) |
         (std::uint64_t{256 >> 4} << 32);
}

// Calls f(std::integral_constant<int, P>{}) with P = the 16-key pieces covering `valid` keys (1..4), so
// each tile shape gets straight-line code: a conditionally issued wgmma makes ptxas serialize them all.
template <typename F>
__device__ __forceinline__ void with_pieces(int valid, F&& f) {
  switch ((valid + 15) / 16) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    default: f(std::integral_constant<int, 4>{}); break;
  }
}

#endif  // VITRT_WGMMA_DEVICE

}  // namespace vitrt::cuda

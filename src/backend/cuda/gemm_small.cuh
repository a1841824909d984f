// Our own 16-bit GEMM for small batches on Hopper (wgmma, TMA, sm_90a), made to take part in
// programmatic dependent launch: D[M, N] (+)= act(A[M, K] W[N, K]^T + bias), fp16 or bf16 operands,
// fp32 accumulation, the output in fp32 or the operands' type.
//
// Why: at batch 1 of vit_base a forward is 84 kernels of ~5 us each while the work in each is ~1 us
// (docs/performance.md). cuBLASLt's kernels neither wait programmatically nor let the next kernel start
// early (session 15), so every GEMM pays its launch, its weight reads from DRAM and its pipeline fill
// after the kernel before it has ended. This kernel copies its slice of W (constant during a forward)
// into shared memory *before* griddepcontrol.wait, so that part overlaps the kernel before it, then
// lets the kernel after it launch (griddepcontrol.launch_dependents) and only then reads A.
//
// Shape of the work: a block computes a BM x BN tile (BM = 64 per consumer warpgroup, BN a multiple of
// 8, issued as n64 / n16 / n8 wgmma pieces) over K / split columns, all of which fit in shared memory
// at once (one mbarrier per 64-column k-tile, no stage reuse). The blocks form a thread-block cluster
// of MC x split:
// - the MC blocks of consecutive M tiles share W's k-tiles: each copies every MC-th one into all of
//   them (TMA multicast), so W leaves L2 once per MC row tiles;
// - the split blocks of one output tile divide K, and their fp32 partial sums are added through
//   distributed shared memory in a fixed order (the result does not depend on timing); each finishes
//   BM / split rows.
// Tile widths other than 64 / 128 exist so that the GEMMs of batch 1 (197 rows: 4 M tiles) fill the
// GPU in one wave of clusters (qkv: 4 x 29 tiles of 64 x 80); the last tile along N may reach past N
// (W's rows there arrive as zeros and those columns are not written). The bias slice and the tensor
// maps are fetched before griddepcontrol.wait as well.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace vitrt::cuda {

struct GemmSmallParams {
  const void* a = nullptr;  // [rows, in], row stride lda, fp16 / bf16
  std::int64_t lda = 0;
  const void* w = nullptr;     // [out, in], contiguous, the same type
  const void* bias = nullptr;  // [out], in the output type (as cuBLASLt's bias pointer); required
  void* d = nullptr;           // [rows, out], row stride ldd
  std::int64_t ldd = 0;
  std::int64_t rows = 0;
  int in = 0, out = 0;
  DT in_dt = DT::bf16;            // f16 or bf16
  DT out_dt = DT::bf16;           // f32 or in_dt
  Epilogue act = Epilogue::none;  // act(acc + bias)
  bool accumulate = false;        // d += act(acc + bias) (a residual), else d = act(acc + bias)
  int variant = 0;                // one of gemm_small_variants(); 0 = none
  // Measurement only (bench/kernels/small_gemm_trace.cpp): when set, thread 0 of each block writes
  // kSmallGemmTraceSlots stamps at trace[block * kSmallGemmTraceSlots ...] (SmallGemmStamp); the
  // caller sizes it for the grid (gemm_small_blocks).
  std::uint64_t* trace = nullptr;
};

// The stamps of a traced launch: the %globaltimer (ns) at entry and exit, the SM, and clock64 at each
// phase of the kernel.
enum SmallGemmStamp : int {
  kStampGlobalStart,  // %globaltimer at entry
  kStampSm,           // %smid
  kStampEntry,        // clock64 from here on
  kStampSetup,        // barriers initialized, bias staged, cluster synchronized
  kStampWIssued,      // W's copies issued
  kStampWaited,       // griddepcontrol.wait returned
  kStampAIssued,      // A's copies issued
  kStampFirstTile,    // k-tile 0 has landed
  kStampLastTile,     // the last k-tile has landed
  kStampMath,         // the wgmmas are done
  kStampPartial,      // the partial tile is in shared memory and the cluster / block synchronized
  kStampEpilogue,     // this thread's outputs are written
  kStampExit,         // after the final cluster barrier
  kStampGlobalEnd,    // %globaltimer at exit
  kSmallGemmTraceSlots = 16
};
// The blocks a launch of p.variant has (for sizing p.trace).
std::int64_t gemm_small_blocks(const GemmSmallParams& p);

// A variant's number: 100000 * BM / 64 + 100 * BN + 10 * MC + split, e.g. 108041 for 64 x 80 tiles with
// W shared by 4 blocks and K unsplit. Only the combinations gemm_small.cu builds exist.
constexpr int gemm_small_variant(int bm, int bn, int mc, int split) {
  return 100000 * (bm / 64) + 100 * bn + 10 * mc + split;
}

// The variants that take this GEMM on a device of compute capability `arch` (major * 10 + minor);
// empty when none does (not sm_90a, K not a multiple of 64 per split, N not a multiple of 8,
// misaligned rows, an operand slice too large for shared memory, or a type pairing it does not cover).
std::vector<int> gemm_small_variants(const GemmSmallParams& p, int arch);
bool gemm_small_takes(const GemmSmallParams& p, int arch, int variant);  // no allocation
std::string gemm_small_variant_name(int variant);
// The variant an untuned plan takes: the lowest of a rough time model (waves of resident clusters on
// `sm_count` SMs, times the larger of one block's copies + math and the whole grid's L2 reads); 0 if
// none takes the GEMM.
int gemm_small_default_variant(const GemmSmallParams& p, int arch, int sm_count);
// Launches p.variant (checked against gemm_small_variants), as a dependent launch when the gemm group
// allows it (kernel_attrs.h).
void gemm_small(const GemmSmallParams& p, int arch, cudaStream_t s);

}  // namespace vitrt::cuda

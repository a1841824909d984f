// Multi-head attention on the CPU: scores = Q K^T * scale and out = P V as batched oneDNN matmuls
// that read Q, K and V in place from the qkv GEMM output (strided views, no copies); our own
// softmax in fp32 between them.
#pragma once

#include <unordered_map>

#include "backend/cpu/dnnl_util.h"

namespace vitrt::cpu {

class AttentionOp {
 public:
  // `scratch`: fp32 scores [batch, heads, tokens, tokens] plus, for bf16, probabilities of the same
  // count in bf16 (see scratch_bytes).
  AttentionOp(const AttentionArgs& a, void* scratch, dnnl::engine& eng);
  void execute(const AttentionArgs& a, dnnl::stream& strm);
  static std::size_t scratch_bytes(int batch, int tokens, int heads, DT dt);

 private:
  dnnl::matmul qk_, pv_;
  std::unordered_map<int, dnnl::memory> qk_args_, pv_args_;
  float* scores_ = nullptr;
  void* probs_ = nullptr;
  std::int64_t rows_ = 0, cols_ = 0;
  DT dt_ = DT::f32;
};

// fp32 softmax over `rows` rows of length `n`, writing `dst` in `dst_dt`. `src` is used as scratch
// (overwritten with the exponentials); dst may alias it when dst_dt is fp32.
void softmax_rows(const float* src, void* dst, DT dst_dt, std::int64_t rows, std::int64_t n);

}  // namespace vitrt::cpu

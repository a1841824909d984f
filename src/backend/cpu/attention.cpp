#include "backend/cpu/attention.h"

#include <bit>
#include <cmath>
#include <cstdint>

#include "core/check.h"
#include "core/half.h"

namespace vitrt::cpu {
namespace {

using tag = dnnl::memory::format_tag;

// exp(x) for x <= 0 (softmax after subtracting the max): 2^(x log2 e) split into 2^n * 2^f with a
// degree-6 polynomial for 2^f on [-0.5, 0.5]; relative error ~2e-7. Written to vectorize.
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.44269504088896341f;
  const float n = std::nearbyint(t);
  const float f = t - n;
  float p = 1.5353362e-4f;
  p = p * f + 1.3398874e-3f;
  p = p * f + 9.6180970e-3f;
  p = p * f + 5.5503406e-2f;
  p = p * f + 2.4022652e-1f;
  p = p * f + 6.9314718e-1f;
  p = p * f + 1.0f;
  const auto bits = static_cast<std::int32_t>(n) + 127;
  return p * std::bit_cast<float>(bits << 23);
}

}  // namespace

void softmax_rows(const float* src, void* dst, DT dst_dt, std::int64_t rows, std::int64_t n) {
#pragma omp parallel for schedule(static)
  for (std::int64_t r = 0; r < rows; ++r) {
    // Exponentials are written in place into the fp32 row (src may alias dst), then scaled.
    float* e = const_cast<float*>(src) + r * n;
    float mx = e[0];
    for (std::int64_t i = 1; i < n; ++i) mx = e[i] > mx ? e[i] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (std::int64_t i = 0; i < n; ++i) {
      e[i] = fast_exp(e[i] - mx);
      sum += e[i];
    }
    const float inv = 1.0f / sum;
    if (dst_dt == DT::f32) {
      float* d = static_cast<float*>(dst) + r * n;
#pragma omp simd
      for (std::int64_t i = 0; i < n; ++i) d[i] = e[i] * inv;
    } else {
      auto* d = static_cast<std::uint16_t*>(dst) + r * n;
      for (std::int64_t i = 0; i < n; ++i) d[i] = float_to_bf16(e[i] * inv);
    }
  }
}

std::size_t AttentionOp::scratch_bytes(int batch, int tokens, int heads, DT dt) {
  const auto n = static_cast<std::size_t>(batch) * heads * tokens * tokens;
  return n * 4 + (dt == DT::f32 ? 0 : n * dt_size(dt));
}

AttentionOp::AttentionOp(const AttentionArgs& a, void* scratch, dnnl::engine& eng) : dt_(a.dt) {
  const std::int64_t B = a.batch, H = a.heads, N = a.tokens, D = a.head_dim, E = H * D;
  VITRT_CHECK(a.queries >= 0 && a.queries <= a.tokens, "attention: ", a.queries, " query tokens of ", a.tokens);
  const std::int64_t Q = a.queries > 0 ? a.queries : N;  // query tokens per image (the first Q)
  const auto adt = to_dnnl(a.dt);
  rows_ = B * H * Q;
  cols_ = N;
  scores_ = static_cast<float*>(scratch);
  probs_ = a.dt == DT::f32 ? static_cast<void*>(scores_) : static_cast<void*>(scores_ + B * H * Q * N);
  auto* qkv = static_cast<char*>(const_cast<void*>(a.qkv));
  const std::size_t es = dt_size(a.dt);
  // qkv element (b, n, s, h, d) sits at ((b * N + n) * 3 + s) * E + h * D + d.
  const dnnl::memory::desc q_md({B, H, Q, D}, adt, {N * 3 * E, D, 3 * E, 1});
  const dnnl::memory::desc kt_md({B, H, D, N}, adt, {N * 3 * E, D, 1, 3 * E});
  const dnnl::memory::desc v_md({B, H, N, D}, adt, {N * 3 * E, D, 3 * E, 1});
  const dnnl::memory::desc s_md({B, H, Q, N}, dnnl::memory::data_type::f32, tag::abcd);
  const dnnl::memory::desc p_md({B, H, Q, N}, adt, tag::abcd);
  const dnnl::memory::desc o_md({B, H, Q, D}, adt, {N * E, D, E, 1});
  dnnl_call("attention planning", [&] {
    dnnl::primitive_attr qk_attr;
    qk_attr.set_output_scales(0, {1.0f / std::sqrt(static_cast<float>(D))});
    dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(q_md, kt_md, s_md), qk_attr, eng);
    dnnl::matmul::primitive_desc pv_pd(dnnl::matmul::desc(p_md, v_md, o_md), eng);
    qk_ = dnnl::matmul(qk_pd);
    pv_ = dnnl::matmul(pv_pd);
    qk_args_ = {{DNNL_ARG_SRC, dnnl::memory(q_md, eng, qkv)},
                {DNNL_ARG_WEIGHTS, dnnl::memory(kt_md, eng, qkv + static_cast<std::size_t>(E) * es)},
                {DNNL_ARG_DST, dnnl::memory(s_md, eng, scores_)}};
    pv_args_ = {{DNNL_ARG_SRC, dnnl::memory(p_md, eng, probs_)},
                {DNNL_ARG_WEIGHTS, dnnl::memory(v_md, eng, qkv + 2 * static_cast<std::size_t>(E) * es)},
                {DNNL_ARG_DST, dnnl::memory(o_md, eng, a.out)}};
    return 0;
  });
}

void AttentionOp::execute(const AttentionArgs&, dnnl::stream& strm) {
  dnnl_call("attention", [&] {
    qk_.execute(strm, qk_args_);
    softmax_rows(scores_, probs_, dt_, rows_, cols_);
    pv_.execute(strm, pv_args_);
    return 0;
  });
}

}  // namespace vitrt::cpu

#include "backend/cpu/linear.h"

#include "core/check.h"

namespace vitrt::cpu {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

const dnnl::memory::desc* WeightCache::layout(const LinearWeights* w, DT t) const {
  auto it = cache_.find({w, t});
  return it == cache_.end() ? nullptr : &it->second.desc;
}

dnnl::memory WeightCache::get(const LinearWeights* w, DT t, const dnnl::memory::desc& want, dnnl::engine& eng,
                              dnnl::stream& strm) {
  auto it = cache_.find({w, t});
  if (it != cache_.end()) return it->second.memory;
  // PyTorch layout [out, in] is the matmul's [K, N] weights with format "ba".
  dnnl::memory user({{w->in, w->out}, dt::f32, tag::ba}, eng, const_cast<float*>(w->weight));
  dnnl::memory packed(want, eng);
  dnnl::reorder(user, packed).execute(strm, user, packed);
  strm.wait();
  cache_.emplace(std::pair{w, t}, Entry{packed, want});
  return packed;
}

LinearOp::LinearOp(const LinearArgs& a, WeightCache& cache, dnnl::engine& eng, dnnl::stream& strm)
    : src_(a.src), dst_(a.dst) {
  dnnl_call("matmul planning", [&] {
    const auto M = a.rows, K = static_cast<std::int64_t>(a.w->in), N = static_cast<std::int64_t>(a.w->out);
    const dnnl::memory::desc src_md({M, K}, to_dnnl(a.src_dt), {a.src_ld, 1});
    const dnnl::memory::desc dst_md({M, N}, to_dnnl(a.dst_dt), {a.dst_ld, 1});
    const dnnl::memory::desc bias_md({1, N}, dt::f32, tag::ab);
    const auto* known = cache.layout(a.w, a.src_dt);
    const dnnl::memory::desc wei_md = known ? *known : dnnl::memory::desc({K, N}, to_dnnl(a.src_dt), tag::any);
    dnnl::post_ops po;
    if (a.epilogue == Epilogue::gelu_erf) po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
    if (a.epilogue == Epilogue::quick_gelu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.702f, 0.f);
    if (a.accumulate) po.append_sum(1.f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(po);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, wei_md, bias_md, dst_md), attr, eng);
    prim_ = dnnl::matmul(pd);
    args_[DNNL_ARG_SRC] = dnnl::memory(src_md, eng, const_cast<void*>(a.src));
    args_[DNNL_ARG_WEIGHTS] = cache.get(a.w, a.src_dt, pd.weights_desc(), eng, strm);
    args_[DNNL_ARG_BIAS] = dnnl::memory(bias_md, eng, const_cast<float*>(a.w->bias));
    args_[DNNL_ARG_DST] = dnnl::memory(dst_md, eng, a.dst);
    return 0;
  });
}

void LinearOp::execute(const LinearArgs& a, dnnl::stream& strm) {
  VITRT_CHECK(a.src == src_ && a.dst == dst_, "internal: linear replayed with buffers other than planned");
  dnnl_call("matmul", [&] {
    prim_.execute(strm, args_);
    return 0;
  });
}

}  // namespace vitrt::cpu

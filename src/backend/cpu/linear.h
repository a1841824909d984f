// Linear layer on oneDNN matmul: bias, GELU (erf) / QuickGELU and residual add fused as post-ops.
#pragma once

#include <map>
#include <memory>
#include <unordered_map>
#include <utility>

#include "backend/cpu/dnnl_util.h"

namespace vitrt::cpu {

// Weights reordered once per session into the layout the matmul prefers, per (weights, dtype).
class WeightCache {
 public:
  dnnl::memory get(const LinearWeights* w, DT dt, const dnnl::memory::desc& want, dnnl::engine& eng,
                   dnnl::stream& strm);
  const dnnl::memory::desc* layout(const LinearWeights* w, DT dt) const;

 private:
  struct Entry {
    dnnl::memory memory;
    dnnl::memory::desc desc;
  };
  std::map<std::pair<const LinearWeights*, DT>, Entry> cache_;
};

class LinearOp {
 public:
  LinearOp(const LinearArgs& a, WeightCache& cache, dnnl::engine& eng, dnnl::stream& strm);
  void execute(const LinearArgs& a, dnnl::stream& strm);

 private:
  dnnl::matmul prim_;
  std::unordered_map<int, dnnl::memory> args_;
  const void* src_ = nullptr;
  void* dst_ = nullptr;
};

}  // namespace vitrt::cpu

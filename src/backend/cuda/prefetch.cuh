// Weights into the L2 cache ahead of the GEMMs that read them. At small batches a GEMM reads each
// weight once, from DRAM, with few blocks in flight: most of its bytes are weight bytes and their
// latency is on the critical path. A prefetch issued earlier on a side stream takes that read off it.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace vitrt::cuda {

struct PrefetchRange {
  const void* ptr = nullptr;
  std::size_t bytes = 0;
};

constexpr int kMaxPrefetchRanges = 4;

struct PrefetchRanges {
  PrefetchRange range[kMaxPrefetchRanges];
  int count = 0;
};

// Asks the L2 to fetch every range (device memory, 16-byte aligned; a tail of less than 16 bytes may
// be left out). A hint: it computes nothing, orders nothing, and the kernel ends as soon as its
// requests are issued.
void prefetch_l2(const PrefetchRanges& r, cudaStream_t s);

}  // namespace vitrt::cuda

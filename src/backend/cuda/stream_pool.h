// Streams for sessions that do not bring their own, kept per device and handed to the next session
// instead of being destroyed. On the H200 (driver 580, CUDA 13.0), once a third stream of a process had
// run a forward, every forward of every session in it, old or new, ran ~5% slower at batch 4; streams
// that ran only a memset, a cuBLASLt matmul, a LayerNorm or an attention kernel, or a pageable copy do
// not count (run298-run305, docs/performance.md, session 24). Sessions made one after another
// (`vitrt bench -b 1,2,4,...`, a server reopening sessions) now share one stream; only sessions alive at
// the same time need streams of their own.
#pragma once

#include <cuda_runtime.h>

namespace vitrt::cuda {

// A non-blocking stream on the current device that no other caller holds: a released one if there is
// one, else a new one. Thread-safe.
cudaStream_t acquire_stream();

// Returns a stream from acquire_stream() (current device the same) after waiting for its work.
void release_stream(cudaStream_t stream) noexcept;

}  // namespace vitrt::cuda

// One process-wide lock that keeps CUDA graph captures apart from calls that would break them.
//
// While one thread captures a stream, a call on another thread that waits for the whole device
// (cudaFree, cudaMemcpy on the legacy stream, destroying a cuBLASLt handle or a stream) or loads a
// kernel module lazily on its first launch can invalidate the capture: the capturing thread then
// sees its next launch fail (cuBLAS reports "execution failed"). Every CUDA backend in the process
// therefore holds this lock
//  - shared while it captures a forward (captures on several threads may run at once), and
//  - exclusively around planning, tuning, the first eager run of each plan, allocation, release and
//    destruction.
// The exclusive side is reentrant on one thread; taking it while the same thread captures is an
// internal error (it would wait for itself).
#pragma once

namespace vitrt::cuda {

class DeviceExclusive {
 public:
  DeviceExclusive();
  ~DeviceExclusive();
  DeviceExclusive(const DeviceExclusive&) = delete;
  DeviceExclusive& operator=(const DeviceExclusive&) = delete;
};

class CaptureShared {
 public:
  CaptureShared();
  ~CaptureShared();
  CaptureShared(const CaptureShared&) = delete;
  CaptureShared& operator=(const CaptureShared&) = delete;
};

}  // namespace vitrt::cuda

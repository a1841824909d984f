#include "backend/cuda/device_lock.h"

#include <shared_mutex>

#include "core/check.h"

namespace vitrt::cuda {
namespace {

std::shared_mutex& device_mutex() {
  static std::shared_mutex m;
  return m;
}

// Per thread: how deep in exclusive scopes, and whether it holds the lock for a capture.
thread_local int exclusive_depth = 0;
thread_local int capture_depth = 0;

}  // namespace

DeviceExclusive::DeviceExclusive() {
  VITRT_CHECK(capture_depth == 0, "internal: a device-wide CUDA call was made during graph capture");
  if (exclusive_depth++ == 0) device_mutex().lock();
}

DeviceExclusive::~DeviceExclusive() {
  if (--exclusive_depth == 0) device_mutex().unlock();
}

CaptureShared::CaptureShared() {
  VITRT_CHECK(exclusive_depth == 0 && capture_depth == 0, "internal: graph capture nested in another device scope");
  device_mutex().lock_shared();
  ++capture_depth;
}

CaptureShared::~CaptureShared() {
  --capture_depth;
  device_mutex().unlock_shared();
}

}  // namespace vitrt::cuda

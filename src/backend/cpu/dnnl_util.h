// Small helpers shared by the oneDNN-based CPU ops.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <string>

#include "backend/backend.h"
#include "vitrt/error.h"

namespace vitrt::cpu {

inline dnnl::memory::data_type to_dnnl(DT t) {
  switch (t) {
    case DT::f32: return dnnl::memory::data_type::f32;
    case DT::bf16: return dnnl::memory::data_type::bf16;
    case DT::f16: return dnnl::memory::data_type::f16;
  }
  return dnnl::memory::data_type::undef;
}

// Rethrows oneDNN errors as vitrt::Error naming the operation.
template <typename F>
auto dnnl_call(const char* what, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN ") + what + " failed: " + e.what());
  }
}

}  // namespace vitrt::cpu

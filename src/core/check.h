// Check macros: throw vitrt::Error with the failed expression, a message and the source location.
#pragma once

#include <sstream>
#include <string>

#include "vitrt/error.h"

namespace vitrt::detail {

[[noreturn]] void throw_error(const char* file, int line, const std::string& message);

// Builds a message from any streamable pieces: str_cat("expected ", n, " found ", m).
template <typename... Args>
std::string str_cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace vitrt::detail

// VITRT_FAIL(pieces...): always throws with the message.
#define VITRT_FAIL(...) ::vitrt::detail::throw_error(__FILE__, __LINE__, ::vitrt::detail::str_cat(__VA_ARGS__))

// VITRT_CHECK(cond, pieces...): throws with the message when cond is false.
#define VITRT_CHECK(cond, ...)  \
  do {                          \
    if (!(cond)) [[unlikely]] { \
      VITRT_FAIL(__VA_ARGS__);  \
    }                           \
  } while (0)

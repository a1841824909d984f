#include "core/check.h"

#include <cstdlib>

namespace vitrt::detail {

// The message is what users see; the source location is only added when VITRT_DEBUG_ERRORS is set,
// so CLI errors stay one readable line.
void throw_error(const char* file, int line, const std::string& message) {
  static const bool with_location = std::getenv("VITRT_DEBUG_ERRORS") != nullptr;
  if (with_location) throw Error(message + " [" + file + ":" + std::to_string(line) + "]");
  throw Error(message);
}

}  // namespace vitrt::detail

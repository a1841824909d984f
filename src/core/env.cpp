#include "core/env.h"

#include <cstdlib>

#include "core/check.h"

namespace vitrt {

std::optional<long long> env_integer(const char* name, long long lo, long long hi, const char* expected) {
  const char* env = std::getenv(name);
  if (!env || !*env) return std::nullopt;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  VITRT_CHECK(end && *end == 0 && v >= lo && v <= hi, name, " must be ", expected, ", not '", env, "'");
  return v;
}

std::vector<std::string_view> comma_items(std::string_view list) {
  std::vector<std::string_view> items;
  for (std::string_view rest = list; !rest.empty();) {
    const std::size_t comma = rest.find(',');
    items.push_back(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
  }
  return items;
}

}  // namespace vitrt

// Environment variables that tune or select behaviour (VITRT_*), parsed one way everywhere.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

namespace vitrt {

// The integer in environment variable `name`: nullopt when unset or empty. Throws "NAME must be
// <expected>, not '<value>'" when it is not an integer in [lo, hi].
std::optional<long long> env_integer(const char* name, long long lo, long long hi, const char* expected);

// The comma-separated items of `list`, in order ("a,,b": "a", "", "b"; a trailing comma adds nothing).
std::vector<std::string_view> comma_items(std::string_view list);

}  // namespace vitrt

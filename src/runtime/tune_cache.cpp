#include "runtime/tune_cache.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "core/check.h"

namespace vitrt {
namespace {

constexpr const char* kFormat = "vitrt-tune-cache/1";

std::string default_path() {
  if (const char* e = std::getenv("VITRT_TUNE_CACHE"); e && *e) return e;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/vitrt/tune-cache.json";
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/vitrt/tune-cache.json";
  return "";
}

nlohmann::json read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nlohmann::json::object();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    VITRT_FAIL("tuning cache ", path, " is not valid JSON (", e.what(), "); delete it or run `vitrt tune` again");
  }
  VITRT_CHECK(j.is_object() && j.value("format", "") == kFormat && j.contains("devices") && j["devices"].is_object(),
              "tuning cache ", path, " is not a vitrt tuning cache (expected \"format\": \"", kFormat,
              "\" and a \"devices\" object); delete it or run `vitrt tune` again");
  return j;
}

std::once_flag untuned_notice;

}  // namespace

TuneCache::TuneCache(std::string device_key, const std::string& path, bool tune)
    : path_(path == "off" ? "" : path.empty() ? default_path() : path), device_key_(std::move(device_key)), tune_(tune) {
  VITRT_CHECK(!tune_ || !path_.empty(), "tuning needs a cache file to write: give a path (--tune-cache) instead of '",
              path, "'");
  if (path_.empty()) return;
  const nlohmann::json file = read_file(path_);
  if (file.contains("devices") && file["devices"].contains(device_key_)) {
    entries_ = file["devices"][device_key_];
    VITRT_CHECK(entries_.is_object(), "tuning cache ", path_, ": the entry for '", device_key_, "' is not an object");
  }
}

const nlohmann::json* TuneCache::find(const std::string& key) const {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &*it;
}

void TuneCache::put(const std::string& key, nlohmann::json value) {
  entries_[key] = value;
  fresh_[key] = std::move(value);
}

std::string forward_check_note(const nlohmann::json& entry) {
  return entry.value("forward_check", false) ? " (forward check)" : "";
}

void TuneCache::report(TuneResult r) { reported_.emplace(r.shape, std::move(r)); }

void TuneCache::rechoose(const std::string& key, nlohmann::json value, const std::string& choice, double us) {
  put(key, std::move(value));
  if (auto it = reported_.find(key); it != reported_.end()) {
    it->second.choice = choice;
    it->second.tuned_us = us;
  }
}

void TuneCache::note_untuned(const std::string& key) {
  if (std::find(untuned_.begin(), untuned_.end(), key) == untuned_.end()) untuned_.push_back(key);
}

std::vector<TuneResult> TuneCache::results() const {
  std::vector<TuneResult> out;
  for (const auto& [k, r] : reported_) out.push_back(r);
  return out;
}

void TuneCache::finish() {
  if (!fresh_.empty()) {
    // Merge with what the file holds now (another process may have tuned other shapes meanwhile),
    // then replace it atomically.
    nlohmann::json file = read_file(path_);
    file["format"] = kFormat;
    if (!file.contains("devices")) file["devices"] = nlohmann::json::object();
    nlohmann::json& mine = file["devices"][device_key_];
    if (!mine.is_object()) mine = nlohmann::json::object();
    for (const auto& [k, v] : fresh_.items()) mine[k] = v;
    const std::filesystem::path target(path_);
    std::error_code ec;
    if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path(), ec);
    const std::string tmp = path_ + ".tmp." + std::to_string(::getpid());
    {
      std::ofstream out(tmp);
      VITRT_CHECK(out, "cannot write the tuning cache ", tmp);
      out << file.dump(1) << "\n";
      VITRT_CHECK(out.good(), "writing the tuning cache ", tmp, " failed");
    }
    std::filesystem::rename(tmp, target, ec);
    VITRT_CHECK(!ec, "cannot replace the tuning cache ", path_, ": ", ec.message());
    fresh_ = nlohmann::json::object();
  }
  if (!untuned_.empty() && !tune_) {
    std::call_once(untuned_notice, [&] {
      log_notice(std::to_string(untuned_.size()) + " GEMM/attention shape(s) are not in the tuning cache" +
                 (path_.empty() ? std::string(" (none in use)") : " " + path_) + " for " + device_key_ +
                 "; using heuristics (run `vitrt tune` for this model, batch sizes and precision)");
    });
  }
}

}  // namespace vitrt

// Tuning cache for GPU backends (`vitrt tune`, the counterpart of FasterTransformer's vit_gemm):
// per GPU identity (name, compute capability, CUDA runtime and cuBLASLt versions) and per shape, the
// winning cuBLASLt algorithm configuration or attention kernel variant. Sessions look shapes up while
// planning; untuned shapes fall back to heuristics (with one notice per process); a tuning session
// times the candidates of missing shapes and merges the winners into the file.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vitrt/session.h"

namespace vitrt {

// What a report adds to a choice the forward check of a tuning session made (the entry says
// "forward_check"): " (forward check)", else "".
std::string forward_check_note(const nlohmann::json& entry);

class TuneCache {
 public:
  // `device_key` names the GPU identity (name, compute capability, CUDA and library versions);
  // `path` as in SessionOptions::tune_cache ("" = environment / default location, "off" = none).
  TuneCache(std::string device_key, const std::string& path, bool tune);

  bool tuning() const { return tune_; }
  const std::string& path() const { return path_; }
  const std::string& device_key() const { return device_key_; }

  // The cached value for a shape key, or null.
  const nlohmann::json* find(const std::string& key) const;
  // Adds a freshly tuned shape (kept in memory; written by finish()).
  void put(const std::string& key, nlohmann::json value);
  // Remembers what the plan uses for a shape (reported by Session::tune_results).
  void report(TuneResult r);
  // Replaces a shape's entry and its reported choice and time (a tuning session's forward check).
  void rechoose(const std::string& key, nlohmann::json value, const std::string& choice, double us);
  void note_untuned(const std::string& key);
  // After planning: writes new entries (merged with the file's current content), and says once per
  // process how many shapes fell back to heuristics.
  void finish();
  std::vector<TuneResult> results() const;

 private:
  std::string path_, device_key_;
  bool tune_;
  nlohmann::json entries_ = nlohmann::json::object();  // this device's entries (file + new)
  nlohmann::json fresh_ = nlohmann::json::object();    // tuned in this session
  std::map<std::string, TuneResult> reported_;
  std::vector<std::string> untuned_;
};

}  // namespace vitrt

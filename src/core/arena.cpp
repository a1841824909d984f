#include "core/arena.h"

#include <algorithm>
#include <numeric>

#include "core/check.h"

namespace vitrt {

ArenaLayout plan_arena(const std::vector<BufferLife>& buffers, std::size_t align) {
  VITRT_CHECK(align > 0 && (align & (align - 1)) == 0, "arena alignment ", align, " is not a power of two");
  auto rounded = [align](std::size_t b) { return (std::max<std::size_t>(b, 1) + align - 1) / align * align; };
  std::vector<std::size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return buffers[a].bytes > buffers[b].bytes; });

  ArenaLayout out;
  out.offsets.assign(buffers.size(), 0);
  std::vector<std::size_t> placed;
  for (std::size_t i : order) {
    const BufferLife& bi = buffers[i];
    VITRT_CHECK(bi.first <= bi.last, "internal: buffer lifetime ", bi.first, "..", bi.last, " is empty");
    // Address ranges of already placed buffers live at the same time, by start offset.
    std::vector<std::pair<std::size_t, std::size_t>> busy;
    for (std::size_t j : placed) {
      const BufferLife& bj = buffers[j];
      if (bj.first <= bi.last && bi.first <= bj.last) busy.emplace_back(out.offsets[j], out.offsets[j] + rounded(bj.bytes));
    }
    std::sort(busy.begin(), busy.end());
    std::size_t offset = 0;
    for (const auto& [lo, hi] : busy) {
      if (offset + rounded(bi.bytes) <= lo) break;  // fits in the gap before this range
      offset = std::max(offset, hi);
    }
    out.offsets[i] = offset;
    out.total = std::max(out.total, offset + rounded(bi.bytes));
    placed.push_back(i);
  }
  return out;
}

}  // namespace vitrt

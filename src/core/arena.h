// Arena layout by buffer lifetimes: buffers whose live step ranges do not overlap may share bytes.
// Greedy placement (largest first, lowest offset that clears every buffer live at the same time),
// the usual approach of inference runtimes' static memory planners.
#pragma once

#include <cstddef>
#include <vector>

namespace vitrt {

struct BufferLife {
  std::size_t bytes = 0;
  int first = 0, last = 0;  // inclusive range of steps in which the buffer is read or written
};

struct ArenaLayout {
  std::vector<std::size_t> offsets;  // one per buffer, multiples of `align`
  std::size_t total = 0;             // bytes the arena needs
};

ArenaLayout plan_arena(const std::vector<BufferLife>& buffers, std::size_t align);

}  // namespace vitrt

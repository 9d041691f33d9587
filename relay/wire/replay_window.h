#pragma once

#include <bitset>
#include <cstdint>

namespace relay::wire {

/// Anti-replay for one sender session: remembers which of the last kSize
/// counters were seen (RFC 6479 style). Fed only with authenticated counters,
/// so a forger cannot move the window.
class ReplayWindow {
 public:
  /// 8192 counters: wide enough that reordering on a lossy WAN path with
  /// retries in flight stays inside it, at 1 KiB per sender.
  static constexpr std::uint64_t kSize = 8192;

  enum class Verdict { fresh, duplicate, too_old };

  /// Accepts each counter once; marks it seen when fresh.
  Verdict check_and_mark(std::uint64_t counter);

 private:
  std::bitset<kSize> seen_;
  std::uint64_t top_ = 0;  // highest counter seen; 0 means none yet
};

}  // namespace relay::wire

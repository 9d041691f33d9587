#pragma once

#include <chrono>

namespace relay {

/// Source of time. Steady time drives timers; wall time stamps events.
class Clock {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;
  using WallTime = std::chrono::system_clock::time_point;

  virtual ~Clock() = default;
  /// Monotonic time for timeouts and intervals.
  virtual SteadyTime steady_now() const = 0;
  /// Calendar time for event timestamps and session ordering.
  virtual WallTime wall_now() const = 0;
};

/// The real clocks of the machine.
class SystemClock final : public Clock {
 public:
  SteadyTime steady_now() const override { return std::chrono::steady_clock::now(); }
  WallTime wall_now() const override { return std::chrono::system_clock::now(); }
};

/// A clock that moves only when told; both timelines advance together.
class ManualClock final : public Clock {
 public:
  /// Starts at an arbitrary but fixed point so runs are reproducible.
  explicit ManualClock(WallTime wall_start = WallTime{std::chrono::hours{24 * 365 * 56}})
      : wall_(wall_start) {}

  SteadyTime steady_now() const override { return steady_; }
  WallTime wall_now() const override { return wall_; }

  /// Moves both timelines forward by `d`.
  void advance(std::chrono::nanoseconds d) {
    steady_ += d;
    wall_ += std::chrono::duration_cast<WallTime::duration>(d);
  }

  /// Sets wall time alone, as an NTP step would.
  void set_wall(WallTime t) { wall_ = t; }

 private:
  SteadyTime steady_{std::chrono::hours{1}};
  WallTime wall_;
};

}  // namespace relay

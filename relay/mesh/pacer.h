#pragma once

// Pacing and congestion control of what one node sends one peer, and the
// receiver's half of it: the transport feedback (docs/wire.md, "Pacing").
// Pure: every input carries `now`.

#include <array>
#include <compare>
#include <cstdint>
#include <deque>

#include "relay/mesh/types.h"

namespace relay::mesh {

/// A sending or delivery rate.
class Rate {
 public:
  constexpr Rate() = default;
  static constexpr Rate from_bytes_per_second(double v) {
    Rate r;
    r.bytes_per_second_ = v;
    return r;
  }
  static constexpr Rate from_kbit_per_second(double v) { return from_bytes_per_second(v * 125); }
  constexpr double bytes_per_second() const { return bytes_per_second_; }
  /// How long `bytes` take at this rate (a very long time at rate zero).
  Duration time_for(double bytes) const;
  /// Bytes this rate moves in `d`.
  double bytes_in(Duration d) const;
  constexpr auto operator<=>(const Rate&) const = default;

 private:
  double bytes_per_second_ = 0;
};

/// How the pacer behaves; the defaults suit WAN links from 64 kbit/s to a
/// few hundred Mbit/s.
struct PacerTuning {
  /// Off: everything leaves at once, as before pacing (the window alone bounds it).
  bool enabled = true;
  /// Before any feedback (400 kbit/s): startup doubles it every round trip,
  /// a slower link is found within the first round trips.
  Rate initial_rate = Rate::from_bytes_per_second(50'000);
  /// Never below this (32 kbit/s): a path that delivers slowly still moves.
  Rate min_rate = Rate::from_bytes_per_second(4'000);
  /// Queueing delay tolerated at the bottleneck before slowing down. On a
  /// slow link it is raised to three datagrams' worth, because one datagram
  /// alone takes 37.5 ms to cross a 256 kbit/s link.
  Duration target_delay = milliseconds(25);
  /// The largest datagram (docs/design.md: 1200 bytes), for bursts and windows.
  std::size_t datagram = 1200;
  /// Datagrams outstanding with no feedback for this long (at least four
  /// round trips) count as lost, and the rate halves.
  Duration feedback_timeout = milliseconds(1000);
  /// While no feedback comes back at all (the path is cut, the peer gone),
  /// each timeout keeps halving the rate below `min_rate` down to this:
  /// one datagram every 8 s probes a dead path, and a path that is back
  /// starts afresh (reset()) once the peer answers a probe.
  Rate silent_rate = Rate::from_bytes_per_second(150);
};

/// Per-peer pacing and congestion control, rate-based in BBR's manner with
/// a delay guard. The peer's transport feedback (what reached its socket,
/// not what its database stored: a slow disk is not congestion) gives round
/// trips and the rate the path delivers. The pacing rate is a gain on that
/// capacity: doubling per round trip in startup, then cruising at it with
/// one probe round in eight; a queue at the bottleneck above the target
/// (a few datagrams' worth) drains it within about a round trip. Random
/// loss is not read as congestion (the capacity counts the path's own loss
/// back in; only loss far above it is an overflowing queue), since the
/// protocol's retries cover it. A token bucket spends the rate, and a
/// window of bytes outstanding bounds what leaves with no feedback.
class Pacer {
 public:
  explicit Pacer(PacerTuning tuning = {});

  /// True when a paced datagram may leave now.
  bool ready(Time now);
  /// When ready() may next be true: `now` if it is, else when the tokens
  /// have refilled or the feedback timeout passes.
  Time next_ready(Time now);
  /// What a datagram was, for the pacer.
  enum class Kind {
    control,     // acks, probes, digests, feedback: no feedback asked, not tracked
    urgent,      // events or receipts that did not wait (duress)
    paced,       // events or receipts that waited for ready()
    paced_last,  // ... and nothing else waited after it: the round says
                 // what was offered, not what the path can take
  };
  /// A datagram of `bytes` left with wire counter `counter` (0: it did not
  /// leave yet, waiting for a session). Every kind spends tokens, so that
  /// paced traffic yields to the rest; events and receipts are tracked
  /// until feedback covers them.
  void on_sent(Time now, std::uint64_t counter, std::size_t bytes, Kind kind);
  /// The peer's transport feedback.
  void on_feedback(Time now, const v1::Feedback& feedback);
  /// Forgets what it learned (another path, the peer restarted).
  void reset(Time now);

  /// False when pacing is turned off: then ready() is always true.
  bool paced() const;
  Rate rate() const { return rate_; }
  /// The highest rate the path delivered over the last rounds.
  Rate delivery_rate() const;
  /// The smallest round trip seen (zero before any feedback); a queue that
  /// stays above the target for 16 rounds is taken for a longer path.
  Duration min_rtt() const { return has_min_rtt_ ? min_rtt_ : Duration{}; }
  /// Queueing delay at the bottleneck in the last round.
  Duration queue_delay() const { return queue_delay_; }
  /// Bytes sent and not yet covered by feedback.
  std::size_t in_flight() const { return in_flight_; }
  /// Timed out twice with no feedback since, and paced below the floor:
  /// probing what may be a dead path (one stall of the peer is not that).
  bool silent() const { return silent_ && rate_ < tuning_.min_rate; }

 private:
  struct Sent {
    std::uint64_t counter = 0;
    Time at{};
    std::size_t bytes = 0;
  };
  static constexpr std::size_t kRounds = 6;

  void refill(Time now);
  void expire(Time now);
  double burst() const;
  double window() const;
  Duration target() const;
  void end_round(Time now, std::uint64_t resolved_delta, std::uint64_t received_delta,
                 std::uint64_t bytes_delta);
  void start_round(Time now);

  PacerTuning tuning_;
  Rate rate_;
  enum class Mode { startup, drain, cruise };
  Mode mode_ = Mode::startup;
  double gain_ = 2.0;
  std::size_t cycle_ = 0;
  Rate startup_best_;
  int startup_flat_ = 0;
  double tokens_ = 0;
  Time refilled_{};
  std::deque<Sent> sent_;
  std::size_t in_flight_ = 0;
  std::uint64_t last_counter_ = 0;
  bool feedback_seen_ = false;
  bool silent_ = false;  // timed out with no feedback since: below min_rate
  Time last_feedback_{};
  // Cumulative figures from the peer's last feedback, and datagrams of ours
  // resolved (covered by its `largest`) so far.
  std::uint64_t received_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t resolved_ = 0;
  // The round in progress: it ends when feedback covers `round_end_`, the
  // first datagram sent after it began.
  std::uint64_t round_end_ = 0;
  Time round_start_{};
  std::uint64_t round_received_ = 0;
  std::uint64_t round_bytes_ = 0;
  std::uint64_t round_resolved_ = 0;
  Duration round_min_rtt_ = Duration::max();
  bool round_app_limited_ = false;
  bool round_paced_ = false;  // any paced datagram in the round
  int congested_rounds_ = 0;
  // Estimates.
  bool has_min_rtt_ = false;
  Duration min_rtt_{};
  Duration queue_delay_{};
  std::array<Rate, kRounds> delivered_{};
  std::size_t delivered_next_ = 0;
  std::array<double, kRounds> losses_{};  // of the last rounds that resolved enough
  std::size_t losses_next_ = 0;
};

/// What reached this node from one peer, reported back as its Feedback: the
/// receiver's half of pacing. It counts what the peer tracks (datagrams of
/// events and receipts); feedback is owed after every few of them, or a
/// short delay after the first one.
class FeedbackTally {
 public:
  /// Datagrams that make feedback due at once.
  static constexpr int kEvery = 4;
  /// Longest a datagram waits for its feedback.
  static constexpr Duration kDelay = milliseconds(50);

  /// A datagram of `bytes` with wire counter `counter` that the peer tracks
  /// (events or receipts) arrived from it.
  void on_arrival(Time now, std::uint64_t counter, std::size_t bytes);
  /// When feedback is due (Time::max() when none is owed).
  Time due() const;
  /// The feedback to send now; nothing is owed afterwards.
  v1::Feedback take(Time now);

 private:
  std::uint64_t received_ = 0;
  std::uint64_t bytes_ = 0;
  std::uint64_t largest_ = 0;  // since the last feedback
  Time largest_at_{};
  int owed_ = 0;
  Time first_owed_{};
};

}  // namespace relay::mesh

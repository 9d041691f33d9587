#include "relay/mesh/pacer.h"

#include <algorithm>

namespace relay::mesh {
namespace {

using Seconds = std::chrono::duration<double>;

// Pacing gains on the estimated capacity, as BBR uses them: doubling per
// round trip in startup finds a 10 Mbit/s path from the initial rate in
// about five round trips; afterwards one round in eight probes a quarter
// above the capacity and the next drains what that queued.
constexpr double kStartupGain = 2.0;
constexpr std::array<double, 8> kCruiseGains{1.25, 0.75, 1, 1, 1, 1, 1, 1};
// Startup ends when capacity grew less than this in three rounds.
constexpr double kStartupGrowth = 1.25;
// Loss in a round above this is a full queue overflowing (a bottleneck with
// too little buffer to show delay), not the path's own loss.
constexpr double kCongestedLoss = 0.5;
// Consecutive congested rounds after which a queue that will not drain is
// taken for a longer path (a route change): the round's least round trip
// becomes the base. Draining empties a real queue within a few rounds; at 4
// rounds tbf's 400 ms queue on a 256 kbit/s link was taken for path before
// it drained, and stood full (a thousand datagrams dropped a run).
constexpr int kRebaseRounds = 16;

}  // namespace

Duration Rate::time_for(double bytes) const {
  if (bytes_per_second_ <= 0) return std::chrono::hours(1);
  return std::chrono::duration_cast<Duration>(Seconds(bytes / bytes_per_second_));
}

double Rate::bytes_in(Duration d) const {
  return bytes_per_second_ * std::chrono::duration_cast<Seconds>(d).count();
}

Pacer::Pacer(PacerTuning tuning) : tuning_(tuning), rate_(tuning.initial_rate) {
  tokens_ = burst();
}

void Pacer::reset(Time now) {
  *this = Pacer(tuning_);
  refilled_ = now;
}

bool Pacer::paced() const {
  return tuning_.enabled;
}

Rate Pacer::delivery_rate() const {
  return *std::max_element(delivered_.begin(), delivered_.end());
}

double Pacer::burst() const {
  // A few datagrams at once at most: a shallow bottleneck buffer takes them
  // without loss, and the runtime's timer need not fire per datagram.
  return std::max(2.0 * static_cast<double>(tuning_.datagram), rate_.bytes_in(milliseconds(10)));
}

Duration Pacer::target() const {
  const Rate delivered = delivery_rate();
  if (delivered.bytes_per_second() <= 0) return tuning_.target_delay;
  return std::max(tuning_.target_delay,
                  delivered.time_for(3.0 * static_cast<double>(tuning_.datagram)));
}

double Pacer::window() const {
  // Twice what the rate keeps in flight over a round trip with a full
  // target queue and the receiver's feedback delay: a bound for when
  // feedback stops, not what sets the pace.
  const Duration rtt =
      (has_min_rtt_ ? min_rtt_ : milliseconds(200)) + target() + FeedbackTally::kDelay;
  return std::max(8.0 * static_cast<double>(tuning_.datagram), 2 * rate_.bytes_in(rtt));
}

void Pacer::refill(Time now) {
  if (now <= refilled_) return;
  tokens_ = std::min(burst(), tokens_ + rate_.bytes_in(now - refilled_));
  refilled_ = now;
}

void Pacer::expire(Time now) {
  // Outstanding datagrams the peer never reported within the timeout are
  // lost (or the peer is gone): forget them, so that the window opens, at
  // half the rate. What the path carries is unknown from here on, so once
  // feedback flows again the rate is found as at a first start, doubling
  // per round trip: cruising up from the floor by a quarter every eight
  // rounds took minutes after a 30 s cut (tests/sim/pacing_test.cc).
  if (sent_.empty()) return;
  const Duration timeout = std::max(tuning_.feedback_timeout, 4 * min_rtt());
  const Time since = std::max(last_feedback_, sent_.front().at);
  if (now - since < timeout) return;
  sent_.clear();
  in_flight_ = 0;
  // Again with no feedback since the last timeout: the path is cut or the
  // peer gone, and what goes is a probe; backed off below the floor.
  const Rate floor = silent_ ? tuning_.silent_rate : tuning_.min_rate;
  silent_ = true;
  rate_ = std::max(floor, Rate::from_bytes_per_second(rate_.bytes_per_second() / 2));
  delivered_.fill(std::max(rate_, tuning_.min_rate));
  mode_ = Mode::startup;
  gain_ = kStartupGain;
  startup_best_ = Rate{};
  startup_flat_ = 0;
  congested_rounds_ = 0;
  last_feedback_ = now;
}

bool Pacer::ready(Time now) {
  if (!paced()) return true;
  expire(now);
  refill(now);
  return tokens_ > 0 && static_cast<double>(in_flight_) < window();
}

Time Pacer::next_ready(Time now) {
  if (ready(now)) return now;
  if (static_cast<double>(in_flight_) >= window()) {
    // Only feedback, or its timeout, opens the window.
    const Duration timeout = std::max(tuning_.feedback_timeout, 4 * min_rtt());
    return std::max(last_feedback_, sent_.empty() ? now : sent_.front().at) + timeout;
  }
  return now + rate_.time_for(1 - tokens_);
}

void Pacer::on_sent(Time now, std::uint64_t counter, std::size_t bytes, Kind kind) {
  refill(now);
  // Debt is bounded: a flood of unpaced datagrams (a burst of duress) must
  // not silence paced traffic for long after it.
  tokens_ =
      std::max(tokens_ - static_cast<double>(bytes), -rate_.bytes_in(std::chrono::seconds(1)));
  if (kind == Kind::control || counter == 0 || counter <= last_counter_) return;
  last_counter_ = counter;
  expire(now);
  if (!paced()) return;
  if (kind == Kind::paced || kind == Kind::paced_last) round_paced_ = true;
  if (kind == Kind::paced_last) round_app_limited_ = true;
  sent_.push_back({counter, now, bytes});
  in_flight_ += bytes;
}

void Pacer::on_feedback(Time now, const v1::Feedback& feedback) {
  if (!feedback_seen_ || feedback.received() < received_) {
    // The first feedback, or the peer restarted and counts from zero again
    // (a feedback merely overtaken by a later one is not that much lower).
    if (feedback_seen_ && feedback.received() + 16 > received_ / 2 && feedback.received() > 16)
      return;
    feedback_seen_ = true;
    received_ = feedback.received();
    bytes_ = feedback.bytes();
    start_round(now);
  }
  last_feedback_ = now;
  if (silent_) {
    // Feedback again after a silence: not below the floor any more.
    silent_ = false;
    rate_ = std::max(rate_, tuning_.min_rate);
  }
  // Everything up to the largest counter it reports is resolved: arrived,
  // or lost on the way.
  std::uint64_t resolved = 0;
  while (!sent_.empty() && sent_.front().counter <= feedback.largest()) {
    const Sent s = sent_.front();
    sent_.pop_front();
    in_flight_ -= s.bytes;
    ++resolved;
    if (s.counter != feedback.largest()) continue;
    const Duration held = std::chrono::microseconds(std::max<std::int64_t>(0, feedback.delay_us()));
    const Duration rtt = now - s.at - std::min(held, now - s.at);
    round_min_rtt_ = std::min(round_min_rtt_, rtt);
    if (mode_ == Mode::startup && has_min_rtt_ && rtt - min_rtt_ > 2 * target()) {
      // Startup doubles per round trip, so a queue seen only at the end
      // of the round would be twice as long: leave at once.
      mode_ = Mode::drain;
      gain_ = 0.75;
      const Rate btl = delivery_rate();
      if (btl.bytes_per_second() > 0) {
        rate_ =
            std::max(tuning_.min_rate, Rate::from_bytes_per_second(btl.bytes_per_second() * gain_));
      }
    }
    if (!has_min_rtt_ || rtt <= min_rtt_) {
      has_min_rtt_ = true;
      min_rtt_ = rtt;
    }
  }
  resolved_ += resolved;
  received_ = std::max(received_, feedback.received());
  bytes_ = std::max(bytes_, feedback.bytes());
  if (round_end_ != 0 && feedback.largest() >= round_end_) {
    end_round(now, resolved_ - round_resolved_, received_ - round_received_, bytes_ - round_bytes_);
  } else if (round_end_ == 0 && last_counter_ != 0) {
    round_end_ = last_counter_ + 1;
  }
}

void Pacer::start_round(Time now) {
  round_end_ = last_counter_ + 1;
  round_start_ = now;
  round_received_ = received_;
  round_bytes_ = bytes_;
  round_resolved_ = resolved_;
  round_min_rtt_ = Duration::max();
  round_app_limited_ = false;
  round_paced_ = false;
}

void Pacer::end_round(Time now, std::uint64_t resolved_delta, std::uint64_t received_delta,
                      std::uint64_t bytes_delta) {
  const Duration elapsed = now - round_start_;
  // A round with nothing paced, or that ran out of things to send, shows
  // what was offered, not what the path can take.
  round_app_limited_ = round_app_limited_ || !round_paced_;
  Rate delivered;
  if (elapsed > Duration::zero()) {
    delivered = Rate::from_bytes_per_second(static_cast<double>(bytes_delta) /
                                            std::chrono::duration_cast<Seconds>(elapsed).count());
  }
  const double loss =
      resolved_delta >= 8 && received_delta < resolved_delta
          ? 1.0 - static_cast<double>(received_delta) / static_cast<double>(resolved_delta)
          : 0.0;
  if (round_min_rtt_ != Duration::max() && has_min_rtt_) queue_delay_ = round_min_rtt_ - min_rtt_;
  // The path's own loss: the mean over recent rounds whose queue was short
  // (so no datagram of theirs overflowed it). Random loss before the
  // bottleneck is not less capacity, and the protocol's retries cover it.
  if (!round_app_limited_ && resolved_delta >= 8 && queue_delay_ <= target() / 2) {
    losses_[losses_next_++ % kRounds] = loss;
  }
  const std::size_t known = std::min(losses_next_, kRounds);
  double path_loss = 0;
  for (std::size_t i = 0; i < known; ++i) path_loss += losses_[i] / static_cast<double>(known);
  path_loss = std::min(path_loss, kCongestedLoss);
  const Rate capacity = Rate::from_bytes_per_second(delivered.bytes_per_second() / (1 - path_loss));
  if (!round_app_limited_ || capacity > delivery_rate()) {
    delivered_[delivered_next_++ % kRounds] = capacity;
  }
  const bool queued = round_min_rtt_ != Duration::max() && queue_delay_ > target();
  const Rate btl = delivery_rate();

  const bool overflowing = resolved_delta >= 32 && loss > std::max(kCongestedLoss, 2 * path_loss);
  if (queued || overflowing) {
    // Drain: below capacity by what the queue holds, so that it empties in
    // about a round trip; then cruise.
    if (mode_ == Mode::startup) mode_ = Mode::drain;
    if (mode_ == Mode::cruise) mode_ = Mode::drain;
    const Duration rtt = min_rtt() + queue_delay_;
    const double share = rtt > Duration::zero()
                             ? std::chrono::duration_cast<Seconds>(queue_delay_).count() /
                                   std::chrono::duration_cast<Seconds>(rtt).count()
                             : 0.5;
    gain_ = std::clamp(1.0 - share, 0.5, 0.9);
    if (queued && ++congested_rounds_ >= kRebaseRounds) {
      // A queue that will not drain at this rate is a longer path.
      min_rtt_ = round_min_rtt_;
      congested_rounds_ = 0;
    }
  } else {
    congested_rounds_ = 0;
    switch (mode_) {
      case Mode::startup:
        if (btl.bytes_per_second() > startup_best_.bytes_per_second() * kStartupGrowth) {
          startup_best_ = btl;
          startup_flat_ = 0;
        } else if (!round_app_limited_ && ++startup_flat_ >= 3) {
          mode_ = Mode::cruise;
        }
        gain_ = mode_ == Mode::startup ? kStartupGain : 1.0;
        break;
      case Mode::drain:
        if (queue_delay_ <= target() / 2) {
          mode_ = Mode::cruise;
          cycle_ = 2;  // not straight into a probe
        }
        gain_ = mode_ == Mode::cruise ? 1.0 : gain_;
        break;
      case Mode::cruise:
        cycle_ = (cycle_ + 1) % kCruiseGains.size();
        gain_ = kCruiseGains[cycle_];
        break;
    }
  }
  const Rate base = btl.bytes_per_second() > 0 ? btl : rate_;
  rate_ = std::max(tuning_.min_rate, Rate::from_bytes_per_second(base.bytes_per_second() * gain_));
  start_round(now);
}

void FeedbackTally::on_arrival(Time now, std::uint64_t counter, std::size_t bytes) {
  ++received_;
  bytes_ += bytes;
  if (counter > largest_) {
    largest_ = counter;
    largest_at_ = now;
  }
  if (owed_++ == 0) first_owed_ = now;
}

Time FeedbackTally::due() const {
  if (owed_ == 0) return Time::max();
  if (owed_ >= kEvery) return first_owed_;
  return first_owed_ + kDelay;
}

v1::Feedback FeedbackTally::take(Time now) {
  v1::Feedback f;
  f.set_largest(largest_);
  f.set_received(received_);
  f.set_bytes(bytes_);
  f.set_delay_us(std::chrono::duration_cast<std::chrono::microseconds>(now - largest_at_).count());
  owed_ = 0;
  largest_ = 0;
  return f;
}

}  // namespace relay::mesh

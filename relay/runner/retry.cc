#include "relay/runner/retry.h"

#include <algorithm>

namespace relay::runner {

std::chrono::milliseconds backoff(const RetryPolicy& policy, int attempts, std::mt19937_64& rng) {
  using std::chrono::milliseconds;
  // Doubling stops at 2^20 steps: far past any sane cap, and no overflow.
  const int doublings = std::clamp(attempts - 1, 0, 20);
  const auto step = std::min(milliseconds(policy.initial.count() << doublings), policy.max);
  const auto half = step / 2;
  std::uniform_int_distribution<milliseconds::rep> jitter(0, half.count());
  return step - half + milliseconds(jitter(rng));
}

RetryDecision decide(const RetryPolicy& policy, int attempts, int priority, std::mt19937_64& rng) {
  RetryDecision d;
  if (priority >= kDuressPriority) {
    d.delay = backoff(policy, attempts, rng);
    d.alarm = attempts >= policy.duress_alarm_after;
    return d;
  }
  if (attempts >= policy.max_attempts) {
    d.action = RetryDecision::Action::dead_letter;
    return d;
  }
  d.delay = backoff(policy, attempts, rng);
  return d;
}

bool exhausted(const RetryPolicy& policy, int attempts, int priority) {
  return priority < kDuressPriority && attempts > policy.max_attempts;
}

std::chrono::milliseconds lease_for(std::size_t batch, std::chrono::milliseconds timeout) {
  // 10 s of grace: a commit on a busy database, a reconnect after a restart.
  return timeout * static_cast<std::int64_t>(std::max<std::size_t>(batch, 1)) +
         std::chrono::seconds(10);
}

}  // namespace relay::runner

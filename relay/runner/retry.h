#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace relay::runner {

/// message_queue.priority of a duress (relaymesh.v1.PRIORITY_DURESS).
inline constexpr int kDuressPriority = 4;
inline constexpr int kEmergencyPriority = 3;

/// How failed rows are retried. Pure: attempts and a seeded generator in,
/// a decision out, so the policy is tested without a database or a clock.
struct RetryPolicy {
  /// Delay after the first failure; doubles with each failure after it.
  std::chrono::milliseconds initial{1000};
  /// Cap on that delay: a row keeps being tried at least this often.
  std::chrono::milliseconds max{std::chrono::minutes(5)};
  /// Failures after which a row (not a duress) moves to the dead letters.
  int max_attempts = 10;
  /// Failures after which a duress raises an alarm (it is never dead-lettered).
  int duress_alarm_after = 3;
};

/// What to do with a row whose handler just failed for the `attempts`th time.
struct RetryDecision {
  enum class Action { retry, dead_letter };
  Action action = Action::retry;
  /// Wait before the next attempt (zero for a dead letter).
  std::chrono::milliseconds delay{0};
  /// A duress that failed often enough to tell people about it.
  bool alarm = false;
};

/// Capped exponential backoff with "equal jitter": half the step fixed, half
/// random, so runners that failed together do not retry in step.
std::chrono::milliseconds backoff(const RetryPolicy& policy, int attempts, std::mt19937_64& rng);

/// Decides the fate of a failed row; a duress is never dead-lettered.
RetryDecision decide(const RetryPolicy& policy, int attempts, int priority, std::mt19937_64& rng);

/// True for a row (not a duress) leased more than max_attempts times without
/// a result: the runner died during each of them (a row that crashes it?).
/// It goes to the dead letters without running the handler again.
bool exhausted(const RetryPolicy& policy, int attempts, int priority);

/// How long a claim of `batch` rows is leased for: each row may wait for the
/// handlers of the rows before it, each bounded by `timeout`, plus a grace
/// for the database round trips around them.
std::chrono::milliseconds lease_for(std::size_t batch, std::chrono::milliseconds timeout);

}  // namespace relay::runner

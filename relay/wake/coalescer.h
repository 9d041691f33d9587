#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace relay::wake {

/// Wake-ups coalesced into passes of work, for worker threads that claim
/// (relayd's outbox, a runner's message_queue) while wake-ups keep coming
/// from the io_context's thread. Each worker runs one pass at a time and
/// remembers, as a Mark, which wake-ups its pass covers: however many come
/// during a pass, they ask for one more, and a pass that finds more work
/// than it took asks again at once (wake() from the worker itself).
class Coalescer {
 public:
  /// How many wake-ups there have been; a pass covers all up to its mark.
  using Mark = std::uint64_t;

  /// Asks every worker for a pass; from any thread.
  void wake();
  /// Ends every wait, now and later; idempotent.
  void stop();
  bool stopped() const;
  /// What a pass that starts now covers.
  Mark mark() const;
  /// True if woken after `seen`: the pass that took `seen` should go again.
  bool woken_since(Mark seen) const;
  /// Blocks until woken after `seen`, then sets `seen` to the mark of now
  /// for the pass about to run. False once stopped.
  bool wait(Mark& seen);
  /// The same, but after `due` a pass runs anyway (a retry falls due).
  bool wait(Mark& seen, std::chrono::milliseconds due);
  /// Blocks for `pause` whatever wakes; those wake-ups count afterwards.
  /// False if stopped meanwhile.
  bool sleep(std::chrono::milliseconds pause);

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  Mark wakes_ = 0;
  bool stopped_ = false;
};

}  // namespace relay::wake

#include "relay/wire/replay_window.h"

namespace relay::wire {

ReplayWindow::Verdict ReplayWindow::check_and_mark(std::uint64_t counter) {
  if (counter > top_) {
    if (counter - top_ >= kSize) {
      seen_.reset();
    } else {
      for (std::uint64_t c = top_ + 1; c < counter; ++c) seen_.reset(c % kSize);
    }
    top_ = counter;
    seen_.set(counter % kSize);
    return Verdict::fresh;
  }
  if (top_ - counter >= kSize) return Verdict::too_old;
  if (seen_.test(counter % kSize)) return Verdict::duplicate;
  seen_.set(counter % kSize);
  return Verdict::fresh;
}

}  // namespace relay::wire

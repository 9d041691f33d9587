#include "relay/wake/coalescer.h"

namespace relay::wake {

void Coalescer::wake() {
  {
    std::lock_guard lock(mutex_);
    ++wakes_;
  }
  cv_.notify_all();
}

void Coalescer::stop() {
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
  }
  cv_.notify_all();
}

bool Coalescer::stopped() const {
  std::lock_guard lock(mutex_);
  return stopped_;
}

Coalescer::Mark Coalescer::mark() const {
  std::lock_guard lock(mutex_);
  return wakes_;
}

bool Coalescer::woken_since(Mark seen) const {
  std::lock_guard lock(mutex_);
  return wakes_ != seen;
}

bool Coalescer::wait(Mark& seen) {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] { return stopped_ || wakes_ != seen; });
  seen = wakes_;
  return !stopped_;
}

bool Coalescer::wait(Mark& seen, std::chrono::milliseconds due) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, due, [&] { return stopped_ || wakes_ != seen; });
  seen = wakes_;
  return !stopped_;
}

bool Coalescer::sleep(std::chrono::milliseconds pause) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, pause, [&] { return stopped_; });
}

}  // namespace relay::wake

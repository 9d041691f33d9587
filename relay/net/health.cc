#include "relay/net/health.h"

#include <algorithm>

namespace relay::net {
namespace {

ComponentHealth named(std::string_view name) {
  ComponentHealth part;
  part.name = name;
  return part;
}

}  // namespace

std::int64_t unix_ms_now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Health::Health() {
  for (auto name : {kDatabase, kCore, kUrgentLane, kBulkLane, kOutboxClaim, kOutboxListen}) {
    parts_.push_back(named(name));
  }
}

ComponentHealth& Health::find(std::string_view name) {
  auto it = std::find_if(parts_.begin(), parts_.end(),
                         [&](const ComponentHealth& p) { return p.name == name; });
  if (it != parts_.end()) return *it;
  return parts_.emplace_back(named(name));
}

void Health::ok(std::string_view name) {
  std::lock_guard lock(mutex_);
  auto& p = find(name);
  p.state = ComponentHealth::State::ok;
  p.error.clear();
  p.failing_since_unix_ms = 0;
  p.last_ok_unix_ms = unix_ms_now();
}

void Health::failing(std::string_view name, std::string error) {
  std::lock_guard lock(mutex_);
  auto& p = find(name);
  if (p.state != ComponentHealth::State::failing) p.failing_since_unix_ms = unix_ms_now();
  p.state = ComponentHealth::State::failing;
  p.error = std::move(error);
}

std::vector<ComponentHealth> Health::parts() const {
  std::lock_guard lock(mutex_);
  return parts_;
}

ComponentHealth Health::part(std::string_view name) const {
  std::lock_guard lock(mutex_);
  for (const auto& p : parts_)
    if (p.name == name) return p;
  return named(name);
}

}  // namespace relay::net

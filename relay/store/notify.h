#pragma once

#include <functional>
#include <string>

#include <pqxx/connection>
#include <pqxx/notification>

namespace relay::store {

/// Calls `hit` for each NOTIFY on a channel; the payload does not matter
/// (a notification is a hint to look, never the data).
class NotifyReceiver final : public pqxx::notification_receiver {
 public:
  NotifyReceiver(pqxx::connection_base& conn, const std::string& channel,
                 std::function<void()> hit)
      : pqxx::notification_receiver(conn, channel), hit_(std::move(hit)) {}
  void operator()(const std::string&, int) override { hit_(); }

 private:
  std::function<void()> hit_;
};

}  // namespace relay::store

#include "relay/net/periodic.h"

#include "relay/store/durability.h"

namespace relay::net {

Periodic::Periodic(std::chrono::milliseconds interval, std::function<void()> pass)
    : interval_(interval), pass_(std::move(pass)) {}

Periodic::~Periodic() {
  stop();
}

void Periodic::start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { run(); });
}

void Periodic::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Periodic::run() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    pass_();
    lock.lock();
    cv_.wait_for(lock, interval_, [&] { return stop_; });
  }
}

pqxx::connection& watch_connection(std::unique_ptr<pqxx::connection>& conn,
                                   const std::string& dsn) {
  if (!conn || !conn->is_open()) {
    conn.reset();
    conn = std::make_unique<pqxx::connection>(store::with_connect_timeout(dsn, 3));
  }
  return *conn;
}

}  // namespace relay::net

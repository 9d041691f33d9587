#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <pqxx/connection>

namespace relay::net {

/// A thread that runs `pass` at once and then every `interval` until
/// stopped: the loop of a watch that reads the database on a connection of
/// its own, off the network thread.
class Periodic {
 public:
  Periodic(std::chrono::milliseconds interval, std::function<void()> pass);
  ~Periodic();
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  /// Starts the thread (once).
  void start();
  /// Wakes the thread and waits for its pass to end; idempotent.
  void stop();

 private:
  void run();

  std::chrono::milliseconds interval_;
  std::function<void()> pass_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

/// The watch's connection, opened again when it is closed, with a short
/// connect timeout: a database that is not there must not hold the watch
/// for minutes of TCP retries.
pqxx::connection& watch_connection(std::unique_ptr<pqxx::connection>& conn, const std::string& dsn);

}  // namespace relay::net

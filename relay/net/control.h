#pragma once

#include <asio.hpp>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include <sys/types.h>

#include "proto/relaymesh.pb.h"

namespace relay::net {

/// Who is on the other end of a control connection (SO_PEERCRED).
struct Caller {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// The control socket: a Unix stream socket where local programs hand
/// relayd a request, one JSON object on one line, and read one line back.
/// Who may connect is decided by the socket file's group and mode (0660
/// with `group`, else 0600) and checked again with SO_PEERCRED on each
/// connection: relayd's own user, root, and members of `group`. A loopback
/// port would let any local user raise a duress; a socket file does not.
class ControlSocket {
 public:
  using Handler = std::function<std::string(const std::string& request, const Caller& caller)>;

  ControlSocket(asio::io_context& io, std::filesystem::path path, std::string group,
                Handler handler);
  ~ControlSocket();

  /// Binds (replacing a stale socket file) and serves. Throws
  /// std::runtime_error naming the path or the group.
  void start();
  void stop();
  const std::filesystem::path& path() const { return path_; }

 private:
  asio::awaitable<void> accept();
  asio::awaitable<void> serve(asio::local::stream_protocol::socket socket);
  bool allowed(const Caller& caller) const;

  asio::io_context& io_;
  std::filesystem::path path_;
  std::string group_;
  gid_t gid_ = 0;
  bool has_group_ = false;
  Handler handler_;
  asio::local::stream_protocol::acceptor acceptor_;
  bool stopped_ = false;
};

/// What the control socket's "receipts" verb answers: which targets
/// confirmed this node's own events, as their receipts reached relayd. Kept
/// in memory, apart from the database, so that `relayctl duress --wait`
/// follows a duress while the database is down (its receipts are written
/// only once it answers). Bounded: the oldest confirmations are forgotten
/// first, and a receipt sent again (until its ack reaches the target) is
/// kept once, so repeats never push anything out.
class Confirmations {
 public:
  explicit Confirmations(std::string self) : self_(std::move(self)) {}
  /// A datagram's receipts, authenticated (the target's signature checked).
  void note(const relaymesh::v1::Receipts& receipts);
  /// The answer to a request with "verb": "receipts" and "id": "origin:seq",
  /// one JSON line; nullopt for any other verb.
  std::optional<std::string> answer(const std::string& request) const;

 private:
  struct Confirmed {
    std::int64_t delivered_unix_ms = 0;
    int outcome = 0;  // relaymesh.v1.Outcome
  };
  std::string self_;
  std::map<std::pair<std::uint64_t, std::string>, Confirmed> by_seq_target_;
  std::deque<std::pair<std::uint64_t, std::string>> order_;
};

}  // namespace relay::net

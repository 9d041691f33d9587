#pragma once

#include <asio.hpp>

#include <filesystem>
#include <functional>
#include <string>

#include <sys/types.h>

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

}  // namespace relay::net

#pragma once

#include <asio.hpp>

#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "relay/mesh/node_io.h"

namespace relay::net {

/// Each peer's UDP endpoints (its configured addresses: fibre, LTE, ...),
/// resolved once at start, and one sealed datagram sent on several of them.
class PeerPaths {
 public:
  /// Resolves every peer's addresses (throws std::system_error naming one
  /// that does not resolve).
  PeerPaths(asio::io_context& io, const Config& config);

  bool contains(const std::string& peer) const { return endpoints_.contains(peer); }
  /// How many paths `peer` has (0 if it is not a peer).
  std::size_t count(const std::string& peer) const;
  /// Sends `datagram` to `peer` on each path in `paths` (0: every path). A
  /// full send buffer or an unreachable path drops it: the protocol's
  /// retries, and the other paths, cover it.
  void send(asio::ip::udp::socket& socket, const std::string& peer, const std::string& datagram,
            mesh::PathSet paths) const;

 private:
  std::map<std::string, std::vector<asio::ip::udp::endpoint>> endpoints_;
};

}  // namespace relay::net

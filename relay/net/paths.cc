#include "relay/net/paths.h"

namespace relay::net {

PeerPaths::PeerPaths(asio::io_context& io, const Config& config) {
  asio::ip::udp::resolver resolver(io);
  for (const auto& p : config.peers) {
    auto& out = endpoints_[p.id];
    for (const auto& ep : p.paths()) {
      try {
        out.push_back(*resolver.resolve(ep.host, std::to_string(ep.port)).begin());
      } catch (const std::system_error& e) {
        throw std::system_error(e.code(), "peer " + p.id + " address " + ep.to_string());
      }
    }
  }
}

std::size_t PeerPaths::count(const std::string& peer) const {
  auto it = endpoints_.find(peer);
  return it == endpoints_.end() ? 0 : it->second.size();
}

void PeerPaths::send(asio::ip::udp::socket& socket, const std::string& peer,
                     const std::string& datagram, mesh::PathSet paths) const {
  auto it = endpoints_.find(peer);
  if (it == endpoints_.end()) return;
  for (std::size_t i = 0; i < it->second.size(); ++i) {
    if (paths != 0 && (paths & (mesh::PathSet{1} << i)) == 0) continue;
    asio::error_code ec;
    socket.send_to(asio::buffer(datagram), it->second[i], 0, ec);
  }
}

}  // namespace relay::net

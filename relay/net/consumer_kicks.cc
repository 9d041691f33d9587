#include "relay/net/consumer_kicks.h"

#include <string_view>

namespace relay::net {

ConsumerKicks::ConsumerKicks(asio::io_context& io, const std::vector<Endpoint>& targets)
    : socket_(io) {
  for (const auto& t : targets) {
    // Config addresses are IP literals or names; resolve names once, here.
    asio::ip::udp::resolver resolver(io);
    for (const auto& entry : resolver.resolve(t.host, std::to_string(t.port))) {
      targets_.push_back(entry.endpoint());
      break;
    }
  }
}

void ConsumerKicks::kick() {
  static constexpr std::string_view kPayload = "message_queue";
  for (const auto& target : targets_) {
    asio::error_code ec;
    if (!socket_.is_open()) socket_.open(target.protocol(), ec);
    socket_.send_to(asio::buffer(kPayload), target, 0, ec);
    if (ec) ++failures_;
  }
}

}  // namespace relay::net

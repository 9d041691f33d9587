#pragma once

#include <asio.hpp>

#include <vector>

#include "common/config.h"

namespace relay::net {

/// Wakes the site's consumers after deliveries commit: one datagram to each
/// address of [delivery] kick. A hint only: consumers that miss it find the
/// rows on their next poll, so a failed send is counted, not retried.
class ConsumerKicks {
 public:
  ConsumerKicks(asio::io_context& io, const std::vector<Endpoint>& targets);

  void kick();
  std::uint64_t failures() const { return failures_; }

 private:
  asio::ip::udp::socket socket_;
  std::vector<asio::ip::udp::endpoint> targets_;
  std::uint64_t failures_ = 0;
};

}  // namespace relay::net

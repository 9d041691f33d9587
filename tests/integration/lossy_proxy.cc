// A UDP forwarder that drops a share of what passes: stands in front of a
// relayd so that every datagram to it crosses a lossy path. With a capture
// file it also records every datagram it forwards (a 2-byte big-endian
// length, then the bytes), as an on-path attacker would, for `replay`.
//   lossy_proxy LISTEN_PORT TARGET_PORT LOSS SEED [CAPTURE_FILE]
#include <asio.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: lossy_proxy LISTEN_PORT TARGET_PORT LOSS SEED [CAPTURE_FILE]\n");
    return 2;
  }
  const auto listen_port = static_cast<unsigned short>(std::atoi(argv[1]));
  const auto target_port = static_cast<unsigned short>(std::atoi(argv[2]));
  const double loss = std::atof(argv[3]);
  std::mt19937_64 rng(std::strtoull(argv[4], nullptr, 10));
  std::FILE* capture = argc == 6 ? std::fopen(argv[5], "ab") : nullptr;
  std::uniform_real_distribution<> coin(0, 1);
  asio::io_context io;
  const auto loopback = asio::ip::make_address("127.0.0.1");
  asio::ip::udp::socket socket(io, {loopback, listen_port});
  const asio::ip::udp::endpoint target(loopback, target_port);
  std::array<char, 2048> buffer{};
  asio::ip::udp::endpoint from;
  while (true) {
    const std::size_t n = socket.receive_from(asio::buffer(buffer), from);
    if (coin(rng) < loss) continue;
    if (capture != nullptr) {
      const unsigned char length[2] = {static_cast<unsigned char>(n >> 8),
                                       static_cast<unsigned char>(n & 0xff)};
      std::fwrite(length, 1, 2, capture);
      std::fwrite(buffer.data(), 1, n, capture);
      std::fflush(capture);
    }
    asio::error_code ignored;
    socket.send_to(asio::buffer(buffer.data(), n), target, 0, ignored);
  }
}

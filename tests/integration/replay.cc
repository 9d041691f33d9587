// Replays datagrams captured by lossy_proxy at a relayd, over and over, as
// an on-path attacker without any key would: every datagram once each
// round, a round every 200 ms.
//   replay CAPTURE_FILE TARGET_PORT SECONDS
#include <asio.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: replay CAPTURE_FILE TARGET_PORT SECONDS\n");
    return 2;
  }
  std::FILE* file = std::fopen(argv[1], "rb");
  if (file == nullptr) {
    std::perror(argv[1]);
    return 1;
  }
  std::vector<std::string> datagrams;
  unsigned char length[2];
  while (std::fread(length, 1, 2, file) == 2) {
    std::string d((length[0] << 8) | length[1], '\0');
    if (std::fread(d.data(), 1, d.size(), file) != d.size()) break;
    datagrams.push_back(std::move(d));
  }
  const auto port = static_cast<unsigned short>(std::atoi(argv[2]));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(std::atoi(argv[3]));
  asio::io_context io;
  asio::ip::udp::socket socket(io, asio::ip::udp::v4());
  const asio::ip::udp::endpoint target(asio::ip::make_address("127.0.0.1"), port);
  std::size_t sent = 0;
  while (std::chrono::steady_clock::now() < until) {
    for (const auto& d : datagrams) {
      asio::error_code ignored;
      socket.send_to(asio::buffer(d), target, 0, ignored);
      ++sent;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::printf("replayed %zu captured datagrams %zu times in all\n", datagrams.size(), sent);
  return 0;
}

// The database-down spool's append (what a duress pressed while PostgreSQL
// is down waits for before relayd answers "accepted"), beside the raw limit
// of the same disk measured in the same run: one 2 KiB pwrite + fdatasync,
// and + fsync.
//   spool_bench [FOLDER] [ROUNDS]   (FOLDER: where the state directory would be; default .)
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "relay/spool/spool.h"

namespace {

using Clock = std::chrono::steady_clock;

struct Figures {
  double p50_us;
  double p99_us;
  double max_us;
};

Figures measure(int rounds, const std::function<void()>& step) {
  std::vector<double> us;
  us.reserve(static_cast<std::size_t>(rounds));
  for (int i = 0; i < rounds; ++i) {
    const auto start = Clock::now();
    step();
    us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - start).count());
  }
  std::sort(us.begin(), us.end());
  return {us[us.size() / 2], us[us.size() * 99 / 100], us.back()};
}

void print(const char* what, const Figures& f) {
  std::printf("%-52s p50 %8.1f us   p99 %8.1f us   max %8.1f us\n", what, f.p50_us, f.p99_us,
              f.max_us);
}

/// One 2 KiB slot rewritten in place and synced, as the spool's append is
/// at its core, with `sync` (fdatasync or fsync).
Figures raw(const std::filesystem::path& file, int rounds, int (*sync)(int)) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(file.string() + ": cannot open");
  std::string block(relay::spool::Spool::kSlotSize, 'x');
  if (::pwrite(fd, block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()) ||
      ::fsync(fd) != 0) {
    throw std::runtime_error(file.string() + ": cannot write");
  }
  int i = 0;
  const Figures f = measure(rounds, [&] {
    block[0] = static_cast<char>('a' + i++ % 26);
    if (::pwrite(fd, block.data(), block.size(), 0) != static_cast<ssize_t>(block.size()) ||
        sync(fd) != 0) {
      throw std::runtime_error(file.string() + ": write failed");
    }
  });
  ::close(fd);
  std::filesystem::remove(file);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path folder =
      std::filesystem::path(argc > 1 ? argv[1] : ".") / "spool-bench.tmp";
  const int rounds = argc > 2 ? std::stoi(argv[2]) : 500;
  std::filesystem::remove_all(folder);
  std::filesystem::create_directories(folder);
  std::printf("spool append on %s, %d rounds each\n", folder.c_str(), rounds);

  print("raw: 2 KiB pwrite + fdatasync (this disk's limit)",
        raw(folder / "raw", rounds, ::fdatasync));
  print("raw: 2 KiB pwrite + fsync", raw(folder / "raw", rounds, ::fsync));

  // A signed duress is at most 1200 bytes. The bench's spool has a slot for
  // each round; then each record is released, as when the database took it.
  relay::spool::Spool spool(folder / "spool", static_cast<std::size_t>(rounds));
  const std::string payload(1200, 'd');
  std::vector<std::uint64_t> held;
  print("spool: append 1200 B (durable before \"accepted\")",
        measure(rounds, [&] { held.push_back(*spool.append(payload)); }));
  std::size_t next = 0;
  print("spool: release (the database took it)",
        measure(rounds, [&] { spool.release(held[next++]); }));
  std::filesystem::remove_all(folder);
  return 0;
}

// Runs a libFuzzer target without libFuzzer (g++ builds, the sanitizer
// build): every file of the corpus folders given, then inputs mutated from
// them by a seeded generator, until --seconds or --runs is reached. A broken
// invariant aborts, and the test fails with the input that did it, in hex.
// Not coverage-guided: the clang build (-DRELAY_FUZZ=ON) links libFuzzer
// instead and runs the same targets with the same bound.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

using Input = std::vector<std::uint8_t>;

// Pieces a mutation splices in: the framing the parsers look for.
const std::vector<std::string> kTokens = {
    "\r\n", "\r\n\r\n", " ", ":", "%", "%2", "?", "&", "=", "/", "HTTP/1.1", "HTTP/1.0",
    "GET ", "HEAD ", "POST ", "Content-Length: ", "Transfer-Encoding: chunked", "Connection: ",
    "\0", "\xff", "\t"};

Input mutate(Input in, const std::vector<Input>& corpus, std::mt19937_64& rng) {
  auto pick = [&rng](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  const int steps = 1 + static_cast<int>(pick(4));
  for (int i = 0; i < steps; ++i) {
    const std::size_t at = in.empty() ? 0 : pick(in.size() + 1);
    switch (pick(6)) {
      case 0:  // flip a bit
        if (!in.empty()) in[pick(in.size())] ^= static_cast<std::uint8_t>(1u << pick(8));
        break;
      case 1:  // a random byte, in place of one or added
        if (!in.empty() && pick(2) == 0) {
          in[pick(in.size())] = static_cast<std::uint8_t>(pick(256));
        } else {
          in.insert(in.begin() + static_cast<std::ptrdiff_t>(at),
                    static_cast<std::uint8_t>(pick(256)));
        }
        break;
      case 2:  // cut a run
        if (!in.empty()) {
          const std::size_t from = pick(in.size());
          in.erase(in.begin() + static_cast<std::ptrdiff_t>(from),
                   in.begin() + static_cast<std::ptrdiff_t>(std::min(in.size(), from + 1 + pick(16))));
        }
        break;
      case 3: {  // a token
        const auto& t = kTokens[pick(kTokens.size())];
        in.insert(in.begin() + static_cast<std::ptrdiff_t>(at), t.begin(), t.end());
        break;
      }
      case 4:  // the tail of another input
        if (!corpus.empty()) {
          const auto& other = corpus[pick(corpus.size())];
          const std::size_t from = other.empty() ? 0 : pick(other.size());
          in.resize(at);
          in.insert(in.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
        }
        break;
      default:  // repeat a run (long lines, many headers)
        if (!in.empty()) {
          const std::size_t from = pick(in.size());
          const Input run(in.begin() + static_cast<std::ptrdiff_t>(from),
                          in.begin() + static_cast<std::ptrdiff_t>(std::min(in.size(), from + 8)));
          for (std::size_t n = pick(64); n > 0; --n) in.insert(in.end(), run.begin(), run.end());
        }
    }
  }
  if (in.size() > 65536) in.resize(65536);
  return in;
}

std::string last_input;  // in hex, for the abort handler

extern "C" void say_input(int sig) {
  static const char kSaid[] = "fuzz: this input broke an invariant (hex): ";
  (void)!::write(2, kSaid, sizeof kSaid - 1);
  (void)!::write(2, last_input.data(), last_input.size());
  (void)!::write(2, "\n", 1);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

void run(const Input& in) {
  static const char* hex = "0123456789abcdef";
  last_input.clear();
  for (auto b : in) {
    last_input += hex[b >> 4];
    last_input += hex[b & 15];
  }
  LLVMFuzzerTestOneInput(in.data(), in.size());
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = 10;
  long runs = std::numeric_limits<long>::max();  // --seconds bounds it
  std::uint64_t seed = 1;
  std::vector<Input> corpus;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (arg == "--runs" && i + 1 < argc) {
      runs = std::atol(argv[++i]);
    } else if (arg == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 10);
    } else if (std::filesystem::is_directory(arg)) {
      for (const auto& f : std::filesystem::directory_iterator(arg)) {
        std::ifstream in(f.path(), std::ios::binary);
        corpus.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
      }
    } else {
      std::fprintf(stderr, "usage: %s [--seconds S] [--runs N] [--seed N] [CORPUS_DIR...]\n", argv[0]);
      return 2;
    }
  }
  std::signal(SIGABRT, say_input);
  std::signal(SIGSEGV, say_input);
  for (const auto& in : corpus) run(in);
  std::mt19937_64 rng(seed);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  long done = 0;
  for (; done < runs; ++done) {
    if (done % 256 == 0 && std::chrono::steady_clock::now() >= deadline) break;
    const Input start = corpus.empty() ? Input{} : corpus[std::uniform_int_distribution<std::size_t>(0, corpus.size() - 1)(rng)];
    run(mutate(start, corpus, rng));
  }
  std::printf("%zu corpus inputs and %ld mutated inputs (seed %llu), no invariant broken\n",
              corpus.size(), done, static_cast<unsigned long long>(seed));
  return 0;
}

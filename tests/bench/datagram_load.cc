// Load generator of scripts/bench-seed: the seed's experiment (N clients,
// each sending 100 datagrams a second at one UDP daemon; the Perl IO::Async
// daemon of the blog post dropped datagrams past 35) against relayd, and
// against trivial servers for the machine's raw limit. One process, one
// thread, one socket per client; one 1 ms timer sends what each client owes
// by then (clients are staggered over the interval).
//   datagram_load probes OPTIONS  clients are configured peers of relayd: each
//                                 completes the hello handshake, then sends
//                                 sealed probes, which relayd opens,
//                                 authenticates and answers; answers relayd's
//                                 own probes as a peer does
//   datagram_load kicks OPTIONS   clients send one-byte datagrams at relayd's
//                                 kick port
//   datagram_load raw OPTIONS     clients send unsealed datagrams of --size
//                                 bytes at an echo server and count its answers
//   datagram_load echo PORT [--sink] [--rcvbuf BYTES]
//                                 the trivial server: a blocking recvfrom loop
//                                 that sends each datagram back (--sink: only
//                                 counts); "?count" is answered with the count;
//                                 asks for a 4 MiB receive buffer as relayd's
//                                 mesh socket does (--rcvbuf 0: the default)
// OPTIONS: --clients N --rate PER_CLIENT_PER_S --seconds S --port TARGET_PORT
//   [--pid TARGET_PID] [--drain MS]; probes and kicks: --status STATUS_PORT;
//   probes: --ring MESH_KEYS --keys DIR (load-I.key for I in 0..N-1)
//   --first-port P (client I binds P + I) --target-id ID --target-key KEY
//   ("ed25519:...", or the target's identity key file);
//   raw: [--size BYTES] (96; from 8 on, each carries its send time)
// Prints one line "result key=value ..." (see report()).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/keys.h"
#include "relay/wire/datagram.h"

using namespace relay;
namespace v1 = relaymesh::v1;
using udp = asio::ip::udp;
using Steady = std::chrono::steady_clock;

namespace {

constexpr int kBuffer = 4 << 20;  // relayd's mesh socket asks for the same

double seconds(Steady::duration d) {
  return std::chrono::duration<double>(d).count();
}

std::uint64_t micros_since(Steady::time_point t0) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - t0).count());
}

// --- what the kernel and the target say, before and after the load --------

std::map<std::string, std::uint64_t> snmp_udp() {
  std::ifstream in("/proc/net/snmp");
  std::string line, names;
  while (std::getline(in, line)) {
    if (line.rfind("Udp: ", 0) != 0) continue;
    if (names.empty()) {
      names = line;
      continue;
    }
    std::istringstream n(names.substr(5)), v(line.substr(5));
    std::map<std::string, std::uint64_t> out;
    std::string name;
    std::uint64_t value = 0;
    while (n >> name && v >> value) out[name] = value;
    return out;
  }
  return {};
}

// Drops counted on the sockets bound to these ports (/proc/net/udp, last column).
std::uint64_t socket_drops(const std::set<unsigned>& ports) {
  std::ifstream in("/proc/net/udp");
  std::string line;
  std::getline(in, line);
  std::uint64_t drops = 0;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string sl, local, field;
    f >> sl >> local;
    const auto colon = local.find(':');
    if (colon == std::string::npos) continue;
    const unsigned port = std::stoul(local.substr(colon + 1), nullptr, 16);
    if (!ports.contains(port)) continue;
    std::string last;
    while (f >> field) last = field;
    drops += std::stoull(last);
  }
  return drops;
}

struct Threads {
  // tid: name, nanoseconds on a CPU (schedstat; stat's ticks are 10 ms)
  std::map<std::string, std::pair<std::string, std::uint64_t>> ticks;
};

Threads threads_of(int pid) {
  Threads t;
  if (pid <= 0) return t;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(entry.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos) continue;
    std::ifstream sched(entry.path() / "schedstat");
    std::uint64_t ns = 0;
    sched >> ns;
    t.ticks[entry.path().filename()] = {stat.substr(open + 1, close - open - 1), ns};
  }
  return t;
}

struct MachineCpu {
  std::uint64_t busy = 0, total = 0;
};

MachineCpu machine_cpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  in >> cpu;
  MachineCpu m;
  std::uint64_t v = 0;
  for (int i = 0; i < 8 && in >> v; ++i) {
    m.total += v;
    if (i != 3 && i != 4) m.busy += v;  // idle, iowait
  }
  return m;
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One GET on the status port, the body returned (Connection: close).
std::string http_get(unsigned short port, const std::string& path) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  const std::string request =
      "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  asio::write(s, asio::buffer(request));
  std::string response;
  asio::error_code ec;
  asio::read(s, asio::dynamic_buffer(response), ec);
  const auto body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

std::uint64_t metric(const std::string& text, const std::string& name) {
  std::istringstream in(text);
  std::string line;
  std::uint64_t sum = 0;
  while (std::getline(in, line)) {
    if (line.rfind(name, 0) != 0) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    sum += static_cast<std::uint64_t>(std::stod(line.substr(line.rfind(' ') + 1)));
  }
  return sum;
}

std::uint64_t json_counter(const std::string& text, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("\"" + name + "\": *([0-9]+)"))) {
    throw std::runtime_error("no \"" + name + "\" in the status JSON");
  }
  return std::stoull(m[1]);
}

// --- options ----------------------------------------------------------------

struct Options {
  std::map<std::string, std::string> values;
  std::string get(const std::string& name, const std::string& fallback = "") const {
    auto it = values.find(name);
    if (it != values.end()) return it->second;
    if (fallback.empty()) throw std::runtime_error("missing --" + name);
    return fallback;
  }
  long num(const std::string& name, const std::string& fallback = "") const {
    return std::stol(get(name, fallback));
  }
};

// --- the load ---------------------------------------------------------------

enum class Mode { probes, kicks, raw };

struct Client {
  explicit Client(asio::io_context& io) : socket(io) {}
  udp::socket socket;
  std::unique_ptr<wire::Codec> codec;  // probes only
  std::string id;
  double phase = 0;        // in intervals: staggers the clients
  std::uint64_t owed = 0;  // load datagrams sent this window
  std::uint32_t seq = 0;
  std::array<std::uint8_t, 2048> buffer{};
  wire::Opened opened;
};

class Load {
 public:
  Load(Mode mode, const Options& o)
      : mode_(mode),
        clients_(static_cast<std::size_t>(o.num("clients"))),
        rate_(static_cast<double>(o.num("rate", "100"))),
        seconds_(static_cast<double>(o.num("seconds", "3"))),
        drain_(std::chrono::milliseconds(o.num("drain", "500"))),
        target_(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(o.num("port"))),
        pid_(static_cast<int>(o.num("pid", "0"))),
        size_(static_cast<std::size_t>(o.num("size", "96"))),
        timer_(io_) {
    if (mode_ != Mode::raw) status_port_ = static_cast<unsigned short>(o.num("status"));
    if (mode_ == Mode::probes) {
      ring_ = load_key_ring(o.get("ring"));
      target_id_ = o.get("target-id");
      // Its public key as a peer's config has it, or (this bench made it)
      // its identity key file.
      const std::string text = o.get("target-key");
      if (text.rfind("ed25519:", 0) == 0) {
        const auto raw = parse_public_key(text);
        const auto key = raw ? crypto::VerifyKey::from_bytes(*raw) : std::nullopt;
        if (!key) throw std::runtime_error("--target-key: not an ed25519 public key");
        target_key_ = *key;
      } else {
        target_key_ = load_identity_key(text).verify_key();
      }
      keys_dir_ = o.get("keys");
      first_port_ = static_cast<unsigned>(o.num("first-port"));
    }
  }

  int run() {
    static const SystemClock clock;
    const auto boot = static_cast<std::uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(
            std::chrono::system_clock::now().time_since_epoch())
            .count());
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      auto c = std::make_unique<Client>(io_);
      c->socket.open(udp::v4());
      if (mode_ == Mode::probes) {
        c->id = "load-" + std::to_string(i);
        c->socket.bind({asio::ip::make_address("127.0.0.1"),
                        static_cast<unsigned short>(first_port_ + i)});
        const auto identity = load_identity_key(keys_dir_ + "/" + c->id + ".key");
        std::map<std::string, wire::IdentityKeys> peers;
        peers.emplace(target_id_, wire::IdentityKeys{target_key_, {}});
        c->codec = std::make_unique<wire::Codec>(c->id, identity,
                                                 wire::IdentityKeys{identity.verify_key(), {}},
                                                 ring_, std::move(peers), boot, clock);
      }
      // Connected: only the target's datagrams reach the client's socket.
      c->socket.connect(target_);
      c->phase = static_cast<double>(i) / static_cast<double>(clients_.size());
      client_ports_.insert(c->socket.local_endpoint().port());
      clients_[i] = std::move(c);
    }
    for (auto& c : clients_) receive(*c);
    if (mode_ == Mode::probes && !handshake()) return 1;
    if (mode_ == Mode::raw) {
      // Wake the echo server up, so that its first answers are not slow.
      for (auto& c : clients_) send_raw(*c, "?count");
      settle(std::chrono::milliseconds(200));
    }

    const auto before = observe();
    phase_ = Phase::load;
    t0_ = Steady::now();
    tick();
    io_.run_for(std::chrono::duration_cast<Steady::duration>(std::chrono::duration<double>(seconds_)));
    const auto load_end = Steady::now();
    phase_ = Phase::drain;
    timer_.cancel();
    io_.restart();
    io_.run_for(drain_);
    const auto after = observe();
    report(before, after, load_end);
    return 0;
  }

 private:
  enum class Phase { handshake, load, drain };

  struct Observed {
    Steady::time_point at;
    std::map<std::string, std::uint64_t> snmp;
    std::uint64_t target_drops = 0, client_drops = 0;
    std::uint64_t processed = 0, rejected = 0;
    Threads threads;
    MachineCpu machine;
    double own_cpu = 0;
  };

  Observed observe() {
    Observed o;
    if (mode_ == Mode::probes) {
      const auto text = http_get(status_port_, "/metrics");
      o.processed = metric(text, "relay_datagrams_accepted_total");
      o.rejected = metric(text, "relay_datagrams_rejected_total");
    } else if (mode_ == Mode::kicks) {
      o.processed = json_counter(http_get(status_port_, "/api/status"), "kicks");
    } else {
      o.processed = query_count();
    }
    o.snmp = snmp_udp();
    o.target_drops = socket_drops({target_.port()});
    o.client_drops = socket_drops(client_ports_);
    o.threads = threads_of(pid_);
    o.machine = machine_cpu();
    o.own_cpu = process_cpu_seconds();
    o.at = Steady::now();
    return o;
  }

  // The echo server's count: asked on a socket of its own until it answers.
  std::uint64_t query_count() {
    udp::socket s(io_, udp::v4());
    s.connect(target_);
    for (int attempt = 0; attempt < 20; ++attempt) {
      s.send(asio::buffer(std::string("?count")));
      std::array<char, 64> reply{};
      s.non_blocking(true);
      const auto until = Steady::now() + std::chrono::milliseconds(100);
      while (Steady::now() < until) {
        asio::error_code ec;
        const auto n = s.receive(asio::buffer(reply), 0, ec);
        if (!ec) return std::stoull(std::string(reply.data(), n));
        usleep(1000);
      }
    }
    throw std::runtime_error("the echo server does not answer ?count");
  }

  void settle(Steady::duration d) {
    io_.restart();
    io_.run_for(d);
  }

  bool handshake() {
    const auto deadline = Steady::now() + std::chrono::seconds(30);
    while (Steady::now() < deadline) {
      std::size_t up = 0;
      for (auto& c : clients_) {
        if (c->codec->peer_state(target_id_).session) {
          ++up;
          continue;
        }
        for (const auto& [peer, hello] : c->codec->greet()) send_raw(*c, hello);
      }
      if (up == clients_.size()) {
        // relayd confirms a session on its first pairwise datagram; the
        // first probes do that, counted like the rest.
        settle(std::chrono::milliseconds(300));
        return true;
      }
      settle(std::chrono::milliseconds(1000));
    }
    std::size_t up = 0;
    for (auto& c : clients_) up += c->codec->peer_state(target_id_).session ? 1 : 0;
    std::fprintf(stderr, "datagram_load: only %zu of %zu clients have a session with %s\n", up,
                 clients_.size(), target_id_.c_str());
    return false;
  }

  void send_raw(Client& c, const std::string& datagram) {
    asio::error_code ec;
    c.socket.send(asio::buffer(datagram), 0, ec);
    if (phase_ == Phase::handshake) return;
    if (ec) {
      ++send_errors_;
    } else {
      ++sent_;
    }
  }

  void send_load(Client& c) {
    const std::uint64_t us = micros_since(t0_);
    ++c.seq;
    if (mode_ == Mode::probes) {
      v1::Datagram d;
      d.mutable_probe()->set_nonce((us << 8) | (c.seq & 0xff));
      d.mutable_probe()->set_target(target_id_);
      d.mutable_probe()->set_wall_unix_ms(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count());
      const auto sealed = c.codec->seal(target_id_, d);
      if (!sealed || sealed->size() != 1) {
        ++seal_failures_;
        return;
      }
      probe_bytes_ = sealed->front().size();
      send_raw(c, sealed->front());
    } else if (mode_ == Mode::kicks) {
      send_raw(c, "k");
    } else {
      std::string payload(std::max<std::size_t>(size_, 1), 'x');
      if (payload.size() >= sizeof us) std::memcpy(payload.data(), &us, sizeof us);
      send_raw(c, payload);
    }
    ++load_sent_;
  }

  void tick() {
    const double elapsed = std::min(seconds(Steady::now() - t0_), seconds_);
    for (auto& c : clients_) {
      // What this client owes by now, at `rate_` from its own phase.
      const double due = elapsed * rate_ + c->phase;
      while (static_cast<double>(c->owed) < due) {
        ++c->owed;
        send_load(*c);
      }
    }
    timer_.expires_at(timer_.expiry() == Steady::time_point{}
                          ? Steady::now() + std::chrono::milliseconds(1)
                          : std::max(timer_.expiry() + std::chrono::milliseconds(1),
                                     Steady::now()));
    timer_.async_wait([this](const asio::error_code& ec) {
      if (!ec && phase_ == Phase::load) tick();
    });
  }

  void receive(Client& c) {
    c.socket.async_receive(asio::buffer(c.buffer), [this, &c](const asio::error_code& ec,
                                                             std::size_t n) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) on_datagram(c, n);
      receive(c);
    });
  }

  void on_datagram(Client& c, std::size_t n) {
    ++received_;
    if (mode_ == Mode::raw) {
      if (phase_ == Phase::handshake) return;
      ++answered_;
      if (n >= 8 && size_ >= 8) {
        std::uint64_t us = 0;
        std::memcpy(&us, c.buffer.data(), sizeof us);
        rtts_.push_back(static_cast<std::uint32_t>(micros_since(t0_) - us));
      }
      return;
    }
    if (mode_ != Mode::probes) return;
    const auto reason = c.codec->open({c.buffer.data(), n}, c.opened);
    for (const auto& reply : c.opened.replies) send_raw(c, reply);  // hellos
    if (reason != wire::Reject::none) {
      ++rejected_here_;
      return;
    }
    const auto& body = c.opened.body;
    if (body.has_probe_ack() && body.probe_ack().target() == target_id_ &&
        body.probe_ack().requester().empty() && phase_ != Phase::handshake) {
      ++answered_;
      rtts_.push_back(static_cast<std::uint32_t>(micros_since(t0_) - (body.probe_ack().nonce() >> 8)));
    } else if (body.has_probe() && body.probe().target() == c.id &&
               body.probe().on_behalf_of().empty() && phase_ != Phase::drain) {
      // relayd's own probe of this peer: answered as a peer does.
      v1::Datagram d;
      d.mutable_probe_ack()->set_nonce(body.probe().nonce());
      d.mutable_probe_ack()->set_target(c.id);
      d.mutable_probe_ack()->set_path(body.probe().path());
      d.mutable_probe_ack()->set_wall_unix_ms(
          std::chrono::duration_cast<std::chrono::milliseconds>(
              std::chrono::system_clock::now().time_since_epoch())
              .count());
      if (auto sealed = c.codec->seal(target_id_, d)) {
        for (const auto& s : *sealed) send_raw(c, s);
      }
    }
  }

  void report(const Observed& b, const Observed& a, Steady::time_point load_end) {
    const double load_s = seconds(load_end - t0_);
    const double window_s = seconds(a.at - b.at);
    const std::uint64_t processed = a.processed - b.processed;
    auto cpu_pct = [&](std::uint64_t ns) { return 100.0 * static_cast<double>(ns) / 1e9 / window_s; };
    const double tick_ns = 1e9 / static_cast<double>(sysconf(_SC_CLK_TCK));
    // The main thread (relayd's network thread: the mesh socket, the kick
    // socket, the core) apart from the busiest other one.
    std::uint64_t target_ticks = 0, main_ticks = 0, busiest = 0;
    std::string busiest_name = "-";
    for (const auto& [tid, after] : a.threads.ticks) {
      auto it = b.threads.ticks.find(tid);
      const std::uint64_t d = after.second - (it == b.threads.ticks.end() ? 0 : it->second.second);
      target_ticks += d;
      if (tid == std::to_string(pid_)) {
        main_ticks = d;
      } else if (d > busiest) {
        busiest = d;
        busiest_name = after.first + "/" + tid;
      }
    }
    std::replace(busiest_name.begin(), busiest_name.end(), ' ', '_');
    auto snmp = [&](const char* name) {
      return a.snmp.count(name) ? a.snmp.at(name) - b.snmp.at(name) : 0;
    };
    // What the target was sent: every datagram (probes, answers to its own
    // probes); the echo server counts the load alone.
    const std::uint64_t sent = mode_ == Mode::raw ? load_sent_ : sent_;
    const double loss = sent == 0 ? 0
                                  : 100.0 * (static_cast<double>(sent) - static_cast<double>(processed)) /
                                        static_cast<double>(sent);
    std::sort(rtts_.begin(), rtts_.end());
    auto pct = [&](double q) -> double {
      if (rtts_.empty()) return 0;
      return rtts_[std::min(rtts_.size() - 1, static_cast<std::size_t>(q * static_cast<double>(rtts_.size())))] / 1000.0;
    };
    const double offered = static_cast<double>(clients_.size()) * rate_;
    std::printf(
        "result mode=%s clients=%zu offered_per_s=%.0f sent_per_s=%.0f sent=%llu send_errors=%llu "
        "processed=%llu processed_per_s=%.0f loss_pct=%.2f answered=%llu answered_pct=%.2f "
        "rtt_p50_ms=%.2f rtt_p99_ms=%.2f rcvbuf_errors=%llu sndbuf_errors=%llu target_drops=%llu "
        "client_drops=%llu target_rejected=%llu rejected_here=%llu seal_failures=%llu "
        "gen_cpu_pct=%.0f target_cpu_pct=%.0f main_thread_cpu_pct=%.0f other_thread=%s "
        "other_thread_cpu_pct=%.0f main_thread_us_per_datagram=%.1f gen_us_per_datagram=%.1f "
        "machine_busy_pct=%.0f others_cpu_pct=%.0f datagram_bytes=%zu load_s=%.2f\n",
        mode_ == Mode::probes ? "probes" : mode_ == Mode::kicks ? "kicks" : "raw",
        clients_.size(), offered, static_cast<double>(load_sent_) / load_s,
        static_cast<unsigned long long>(sent), static_cast<unsigned long long>(send_errors_),
        static_cast<unsigned long long>(processed), static_cast<double>(processed) / load_s, loss,
        static_cast<unsigned long long>(answered_),
        load_sent_ == 0 ? 0.0 : 100.0 * static_cast<double>(answered_) / static_cast<double>(load_sent_),
        pct(0.5), pct(0.99), static_cast<unsigned long long>(snmp("RcvbufErrors")),
        static_cast<unsigned long long>(snmp("SndbufErrors")),
        static_cast<unsigned long long>(a.target_drops - b.target_drops),
        static_cast<unsigned long long>(a.client_drops - b.client_drops),
        static_cast<unsigned long long>(a.rejected - b.rejected),
        static_cast<unsigned long long>(rejected_here_),
        static_cast<unsigned long long>(seal_failures_),
        100.0 * (a.own_cpu - b.own_cpu) / window_s, cpu_pct(target_ticks), cpu_pct(main_ticks),
        busiest_name.c_str(), cpu_pct(busiest),
        // CPU time per datagram processed: one core's ceiling is 1e6 / this.
        processed == 0 ? 0.0
                       : static_cast<double>(main_ticks) / 1e3 / static_cast<double>(processed),
        sent == 0 ? 0.0 : 1e6 * (a.own_cpu - b.own_cpu) / static_cast<double>(sent),
        100.0 * static_cast<double>(a.machine.busy - b.machine.busy) /
            static_cast<double>(std::max<std::uint64_t>(1, a.machine.total - b.machine.total)),
        // Everything else on the machine (other engineers' builds, the
        // database, the kernel's own threads), in percent of one core.
        std::max(0.0, cpu_pct(static_cast<std::uint64_t>(
                          static_cast<double>(a.machine.busy - b.machine.busy) * tick_ns)) -
                          cpu_pct(target_ticks) -
                          100.0 * (a.own_cpu - b.own_cpu) / window_s),
        mode_ == Mode::probes ? probe_bytes_ : mode_ == Mode::kicks ? 1 : std::max<std::size_t>(size_, 1),
        load_s);
  }

  Mode mode_;
  asio::io_context io_;
  std::vector<std::unique_ptr<Client>> clients_;
  double rate_;
  double seconds_;
  std::chrono::milliseconds drain_;
  udp::endpoint target_;
  int pid_;
  std::size_t size_;
  asio::steady_timer timer_;
  unsigned short status_port_ = 0;
  KeyRing ring_;
  std::string target_id_;
  crypto::VerifyKey target_key_ = crypto::SigningKey::generate().verify_key();
  std::string keys_dir_;
  unsigned first_port_ = 0;
  std::set<unsigned> client_ports_;

  Phase phase_ = Phase::handshake;
  Steady::time_point t0_;
  std::uint64_t sent_ = 0, load_sent_ = 0, send_errors_ = 0, received_ = 0, answered_ = 0;
  std::uint64_t rejected_here_ = 0, seal_failures_ = 0;
  std::size_t probe_bytes_ = 0;
  std::vector<std::uint32_t> rtts_;
};

// --- the trivial server -----------------------------------------------------

int echo(unsigned short port, bool sink, int buffer_size) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (buffer_size > 0) {  // else the kernel's default, net.core.rmem_default
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer_size, sizeof buffer_size);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buffer_size, sizeof buffer_size);
  }
  sockaddr_in at{};
  at.sin_family = AF_INET;
  at.sin_port = htons(port);
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&at), sizeof at) != 0) {
    std::perror("echo: bind");
    return 1;
  }
  std::uint64_t count = 0;
  char buffer[2048];
  for (;;) {
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const ssize_t n =
        ::recvfrom(fd, buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) continue;
    if (n == 6 && std::memcmp(buffer, "?count", 6) == 0) {
      const std::string c = std::to_string(count);
      ::sendto(fd, c.data(), c.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
      continue;
    }
    ++count;
    if (!sink) ::sendto(fd, buffer, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), from_len);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage =
      "usage: datagram_load probes|kicks|raw --clients N --port P [OPTIONS] | "
      "datagram_load echo PORT [--sink] [--rcvbuf BYTES]\n";
  if (argc < 3) {
    std::fputs(usage.c_str(), stderr);
    return 2;
  }
  const std::string verb = argv[1];
  try {
    if (verb == "echo") {
      bool sink = false;
      int buffer_size = kBuffer;
      for (int i = 3; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--sink") {
          sink = true;
        } else if (a == "--rcvbuf" && i + 1 < argc) {
          buffer_size = std::atoi(argv[++i]);
        } else {
          throw std::runtime_error("unexpected " + a);
        }
      }
      return echo(static_cast<unsigned short>(std::atoi(argv[2])), sink, buffer_size);
    }
    Options o;
    for (int i = 2; i + 1 < argc; i += 2) {
      std::string name = argv[i];
      if (name.rfind("--", 0) != 0) throw std::runtime_error("unexpected " + name);
      o.values[name.substr(2)] = argv[i + 1];
    }
    const Mode mode = verb == "probes" ? Mode::probes
                      : verb == "kicks" ? Mode::kicks
                      : verb == "raw"   ? Mode::raw
                                        : throw std::runtime_error("unknown mode " + verb);
    // One socket per client.
    rlimit files{};
    getrlimit(RLIMIT_NOFILE, &files);
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
    Load load(mode, o);
    return load.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "datagram_load: %s\n%s", e.what(), usage.c_str());
    return 2;
  }
}

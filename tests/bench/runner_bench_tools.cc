// Helpers of scripts/bench-runner: the machine's raw limits for the runner's
// handlers, and a no-op webhook that records insert-to-handler latency.
//   runner_bench_tools spawn N          raw spawn rate, and CommandHandler's
//   runner_bench_tools post PORT N      raw keep-alive POST rate to a webhook
//   runner_bench_tools webhook PORT OUT no-op webhook: 204 to every POST; one
//                                       line per POST to OUT: microseconds
//                                       from relayd's insert to its arrival
#include <httplib.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>

#include "relay/relay-runner/command_handler.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

double per_second(int n, Clock::duration took) {
  return n / std::chrono::duration<double>(took).count();
}

int spawn(int n) {
  char program[] = "/bin/true";
  char* argv[] = {program, nullptr};
  auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    pid_t pid = 0;
    if (posix_spawn(&pid, program, nullptr, nullptr, argv, environ) != 0) return 1;
    int status = 0;
    waitpid(pid, &status, 0);
  }
  std::printf("raw posix_spawn + wait of /bin/true: %.0f /s\n",
              per_second(n, Clock::now() - start));
  relay::runner::CommandHandler handler({"/bin/true"});
  relay::runner::Row row;
  row.data = R"({"id":"hq:1","title":"bench"})";
  start = Clock::now();
  for (int i = 0; i < n; ++i) {
    if (!handler.handle(row, std::chrono::seconds(5)).ok) return 1;
  }
  std::printf("CommandHandler on /bin/true (fork, stdin, environment, pidfd wait): %.0f /s\n",
              per_second(n, Clock::now() - start));
  return 0;
}

int post(int port, int n) {
  httplib::Client client("127.0.0.1", port);
  client.set_keep_alive(true);
  client.set_tcp_nodelay(true);
  const std::string body = R"({"id":"hq:1","title":"bench"})";
  const auto start = Clock::now();
  for (int i = 0; i < n; ++i) {
    auto res = client.Post("/raw", body, "application/json");
    if (!res || res->status != 204) return 1;
  }
  std::printf("raw keep-alive POST to the no-op webhook: %.0f /s\n",
              per_second(n, Clock::now() - start));
  return 0;
}

httplib::Server* g_server = nullptr;

int webhook(int port, const std::string& out_file) {
  std::ofstream out(out_file, std::ios::app);
  std::mutex mutex;
  httplib::Server server;
  g_server = &server;
  server.set_payload_max_length(64 * 1024);
  server.set_tcp_nodelay(true);
  server.set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server.Post(".*", [&](const httplib::Request& req, httplib::Response& res) {
    res.status = 204;
    if (!req.has_header("X-Relay-Inserted-At")) return;
    const double inserted = std::stod(req.get_header_value("X-Relay-Inserted-At"));
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    std::lock_guard lock(mutex);
    out << static_cast<long long>((now - inserted) * 1e6) << '\n' << std::flush;
  });
  std::signal(SIGTERM, [](int) { g_server->stop(); });
  if (!server.bind_to_port("127.0.0.1", port)) {
    std::cerr << "webhook: cannot listen on 127.0.0.1:" << port << "\n";
    return 1;
  }
  server.listen_after_bind();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // As in relay-runner: a handler that exits without reading its stdin.
  std::signal(SIGPIPE, SIG_IGN);
  const std::string verb = argc > 1 ? argv[1] : "";
  if (verb == "spawn" && argc == 3) return spawn(std::stoi(argv[2]));
  if (verb == "post" && argc == 4) return post(std::stoi(argv[2]), std::stoi(argv[3]));
  if (verb == "webhook" && argc == 4) return webhook(std::stoi(argv[2]), argv[3]);
  std::cerr << "usage: runner_bench_tools spawn N | post PORT N | webhook PORT OUT\n";
  return 2;
}

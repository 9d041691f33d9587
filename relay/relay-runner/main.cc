// relay-runner: consumes message_queue for one integration (popup, SMS,
// e-mail, PA gateway) with a command or a local webhook, woken by the poll,
// relayd's kick datagram and NOTIFY.
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <pqxx/connection>

#include <csignal>
#include <iostream>
#include <mutex>

#include "common/config_error.h"
#include "common/log.h"
#include "relay/capture/log_files.h"
#include "relay/capture/output_capture.h"
#include "relay/net/systemd_notify.h"
#include "relay/relay-runner/check.h"
#include "relay/relay-runner/command_handler.h"
#include "relay/relay-runner/config.h"
#include "relay/relay-runner/group_guard.h"
#include "relay/relay-runner/http_handler.h"
#include "relay/relay-runner/retire.h"
#include "relay/relay-runner/runs.h"
#include "relay/relay-runner/status.h"
#include "relay/relay-runner/status_server.h"
#include "relay/runner/wake.h"

namespace {

using namespace relay;
using namespace relay::runner;

/// The group's backlog for the status page, on a connection of its own
/// (status requests come from the HTTP server's threads).
class BacklogReader {
 public:
  BacklogReader(std::string dsn, Consumer who) : dsn_(std::move(dsn)), who_(std::move(who)) {}

  std::optional<GroupBacklog> read() {
    std::lock_guard lock(mutex_);
    try {
      if (!conn_) conn_ = std::make_unique<pqxx::connection>(dsn_);
      return backlog(*conn_, who_);
    } catch (const std::exception&) {
      conn_.reset();  // the loop's own error says why; the page shows it
      return std::nullopt;
    }
  }

 private:
  std::string dsn_;
  Consumer who_;
  std::mutex mutex_;
  std::unique_ptr<pqxx::connection> conn_;
};

HandlerFactory handler_factory(const RunnerConfig& config) {
  if (!config.handler.command.empty()) {
    return [argv = config.handler.command] { return std::make_unique<CommandHandler>(argv); };
  }
  return [url = *parse_http_url(config.handler.url)] { return std::make_unique<HttpHandler>(url); };
}

std::int64_t unix_ms(Clock::WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

/// The captured output, its incident lines and the recent runs, for the page.
void read_logs(RunnerStatus& s, const capture::CaptureState& capture, const RunLog& runs) {
  if (capture.active) {
    s.logs.stdout_lines = capture::read_tail(capture.dir, capture::Stream::out);
    s.logs.stderr_lines = capture::read_tail(capture.dir, capture::Stream::err);
    s.incidents = incidents_in(s.logs.stderr_lines);
  }
  s.runs = runs.recent();
  s.runs_why_not = runs.why_not();
}

std::string handler_text(const RunnerConfig& config) {
  if (config.handler.command.empty()) return "POST " + config.handler.url;
  std::string out;
  for (const auto& a : config.handler.command) out += (out.empty() ? "" : " ") + a;
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"relay-runner: consumes message_queue rows for one integration"};
  std::string config_file = "/etc/relaymesh/runner.toml";
  std::string level = "info";
  bool check = false;
  bool offline = false;
  std::string retired;
  app.add_option("--config", config_file, "configuration file")->capture_default_str();
  app.add_option("--log-level", level, "trace, debug, info, warn or error")->capture_default_str();
  app.add_flag("--check-config", check,
               "check the configuration and what the runner will meet (its handler, the "
               "database, its ports), and exit: 0 if all is well, 2 naming each problem");
  app.add_flag("--offline", offline,
               "with --check-config: leave the database out (the unit's ExecStartPre: the "
               "runner itself waits for the database)");
  auto* retire = app.add_subcommand(
      "retire-group",
      "remove a consumer group, and the message_queue rows every remaining group has finished "
      "(docs/runner.md); exit 2 if there is no such group, 1 while a runner of it holds a lease");
  retire->add_option("NAME", retired, "the group ([runner] group of its configuration)")
      ->required();
  retire->fallthrough();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  RunnerConfig config;
  try {
    init_logging(level);
    config = load_runner_config(config_file);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  if (retire->parsed()) return retire_group_command(config, retired);
  if (check) return check_config(config, offline);
  // Before any thread starts (it forks), as relayd does: stdout and stderr
  // go where they went and to the files the page shows.
  const auto capture = capture::start_output_capture(
      capture::log_dir(config.runner.state_dir), "relay-runner");
  if (!capture.active)
    spdlog::warn("output capture off, the page shows no log: {}", capture.why_not);
  // A handler that exits without reading its stdin must not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  // Before any thread: the process that ends handlers' groups with us.
  if (!config.handler.command.empty() && !start_group_guard()) {
    spdlog::warn("could not start the handler group guard: a handler's background processes "
                 "may outlive a kill -9 of relay-runner");
  }

  try {
    SystemClock clock;
    const Consumer who{config.runner.group, config.runner.types, config.runner.name};
    RunLog runs(capture.active ? std::optional(capture.dir) : std::nullopt);
    auto record_run = [&runs, &clock](const Row& row, const Outcome& outcome,
                                      const RetryDecision& decision) {
      runs.add(run_record(row, outcome, decision, unix_ms(clock.wall_now())));
    };
    LoopOptions options{config.store.dsn,       who,
                        config.runner.batch,    config.runner.concurrency,
                        config.handler.timeout, config.retry,
                        config.runner.acknowledge, record_run};
    ConsumeLoop loop(options, handler_factory(config), clock);
    asio::io_context io;
    // Under relay-runner@.service (Type=notify): the watchdog's pings come
    // from this loop's thread, which runs the wake-ups.
    net::SystemdNotifier systemd(io);
    systemd.start_watchdog();
    auto wake = [&loop] { loop.wake(); };
    std::optional<KickListener> kick;
    if (config.kick) kick.emplace(io, *config.kick, wake);
    std::optional<NotifyListener> notify;
    if (!config.store.listen.empty())
      notify.emplace(io, config.store.dsn, config.store.listen, wake);
    PollTimer poll(io, config.store.poll_interval, wake);
    BacklogReader backlog_reader(config.store.dsn, who);
    const auto started = std::chrono::steady_clock::now();
    RunnerStatusServer status(config.status.listen, [&](bool with_logs) {
      RunnerStatus s;
      s.logs.captured = capture.active;
      s.logs.why_not = capture.why_not;
      s.logs.dir = capture.dir.string();
      if (with_logs) read_logs(s, capture, runs);
      s.group = who.group;
      s.name = who.name;
      s.types = who.types;
      s.handler = handler_text(config);
      s.loop = loop.stats();
      s.backlog = backlog_reader.read();
      s.kicks = kick ? kick->kicks() : 0;
      s.notifies = notify ? notify->notifies() : 0;
      s.listening = notify && notify->listening();
      s.uptime_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      return s;
    });
    if (kick) kick->start();
    status.start();
    loop.start();
    if (notify) notify->start();
    poll.start();
    spdlog::info("runner {} of group {} consuming [{}] with {}; status on http://{}/", who.name,
                 who.group, fmt::join(who.types, ", "), handler_text(config),
                 config.status.listen.to_string());
    systemd.ready(fmt::format("consuming [{}] as {} of group {}", fmt::join(who.types, ", "),
                              who.name, who.group));

    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](const asio::error_code& ec, int) {
      if (ec) return;
      systemd.stopping();
      spdlog::info("stopping: the handlers running now finish first");
      if (kick) kick->stop();
      if (notify) notify->stop();
      poll.stop();
      io.stop();
    });
    io.run();
    loop.stop();
    status.stop();
    spdlog::info("stopped");
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
  return 0;
}

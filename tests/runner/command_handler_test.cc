// The command handler with real processes: stdin, environment, exit status, timeout.
#include "relay/relay-runner/command_handler.h"

#include <doctest/doctest.h>
#include <csignal>

#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/temp_dir.h"

using namespace relay::runner;
using namespace std::chrono_literals;

namespace {

Row duress_row() {
  Row r;
  r.queue_id = 42;
  r.type = "duress";
  r.data = R"({"id":"clinic-north:7","location":"Psych ward, room 12"})";
  r.priority = kDuressPriority;
  r.attempts = 2;
  r.event_id = "clinic-north:7";
  r.inserted_at = std::chrono::microseconds(1'700'000'000'123'456);
  return r;
}

std::string read(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

CommandHandler shell(const std::string& script) {
  return CommandHandler({"sh", "-c", script});
}

}  // namespace

TEST_CASE("the row's JSON arrives on stdin and its id, type and priority in the environment") {
  std::signal(SIGPIPE, SIG_IGN);
  relay::test::TempDir dir;
  const auto out = dir / "seen";
  auto h = shell("cat > " + out.string() +
                 "; echo \"$RELAY_QUEUE_ID $RELAY_EVENT_ID $RELAY_TYPE $RELAY_PRIORITY "
                 "$RELAY_ATTEMPT $RELAY_INSERTED_AT\" >> " +
                 out.string());
  const auto outcome = h.handle(duress_row(), 5s);
  CHECK(outcome.ok);
  CHECK(read(out) == duress_row().data + "42 clinic-north:7 duress duress 2 1700000000.123456\n");
}

TEST_CASE("exit 0 is handled, any other status fails with what the command said last") {
  std::signal(SIGPIPE, SIG_IGN);
  CHECK(shell("exit 0").handle(duress_row(), 5s).ok);
  const auto failed =
      shell("echo starting; echo 'SMS gateway refused: 503' >&2; exit 4").handle(duress_row(), 5s);
  CHECK_FALSE(failed.ok);
  CHECK(failed.error == "sh: exit status 4: SMS gateway refused: 503");
  const auto killed = shell("kill -9 $$").handle(duress_row(), 5s);
  CHECK_FALSE(killed.ok);
  CHECK(killed.error.find("killed by signal 9") != std::string::npos);
}

TEST_CASE("a handler that ignores its stdin still runs") {
  std::signal(SIGPIPE, SIG_IGN);
  Row big = duress_row();
  big.data = std::string(200'000, 'x');  // more than a pipe holds: the write must not block
  CHECK(shell("exit 0").handle(big, 5s).ok);
}

TEST_CASE("a row larger than a pipe holds arrives whole, one above the bound is refused") {
  // SIGPIPE at its default (it ends the process): the handler code holds
  // it off itself, whatever main does.
  std::signal(SIGPIPE, SIG_DFL);
  relay::test::TempDir dir;
  const auto out = dir / "seen";
  Row big = duress_row();
  big.data = "{\"body\":\"" + std::string(200'000, 'x') + "\"}";
  // It reads slowly, and talks while it reads: neither side waits on the other.
  auto read_slowly = shell("sleep 0.2; yes said | head -c 100000; cat > " + out.string());
  CHECK(read_slowly.handle(big, 5s).ok);
  CHECK(read(out) == big.data);
  // One that exits without reading any of it does not take the runner along.
  CHECK(shell("exit 0").handle(big, 5s).ok);
  CHECK_FALSE(shell("exit 3").handle(big, 5s).ok);
  Row huge = duress_row();
  huge.data = std::string(kMaxRowBytes + 1, 'x');
  const auto refused = shell("cat > " + out.string()).handle(huge, 5s);
  CHECK_FALSE(refused.ok);
  CHECK(refused.error.find("a command handler takes at most 1048576") != std::string::npos);
  std::signal(SIGPIPE, SIG_IGN);
}

TEST_CASE("a hung handler is killed at the timeout, with the processes it started") {
  std::signal(SIGPIPE, SIG_IGN);
  relay::test::TempDir dir;
  const auto marker = dir / "late";
  const auto start = std::chrono::steady_clock::now();
  const auto outcome =
      shell("(sleep 2; touch " + marker.string() + ") & sleep 30").handle(duress_row(), 300ms);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK_FALSE(outcome.ok);
  CHECK(outcome.error == "sh: timed out after 300 ms and was killed");
  CHECK(took < 2s);
  std::this_thread::sleep_for(2500ms);
  CHECK_FALSE(std::filesystem::exists(marker));  // the background child died with its group
}

TEST_CASE("a program that does not exist fails with a reason") {
  CommandHandler h({"/nonexistent/popup"});
  const auto outcome = h.handle(duress_row(), 5s);
  CHECK_FALSE(outcome.ok);
  CHECK(outcome.error.find("exit status 127") != std::string::npos);
  CHECK(outcome.error.find("cannot execute") != std::string::npos);
}

TEST_CASE("a run's output is kept for the page: stdout and stderr as they came, its last 4 KiB") {
  std::signal(SIGPIPE, SIG_IGN);
  const auto said = shell("echo to-stdout; echo to-stderr >&2; exit 0").handle(duress_row(), 5s);
  CHECK(said.ok);
  CHECK(said.output == "to-stdout\nto-stderr\n");
  const auto failed = shell("echo 'gateway <b>down</b>' >&2; exit 1").handle(duress_row(), 5s);
  CHECK(failed.output == "gateway <b>down</b>\n");
  // A chatty handler: its first lines are gone, the last ones kept, marked cut.
  const auto chatty =
      shell("i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo last >&2")
          .handle(duress_row(), 5s);
  CHECK(chatty.ok);
  CHECK(chatty.output.starts_with("[...]"));
  CHECK(chatty.output.ends_with("line 1999\nlast\n"));
  CHECK(chatty.output.size() <= 4096 + 5);
  CHECK(chatty.output.find("line 0\n") == std::string::npos);
}

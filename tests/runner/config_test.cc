// relay-runner's configuration: defaults, and errors that name file, line and key.
#include "relay/relay-runner/config.h"

#include <doctest/doctest.h>

#include <fstream>

#include "common/config_error.h"
#include "relay/relay-runner/http_handler.h"
#include "tests/support/temp_dir.h"

using namespace relay;
using namespace relay::runner;
using namespace std::chrono_literals;

namespace {

std::filesystem::path write(const relay::test::TempDir& dir, const std::string& text) {
  const auto file = dir.path() / "runner.toml";
  std::ofstream(file) << text;
  return file;
}

/// Every issue's text, one per line.
std::string issues_of(const std::filesystem::path& file) {
  try {
    load_runner_config(file);
  } catch (const ConfigError& e) {
    std::string out;
    for (const auto& i : e.issues()) out += i.to_string() + "\n";
    return out;
  }
  return "";
}

}  // namespace

TEST_CASE("a minimal config gets the documented defaults") {
  relay::test::TempDir dir;
  const auto c = load_runner_config(write(dir, R"(
[runner]
group = "popup"
types = ["duress", "notification"]
[handler]
command = ["/usr/local/bin/popup", "--all"]
)"));
  CHECK(c.runner.group == "popup");
  CHECK(c.runner.types == std::vector<std::string>{"duress", "notification"});
  CHECK(c.runner.name.starts_with("popup@"));
  CHECK(c.runner.batch == 1);
  CHECK(c.runner.concurrency == 1);
  CHECK(c.store.dsn == "dbname=relaymesh");
  CHECK(c.store.poll_interval == 1s);
  CHECK(c.store.listen == "message_queue");
  CHECK_FALSE(c.kick.has_value());
  CHECK(c.handler.command.size() == 2);
  CHECK(c.handler.timeout == 30s);
  CHECK(c.retry.max_attempts == 10);
  CHECK(c.status.listen.to_string() == "127.0.0.1:7490");
  CHECK(c.runner.state_dir == "/var/lib/relaymesh/runner-popup");
}

TEST_CASE("every key can be set") {
  relay::test::TempDir dir;
  const auto c = load_runner_config(write(dir, R"(
[runner]
group = "sms"
name = "sms-2"
types = ["duress"]
batch = 4
concurrency = 2
state_dir = "state/sms"
[store]
dsn = "host=/tmp dbname=x"
poll_interval = "1m"
listen = ""
[kick]
listen = "127.0.0.1:7492"
[handler]
url = "http://127.0.0.1:8080/alert"
timeout = "5s"
[retry]
initial = "200ms"
max = "1m"
max_attempts = 4
duress_alarm_after = 2
[status]
listen = "127.0.0.1:7493"
)"));
  CHECK(c.runner.name == "sms-2");
  CHECK(c.runner.batch == 4);
  CHECK(c.runner.concurrency == 2);
  CHECK(c.runner.state_dir == dir.path() / "state/sms");  // beside the config file
  CHECK(c.store.poll_interval == 60s);
  CHECK(c.store.listen.empty());
  REQUIRE(c.kick.has_value());
  CHECK(c.kick->port == 7492);
  CHECK(c.handler.url == "http://127.0.0.1:8080/alert");
  CHECK(c.handler.timeout == 5s);
  CHECK(c.retry.initial == 200ms);
  CHECK(c.retry.max == 60s);
  CHECK(c.retry.max_attempts == 4);
  CHECK(c.retry.duress_alarm_after == 2);
  CHECK(c.status.listen.port == 7493);
}

TEST_CASE("errors name the file, the line and the key, all of them at once") {
  relay::test::TempDir dir;
  const auto file = write(dir, R"([runner]
group = "Popup!"
types = []
colour = "blue"
[handler]
command = ["/bin/true"]
url = "https://gateway/alert"
timeout = "forever"
[retry]
max_attempts = 0
)");
  const auto text = issues_of(file);
  const auto f = file.string();
  CHECK(text.find(f + ":2: runner.group") != std::string::npos);
  CHECK(text.find(f + ":3: runner.types: expected at least one") != std::string::npos);
  CHECK(text.find(f + ":4: runner.colour: unknown key") != std::string::npos);
  CHECK(text.find(f + ":7: handler.url: expected \"http://host:port/path\"") != std::string::npos);
  CHECK(text.find("handler.url: expected exactly one of command and url") != std::string::npos);
  CHECK(text.find(f + ":8: handler.timeout: expected a duration") != std::string::npos);
  CHECK(text.find(f + ":10: retry.max_attempts: expected an integer 1 to") != std::string::npos);
}

TEST_CASE("a handler and a group are required") {
  relay::test::TempDir dir;
  const auto text = issues_of(write(dir, "[runner]\ntypes = [\"duress\"]\n"));
  CHECK(text.find("runner.group: missing") != std::string::npos);
  CHECK(text.find("handler: missing") != std::string::npos);
}

TEST_CASE("webhook URLs: plain http to a host, port and path optional") {
  auto u = parse_http_url("http://127.0.0.1:8080/alert/popup");
  REQUIRE(u);
  CHECK(u->host == "127.0.0.1");
  CHECK(u->port == 8080);
  CHECK(u->path == "/alert/popup");
  u = parse_http_url("http://gateway");
  REQUIRE(u);
  CHECK(u->port == 80);
  CHECK(u->path == "/");
  CHECK(parse_http_url("http://[::1]:9000/x")->host == "::1");
  CHECK_FALSE(parse_http_url("https://gateway/"));
  CHECK_FALSE(parse_http_url("http://:80/"));
  CHECK_FALSE(parse_http_url("http://user@gateway/"));
  CHECK_FALSE(parse_http_url("http://gateway:99999/"));
}

TEST_CASE("handler variables become X-Relay headers") {
  CHECK(header_name("RELAY_QUEUE_ID") == "X-Relay-Queue-Id");
  CHECK(header_name("RELAY_INSERTED_AT") == "X-Relay-Inserted-At");
}

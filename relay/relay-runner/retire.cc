// relay-runner retire-group: the command around relay/runner/queue.cc's
// retire_group, for an operator.
#include "relay/relay-runner/retire.h"

#include <pqxx/pqxx>

#include <cstdio>
#include <cstdlib>

#include "common/log.h"
#include "relay/runner/queue.h"

namespace relay::runner {
namespace {

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "\"" : ", \"") + item + "\"";
  return out.empty() ? "none" : out;
}

}  // namespace

int retire_group_command(const RunnerConfig& config, const std::string& name) {
  Retirement r;
  try {
    // A database that does not answer is said within seconds, not minutes.
    ::setenv("PGCONNECT_TIMEOUT", "3", 0);
    pqxx::connection conn(config.store.dsn);
    r = retire_group(conn, name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "relay-runner: retire-group %s: database (%s): %s; nothing changed\n",
                 name.c_str(), config.store.dsn.c_str(), one_line(e.what()).c_str());
    return 1;
  }
  switch (r.outcome) {
    case Retirement::Outcome::no_such_group:
      std::fprintf(stderr,
                   "relay-runner: retire-group: no group \"%s\" in runner_groups (the groups "
                   "there: %s); nothing changed\n",
                   name.c_str(), quoted_list(r.groups).c_str());
      return 2;
    case Retirement::Outcome::leased: {
      const auto& lease = r.leases.front();
      std::fprintf(stderr,
                   "relay-runner: retire-group: group \"%s\" is in use: runner %s holds row %lld "
                   "for %lld s more; stop the group's runners first "
                   "(systemctl disable --now relay-runner@INSTANCE) and retire it once their "
                   "leases are released or run out; nothing changed\n",
                   name.c_str(), lease.runner.c_str(), static_cast<long long>(lease.queue_id),
                   static_cast<long long>((lease.remaining.count() + 999) / 1000));
      return 1;
    }
    case Retirement::Outcome::retired:
      break;
  }
  std::printf(
      "retired group \"%s\" (types %s): %lld message_queue row(s) that only it still owed "
      "removed; %lld dead letter(s) of it kept in runner_dead_letters\n",
      name.c_str(), quoted_list(r.types).c_str(), static_cast<long long>(r.removed),
      static_cast<long long>(r.dead_letters));
  for (const auto& [type, rows] : r.unconsumed) {
    std::printf(
        "warning: no group consumes type \"%s\" any more: its %lld row(s) in message_queue, and "
        "any new one, wait for a plain consumer or a group registered for it\n",
        type.c_str(), static_cast<long long>(rows));
  }
  return 0;
}

}  // namespace relay::runner

#include "relay/status/console.h"

#include <map>

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "relay/capture/log_files.h"
#include "relay/store/rows.h"

namespace relay::status {
namespace {

namespace v1 = relaymesh::v1;

StateDisk state_disk(const std::string& dir) {
  StateDisk disk;
  if (dir.empty()) return disk;
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) {
    disk.error = std::strerror(errno);
    return disk;
  }
  disk.known = true;
  // f_bavail, not f_bfree: what an unprivileged relayd may still use.
  disk.free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
  disk.size_bytes = static_cast<std::uint64_t>(fs.f_blocks) * fs.f_frsize;
  return disk;
}

/// The spool's duress alarms the database's view does not list yet: those
/// accepted while it was down, not drained into it yet, or drained after
/// the view was read.
std::vector<store::ConsoleView::Event> spooled_duress(const Snapshot& s) {
  std::vector<store::ConsoleView::Event> out;
  if (!s.daemon) return out;
  std::vector<const v1::Event*> events;
  for (const auto& e : s.daemon->spooled) events.push_back(&e);
  for (const auto& d : s.daemon->drained) {
    if (d.unix_ms >= s.database.view_began_unix_ms) events.push_back(&d.event);
  }
  // Escalations spool too (the origin's rounds while its database is down):
  // the page says how far an alarm went, as the database's view would.
  std::map<std::string, std::pair<std::uint32_t, std::uint32_t>> rounds;  // id -> round, max
  for (const auto* event : events) {
    if (event->kind() != v1::KIND_ESCALATION || event->references_size() != 1) continue;
    const auto& r = event->references(0);
    auto& [round, most] = rounds[r.origin() + ":" + std::to_string(r.seq())];
    if (event->escalation_round() > round) {
      round = event->escalation_round();
      most = event->escalation_max();
    }
  }
  for (const auto* event : events) {
    const v1::Event& e = *event;
    if (e.kind() != v1::KIND_DURESS) continue;  // an acknowledgement spools too
    store::ConsoleView::Event v;
    v.origin = e.origin();
    v.seq = e.seq();
    v.id = v.origin + ":" + std::to_string(v.seq);
    const auto* view = s.database.view ? &*s.database.view : nullptr;
    if (view != nullptr && std::any_of(view->open_duress.begin(), view->open_duress.end(),
                                       [&](const auto& listed) { return listed.id == v.id; }))
      continue;
    v.kind = store::kind_name(e.kind());
    v.priority = store::priority_name(e.priority());
    v.title = e.title();
    v.location = e.location();
    v.sender = e.sender();
    v.exercise = e.exercise();
    v.created_unix_ms = e.created_unix_ms();
    v.targets.assign(e.targets().begin(), e.targets().end());
    v.state = "open";  // what answers it is not known here before the database has it
    if (auto it = rounds.find(v.id); it != rounds.end()) {
      v.escalations = it->second.first;
      v.escalation_max = it->second.second;
    }
    out.insert(out.begin(), std::move(v));  // newest first, as the database lists them
  }
  return out;
}

}  // namespace

Console::Console(ProcessInfo process, net::Health& health, const DatabaseWatch& database,
                 capture::CaptureState capture)
    : process_(std::move(process)),
      health_(health),
      database_(database),
      capture_(std::move(capture)) {}

void Console::set_daemon(DaemonFetch fetch, std::string missing_reason) {
  std::lock_guard lock(mutex_);
  fetch_ = std::move(fetch);
  missing_ = std::move(missing_reason);
}

void Console::set_no_daemon(std::string reason) {
  set_daemon({}, std::move(reason));
}

Snapshot Console::snapshot(bool with_logs) const {
  Snapshot s;
  s.process = process_;
  DaemonFetch fetch;
  {
    std::lock_guard lock(mutex_);
    fetch = fetch_;
    s.daemon_missing = missing_;
  }
  if (fetch) {
    s.daemon = fetch();
    if (!s.daemon) s.daemon_missing = "the network thread did not answer within 2 s";
  }
  s.health = health_.parts();
  s.database = database_.state();
  s.spooled_duress = spooled_duress(s);
  s.state_disk = state_disk(process_.state_dir);
  s.logs.captured = capture_.active;
  s.logs.why_not = capture_.why_not;
  s.logs.dir = capture_.dir.string();
  if (with_logs && capture_.active) {
    s.logs.stdout_lines = capture::read_tail(capture_.dir, capture::Stream::out);
    s.logs.stderr_lines = capture::read_tail(capture_.dir, capture::Stream::err);
  }
  s.now_unix_ms = net::unix_ms_now();
  return s;
}

}  // namespace relay::status

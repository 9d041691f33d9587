#include "relay/net/control.h"

#include <grp.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>

#include <charconv>
#include <vector>

namespace relay::net {
namespace {

constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);
// A request is one short JSON line; anything longer is refused.
constexpr std::size_t kMaxRequest = 8192;
constexpr auto kTimeout = std::chrono::seconds(5);
// Confirmations kept for the receipts verb: a few thousand (about 100 bytes
// each), far more than targets confirm while one `relayctl --wait` polls.
constexpr std::size_t kConfirmationsKept = 8192;

bool in_group(uid_t uid, gid_t primary, gid_t group) {
  if (primary == group) return true;
  const passwd* pw = ::getpwuid(uid);
  if (pw == nullptr) return false;
  int count = 64;
  std::vector<gid_t> groups(static_cast<std::size_t>(count));
  if (::getgrouplist(pw->pw_name, primary, groups.data(), &count) < 0) {
    groups.resize(static_cast<std::size_t>(count));
    if (::getgrouplist(pw->pw_name, primary, groups.data(), &count) < 0) return false;
  }
  for (int i = 0; i < count; ++i) {
    if (groups[static_cast<std::size_t>(i)] == group) return true;
  }
  return false;
}

}  // namespace

ControlSocket::ControlSocket(asio::io_context& io, std::filesystem::path path, std::string group,
                             Handler handler)
    : io_(io),
      path_(std::move(path)),
      group_(std::move(group)),
      handler_(std::move(handler)),
      acceptor_(io) {}

ControlSocket::~ControlSocket() {
  stop();
}

void ControlSocket::start() {
  if (!group_.empty()) {
    const group* g = ::getgrnam(group_.c_str());
    if (g == nullptr) {
      throw std::runtime_error("[control] group \"" + group_ + "\": no such group");
    }
    gid_ = g->gr_gid;
    has_group_ = true;
  }
  // A socket file left by a crashed relayd: ours to replace (the state
  // directory is ours alone; a second relayd on it fails on its lock).
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
  asio::error_code ec;
  acceptor_.open(asio::local::stream_protocol(), ec);
  if (!ec) acceptor_.bind(asio::local::stream_protocol::endpoint(path_.string()), ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw std::runtime_error("control socket " + path_.string() +
                             ": cannot listen: " + ec.message());
  }
  if (::chmod(path_.c_str(), has_group_ ? 0660 : 0600) != 0 ||
      (has_group_ && ::chown(path_.c_str(), static_cast<uid_t>(-1), gid_) != 0)) {
    throw std::runtime_error("control socket " + path_.string() + ": cannot set its mode or group");
  }
  // The group must reach the socket: a folder of relayd's own (the state
  // directory, 0700) gets the group and search permission only (0710).
  struct stat folder {};
  const auto parent = path_.parent_path();
  if (has_group_ && ::stat(parent.c_str(), &folder) == 0 && folder.st_uid == ::geteuid() &&
      (::chown(parent.c_str(), static_cast<uid_t>(-1), gid_) != 0 ||
       ::chmod(parent.c_str(), (folder.st_mode & 07777) | 0010) != 0)) {
    throw std::runtime_error(parent.string() + ": cannot give [control] group \"" + group_ +
                             "\" access to the control socket's folder");
  }
  asio::co_spawn(io_, accept(), asio::detached);
}

void ControlSocket::stop() {
  if (stopped_) return;
  stopped_ = true;
  asio::error_code ignored;
  acceptor_.close(ignored);
}

bool ControlSocket::allowed(const Caller& caller) const {
  if (caller.uid == 0 || caller.uid == ::geteuid()) return true;
  return has_group_ && in_group(caller.uid, caller.gid, gid_);
}

asio::awaitable<void> ControlSocket::accept() {
  while (!stopped_) {
    auto [ec, socket] = co_await acceptor_.async_accept(use_tuple);
    if (stopped_ || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    asio::co_spawn(io_, serve(std::move(socket)), asio::detached);
  }
}

asio::awaitable<void> ControlSocket::serve(asio::local::stream_protocol::socket socket) {
  using namespace asio::experimental::awaitable_operators;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) co_return;
  const Caller caller{cred.pid, cred.uid, cred.gid};
  std::string line;
  std::string reply;
  if (!allowed(caller)) {
    spdlog::warn(
        "control socket: refused pid {} (uid {}): not relayd's user, root or [control] "
        "group \"{}\"",
        caller.pid, caller.uid, group_);
    reply = R"({"ok":false,"error":"not allowed: ask for membership of [control] group"})";
  } else {
    asio::steady_timer timer(io_, kTimeout);
    auto read =
        asio::async_read_until(socket, asio::dynamic_buffer(line, kMaxRequest), '\n', use_tuple);
    auto outcome = co_await (std::move(read) || timer.async_wait(use_tuple));
    if (outcome.index() != 0 || std::get<0>(std::get<0>(outcome))) {
      co_return;  // timed out, too long, or gone: no answer
    }
    try {
      reply = handler_(line.substr(0, line.find('\n')), caller);
    } catch (const std::exception& e) {
      // A field of the wrong type ({"verb": 1}) throws in the JSON library:
      // the caller gets a refusal, and the socket goes on serving others.
      reply = nlohmann::json{{"ok", false}, {"error", std::string("bad request: ") + e.what()}}
                  .dump();
    }
  }
  reply.push_back('\n');
  co_await asio::async_write(socket, asio::buffer(reply), use_tuple);
}

void Confirmations::note(const relaymesh::v1::Receipts& receipts) {
  if (receipts.origin() != self_) return;  // passed on through this node
  for (const auto& delivery : receipts.deliveries()) {
    auto key = std::pair(delivery.seq(), receipts.target());
    const auto [it, added] = by_seq_target_.try_emplace(
        key, Confirmed{delivery.delivered_unix_ms(), static_cast<int>(delivery.outcome())});
    if (!added) continue;
    order_.push_back(std::move(key));
    if (order_.size() > kConfirmationsKept) {
      by_seq_target_.erase(order_.front());
      order_.pop_front();
    }
  }
}

std::optional<std::string> Confirmations::answer(const std::string& request) const {
  using Json = nlohmann::ordered_json;
  const Json r = Json::parse(request, nullptr, false);
  if (!r.is_object() || r.value("verb", "") != "receipts") return std::nullopt;
  const std::string id = r.value("id", "");
  const auto colon = id.rfind(':');
  std::uint64_t seq = 0;
  const char* end = id.data() + id.size();
  if (colon == std::string::npos ||
      std::from_chars(id.data() + colon + 1, end, seq).ptr != end || seq == 0) {
    return Json{{"ok", false}, {"error", "id: expected \"origin:seq\""}}.dump();
  }
  if (id.substr(0, colon) != self_) {
    return Json{{"ok", false},
                {"error", "receipts of " + id + " are kept at its origin, " + id.substr(0, colon)}}
        .dump();
  }
  Json confirmed = Json::object();
  for (auto it = by_seq_target_.lower_bound({seq, ""});
       it != by_seq_target_.end() && it->first.first == seq; ++it) {
    confirmed[it->first.second] = {{"delivered_unix_ms", it->second.delivered_unix_ms},
                                   {"outcome", it->second.outcome}};
  }
  return Json{{"ok", true}, {"id", id}, {"confirmed", confirmed}}.dump();
}

}  // namespace relay::net

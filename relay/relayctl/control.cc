// relayctl's side of relayd's control socket ([control] socket).
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstring>

#include "relay/relayctl/relayctl.h"

namespace relay::ctl {

std::optional<Json> control_request(const Config& config, const Json& request,
                                    std::chrono::milliseconds timeout, std::string* why,
                                    bool* delivered) {
  if (delivered != nullptr) *delivered = false;
  auto fail = [&](const std::string& reason) -> std::optional<Json> {
    if (why != nullptr) *why = reason;
    return std::nullopt;
  };
  const std::string path = config.control.socket.string();
  sockaddr_un address{};
  if (path.size() >= sizeof address.sun_path) return fail(path + ": path too long");
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    return fail(path + ": " + std::strerror(errno));
  }
  const std::string line = request.dump() + "\n";
  if (::send(fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    return fail(path + ": " + std::strerror(errno));
  }
  if (delivered != nullptr) *delivered = true;
  std::string reply;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (reply.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return fail(path + ": no answer within " + std::to_string(timeout.count()) + " ms");
    }
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return fail(path + ": closed without an answer");
    reply.append(buffer, static_cast<std::size_t>(n));
  }
  try {
    return Json::parse(reply.substr(0, reply.find('\n')));
  } catch (const Json::exception&) {
    return fail(path + ": an answer that is not JSON");
  }
}

int reload(const std::string& file, bool json) {
  // relayd reads the file itself; what relayctl needs of it is where the
  // control socket is, even in a file relayd will refuse: relayd then
  // records the refusal on its status page, and the answer says why.
  std::vector<ConfigIssue> issues;
  const Config config = read_config(file, issues);
  if (config.control.socket.empty()) throw ConfigError(std::move(issues));
  std::string why;
  const auto answer = control_request(config, {{"verb", "reload"}}, std::chrono::seconds(15), &why);
  if (!answer) {
    if (!issues.empty()) throw ConfigError(std::move(issues));
    throw Failure(kFailure, "relayd does not answer on its control socket: " + why +
                                " (is it running for " + config.node.id + "?)");
  }
  if (!answer->value("ok", false)) {
    throw Failure(kUsage, "relayd refused the reload and keeps its running configuration: " +
                              answer->value("error", "no reason given"));
  }
  const std::string message = answer->value("message", "reloaded");
  if (json) {
    print_json({{"ok", true}, {"message", message}});
  } else {
    std::printf("%s\n", message.c_str());
  }
  return kOk;
}

}  // namespace relay::ctl

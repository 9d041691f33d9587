#include "common/bind_check.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace relay {

int try_bind(const Endpoint& ep, int type) {
  sockaddr_storage address{};
  socklen_t length = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&address);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, ep.host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(ep.port);
    length = sizeof *v4;
  } else if (inet_pton(AF_INET6, ep.host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(ep.port);
    length = sizeof *v6;
  } else {
    return EINVAL;
  }
  const int fd = ::socket(address.ss_family, type | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  // As relayd's listener does: a port left in TIME_WAIT is free.
  const int on = 1;
  if (type == SOCK_STREAM) ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  const int rc = ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

}  // namespace relay

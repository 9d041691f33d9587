#include "common/failpoint.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>

namespace relay {

void failpoint(std::string_view name) {
  static const char* armed = std::getenv("RELAY_FAILPOINT");
  if (armed == nullptr || name != armed) return;
  std::fprintf(stderr, "failpoint %s: killing this process (RELAY_FAILPOINT)\n", armed);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

}  // namespace relay

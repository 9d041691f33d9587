// A stand-in for a third-party library that writes to the process's stderr
// and stdout by itself, bypassing relayd's logger: preloaded into relayd by
// console_test.sh, it writes one line to each a few seconds after start
// (once the output capture is in place), from a thread of its own.
#include <pthread.h>
#include <unistd.h>

#include <cstdio>

namespace {

void* shout(void*) {
  ::sleep(3);
  std::fprintf(stderr, "libshout: a line a library wrote to stderr\n");
  std::fprintf(stdout, "libshout: a line a library wrote to stdout\n");
  std::fflush(stdout);
  return nullptr;
}

__attribute__((constructor)) void start() {
  pthread_t thread;
  if (::pthread_create(&thread, nullptr, shout, nullptr) == 0) ::pthread_detach(thread);
}

}  // namespace

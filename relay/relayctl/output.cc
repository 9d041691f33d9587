#include "relay/relayctl/output.h"

#include <cstdio>

namespace relay::ctl {

void print_json(const Json& doc) {
  // Invalid UTF-8 from a stored title is replaced, never an exception.
  const std::string text = doc.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

}  // namespace relay::ctl

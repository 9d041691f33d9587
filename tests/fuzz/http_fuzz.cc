// libFuzzer target: everything a client can send relayd's and relay-runner's
// status pages before a handler runs (relay/net/http_server.h). The server
// reads up to the blank line, at most max_head_bytes, then parses that head;
// the first byte picks that framing or hands the parser the raw bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>

#include "relay/net/http_server.h"

namespace {

bool refused_with_a_known_status(int status) {
  return status == 400 || status == 405 || status == 413 || status == 505;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view head(reinterpret_cast<const char*>(data + 1), size - 1);
  if (data[0] % 2 == 0) {
    // As HttpServer::serve hands it over: through the first blank line.
    const auto end = head.find("\r\n\r\n");
    if (end == std::string_view::npos || end + 4 > relay::net::HttpLimits{}.max_head_bytes)
      return 0;
    head = head.substr(0, end + 4);
  }
  const auto parsed = relay::net::parse_request_head(head);
  if (const int* status = std::get_if<int>(&parsed)) {
    if (!refused_with_a_known_status(*status)) std::abort();
    return 0;
  }
  // What passes is what the handlers may assume (http_server.h, HttpRequest).
  const auto& request = std::get<relay::net::HttpRequest>(parsed);
  if (request.method != "GET" && request.method != "HEAD") std::abort();
  if (request.headers.contains("transfer-encoding")) std::abort();
  if (auto it = request.headers.find("content-length");
      it != request.headers.end() && it->second != "0")
    std::abort();
  for (const auto& [name, value] : request.headers) {
    for (char c : name)
      if (c >= 'A' && c <= 'Z') std::abort();  // names are lower-cased
  }
  return 0;
}

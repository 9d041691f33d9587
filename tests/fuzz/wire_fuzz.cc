// libFuzzer target: everything a hostile network can hand Codec::open.
// The first byte picks the path: raw bytes as a datagram (framing, sizes,
// tags, hellos and their credentials), the rest sealed with a live pairwise
// key so that the body parser and the signature checks see attacker-shaped
// plaintext, or the rest as a hello body sealed with the mesh key, as from
// a mesh-key holder.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <google/protobuf/stubs/logging.h>

#include "relay/wire/datagram.h"
#include "tests/wire/mesh_fixture.h"
#include "tests/wire/raw_seal.h"

namespace {

struct Target {
  // Protobuf's complaints about invalid UTF-8 would drown libFuzzer's output.
  Target() { google::protobuf::SetLogHandler(nullptr); }
  relay::test::MeshFixture mesh;
  std::unique_ptr<relay::wire::Codec> hq = mesh.codec("hq");
  std::unique_ptr<relay::wire::Codec> north = [this] {
    auto codec = mesh.codec("clinic-north");
    relay::test::MeshFixture::connect(*hq, *codec);
    return codec;
  }();
  std::uint64_t counter = std::uint64_t{1} << 40;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Target target;
  if (size == 0) return 0;
  relay::wire::Opened opened;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::string datagram;
  if (data[0] % 3 == 1) {
    datagram =
        relay::test::raw_seal(target.mesh.ring, *target.hq, *target.north, ++target.counter, rest);
  } else if (data[0] % 3 == 2) {
    datagram = relay::test::raw_seal_hello(target.mesh.ring, "hq", 7, 8, ++target.counter, rest);
  } else {
    datagram.assign(rest);
  }
  const auto reason = target.north->open(relay::crypto::as_bytes(datagram), opened);
  // Nothing but a key holder's validly signed event may pass with events.
  if (reason == relay::wire::Reject::none && !opened.events.empty()) std::abort();
  return 0;
}

#include <doctest/doctest.h>
#include <google/protobuf/stubs/logging.h>

#include <random>
#include <string>

#include "relay/wire/datagram.h"
#include "tests/wire/mesh_fixture.h"
#include "tests/wire/raw_seal.h"

using namespace relay;
using relay::test::MeshFixture;
using wire::Reject;
namespace v1 = relaymesh::v1;

TEST_CASE("200,000 random and mutated datagrams give only counted rejections") {
  // Authenticated noise makes protobuf complain about UTF-8 on stderr; the
  // complaints are expected here, and counted below as malformed bodies.
  google::protobuf::SetLogHandler(nullptr);
  MeshFixture mesh;
  auto hq = mesh.codec("hq");
  auto north = mesh.codec("clinic-north");
  MeshFixture::connect(*hq, *north);
  const std::uint64_t accepted_before = north->accepted();  // the handshake's
  std::mt19937_64 rng(20261126);
  auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  auto random_bytes = [&](std::size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    return s;
  };

  // Genuine datagrams to mutate: events, acks, probes.
  std::vector<std::string> genuine;
  for (std::uint64_t seq = 1; seq <= 20; ++seq) {
    genuine.push_back(
        MeshFixture::seal(*hq, "clinic-north", mesh.events_body({mesh.event("hq", seq)})));
    v1::Datagram acks;
    auto* a = acks.mutable_acks()->add_origins();
    a->set_origin("clinic-south");
    a->set_through(seq);
    genuine.push_back(MeshFixture::seal(*hq, "clinic-north", acks));
  }

  constexpr int kRounds = 200'000;
  int accepted_authenticated_garbage = 0;
  wire::Opened opened;
  std::uint64_t counter = std::uint64_t{1} << 40;  // beyond hq's own counters
  std::uint64_t sent = 0;
  for (int i = 0; i < kRounds; ++i) {
    std::string d;
    bool authentic = false;
    switch (i % 5) {
      case 0:  // pure noise of any length, some too long
        d = random_bytes(below(wire::kMaxDatagram + 200));
        break;
      case 1: {  // noise behind a plausible header
        d = genuine[below(genuine.size())];
        const std::size_t keep = 30 + below(20);
        d = d.substr(0, keep) + random_bytes(below(wire::kMaxDatagram - keep));
        break;
      }
      case 2: {  // a few bytes of a genuine datagram changed
        const std::string& original = genuine[below(genuine.size())];
        d = original;
        for (std::size_t n = 1 + below(4); n > 0; --n) {
          d[below(d.size())] ^= static_cast<char>(1 + below(255));
        }
        if (d == original) continue;  // two flips of one byte cancelled out
        break;
      }
      case 3: {  // genuine, truncated or extended
        d = genuine[below(genuine.size())];
        d = below(2) == 0 ? d.substr(0, below(d.size())) : d + random_bytes(1 + below(64));
        break;
      }
      case 4:  // authenticated noise: only a key holder can send it, still no crash
        d = test::raw_seal(mesh.ring, *hq, *north, ++counter, random_bytes(below(900)));
        authentic = true;
        break;
    }
    ++sent;
    const Reject r = north->open(crypto::as_bytes(d), opened);
    if (r == Reject::none) {
      // Random bytes may happen to parse as an ack or a probe, never as a signed event.
      REQUIRE(authentic);
      REQUIRE(opened.events.empty());
      ++accepted_authenticated_garbage;
    }
  }

  std::uint64_t rejected = 0;
  for (std::size_t r = 1; r < wire::kRejectReasons; ++r) {
    rejected += north->rejected(static_cast<Reject>(r));
    MESSAGE(wire::to_string(static_cast<Reject>(r)), ": ", north->rejected(static_cast<Reject>(r)));
  }
  CHECK(rejected + north->accepted() - accepted_before == sent);
  CHECK(sent > kRounds - 100);
  CHECK(north->accepted() - accepted_before ==
        static_cast<std::uint64_t>(accepted_authenticated_garbage));
  CHECK(rejected >= kRounds * 4 / 5);
  CHECK(north->rejected(Reject::bad_tag) > 0);
  CHECK(north->rejected(Reject::bad_size) > 0);
  CHECK(north->rejected(Reject::malformed_body) > 0);
  // After the storm, the session still carries genuine traffic (sealed by
  // hand: the garbage moved the window past hq's own counters).
  CHECK(north->open(crypto::as_bytes(test::raw_seal(
                        mesh.ring, *hq, *north, ++counter,
                        mesh.events_body({mesh.event("hq", 99)}).SerializeAsString())),
                    opened) == Reject::none);
  CHECK(opened.events.size() == 1);
}

// Prints, as hex, a duress event of ORIGIN under SEQ signed with ORIGIN's
// real identity key: what an origin whose numbering was rewound would sign
// for a seq the mesh already holds with other content. The lifecycle test
// puts it into the origin's own log to force a conflict by hand.
//   reuse_seq IDENTITY_KEY ORIGIN SEQ TITLE
#include <chrono>
#include <cstdio>
#include <string>

#include "common/keys.h"
#include "relay/store/rows.h"
#include "relay/wire/signing.h"

using namespace relay;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: reuse_seq IDENTITY_KEY ORIGIN SEQ TITLE\n");
    return 2;
  }
  const auto key = load_identity_key(argv[1]);
  relaymesh::v1::Event e;
  e.set_origin(argv[2]);
  e.set_seq(std::stoull(argv[3]));
  e.set_kind(relaymesh::v1::KIND_DURESS);
  e.set_priority(relaymesh::v1::PRIORITY_DURESS);
  e.add_targets("all");
  e.set_title(argv[4]);
  e.set_created_unix_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
  std::printf("%s\n", store::to_hex(wire::sign_event(e, key).SerializeAsString()).c_str());
  return 0;
}

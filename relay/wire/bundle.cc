#include "relay/wire/bundle.h"

#include "relay/wire/datagram.h"

namespace relay::wire {
namespace {

// Domain separation inside the tree: a leaf, an inner node and an empty
// leaf (padding to a power of two) can never hash alike.
constexpr std::uint8_t kLeaf = 0;
constexpr std::uint8_t kNode = 1;
constexpr std::uint8_t kEmpty = 2;
constexpr std::string_view kBundleTag = "relaymesh v1 bundle";

crypto::Digest leaf(std::string_view event_bytes) {
  return crypto::sha256({crypto::ByteView(&kLeaf, 1), crypto::as_bytes(event_bytes)});
}

crypto::Digest node(const crypto::Digest& left, const crypto::Digest& right) {
  return crypto::sha256({crypto::ByteView(&kNode, 1), left, right});
}

}  // namespace

std::string bundle_signing_message(const crypto::Digest& root, std::size_t depth) {
  std::string message(kBundleTag);
  message.push_back('\0');
  message.push_back(static_cast<char>(depth));
  message.append(reinterpret_cast<const char*>(root.data()), root.size());
  return message;
}

std::vector<v1::SignedEvent> sign_bundle(const std::vector<v1::Event>& events,
                                         const crypto::SigningKey& key) {
  std::vector<v1::SignedEvent> out;
  if (events.size() <= 1 || events.size() > kMaxBundle) {
    for (const auto& e : events) out.push_back(sign_event(e, key));
    return out;
  }
  std::size_t depth = 0;
  while ((std::size_t{1} << depth) < events.size()) ++depth;
  const std::size_t width = std::size_t{1} << depth;
  // levels[0] are the leaves; each next level halves, up to the root.
  std::vector<std::vector<crypto::Digest>> levels(1);
  out.resize(events.size());
  for (std::size_t i = 0; i < width; ++i) {
    if (i < events.size()) {
      events[i].SerializeToString(out[i].mutable_event());
      levels[0].push_back(leaf(out[i].event()));
    } else {
      levels[0].push_back(crypto::sha256({crypto::ByteView(&kEmpty, 1)}));
    }
  }
  while (levels.back().size() > 1) {
    const auto& below = levels.back();
    std::vector<crypto::Digest> above;
    for (std::size_t i = 0; i < below.size(); i += 2) above.push_back(node(below[i], below[i + 1]));
    levels.push_back(std::move(above));
  }
  const auto signature =
      key.sign(crypto::as_bytes(bundle_signing_message(levels.back()[0], depth)));
  for (std::size_t i = 0; i < events.size(); ++i) {
    out[i].set_signature(signature.data(), signature.size());
    out[i].set_index(static_cast<std::uint32_t>(i));
    for (std::size_t level = 0, at = i; level < depth; ++level, at /= 2) {
      const crypto::Digest& sibling = levels[level][at ^ 1];
      out[i].add_path(reinterpret_cast<const char*>(sibling.data()), sibling.size());
    }
  }
  return out;
}

std::optional<crypto::Digest> bundle_root(const v1::SignedEvent& signed_event) {
  const auto depth = static_cast<std::size_t>(signed_event.path_size());
  if (depth == 0 || depth > kMaxBundleDepth || signed_event.index() >= (1u << depth))
    return std::nullopt;
  crypto::Digest at = leaf(signed_event.event());
  for (std::size_t level = 0; level < depth; ++level) {
    const std::string& sibling_bytes = signed_event.path(static_cast<int>(level));
    if (sibling_bytes.size() != at.size()) return std::nullopt;
    crypto::Digest sibling;
    std::copy(sibling_bytes.begin(), sibling_bytes.end(), sibling.begin());
    at = (signed_event.index() >> level) & 1 ? node(sibling, at) : node(at, sibling);
  }
  return at;
}

bool verify_signed_event(const v1::SignedEvent& signed_event, const crypto::VerifyKey& key) {
  if (signed_event.path_size() == 0) {
    return key.verify(crypto::as_bytes(event_signing_message(signed_event.event())),
                      crypto::as_bytes(signed_event.signature()));
  }
  const auto root = bundle_root(signed_event);
  return root &&
         key.verify(crypto::as_bytes(bundle_signing_message(*root, signed_event.path_size())),
                    crypto::as_bytes(signed_event.signature()));
}

}  // namespace relay::wire

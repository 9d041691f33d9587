#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/crypto.h"
#include "proto/relaymesh.pb.h"

namespace relay::wire {

namespace v1 = relaymesh::v1;

/// Events signed together under one Ed25519 signature: a receiver checks
/// the signature once per bundle (62 us) instead of once per event, and
/// each event's Merkle path (SHA-256, a few us). docs/design.md: amortize.
inline constexpr std::size_t kMaxBundle = 64;
inline constexpr std::size_t kMaxBundleDepth = 6;  // log2(kMaxBundle)
/// What a bundle proof adds to a SignedEvent at most: the path (each hash
/// with its framing) and the index.
inline constexpr std::size_t kBundleProofBytes = kMaxBundleDepth * (2 + 32) + 6;

/// Signs up to kMaxBundle events as one bundle; the results are in the
/// order of `events`. A single event is signed on its own.
std::vector<v1::SignedEvent> sign_bundle(const std::vector<v1::Event>& events,
                                         const crypto::SigningKey& key);

/// The Merkle root that a bundled event's path leads to; nullopt if the
/// path is malformed (too long, a hash of the wrong size, index out of range).
std::optional<crypto::Digest> bundle_root(const v1::SignedEvent& signed_event);

/// Checks a signed event, alone or bundled, without any cache (for tools
/// and tests; the Codec remembers checked roots).
bool verify_signed_event(const v1::SignedEvent& signed_event, const crypto::VerifyKey& key);

/// What the origin signs for a bundle: a domain tag, the depth, the root.
std::string bundle_signing_message(const crypto::Digest& root, std::size_t depth);

}  // namespace relay::wire

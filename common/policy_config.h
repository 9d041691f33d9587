#pragma once

// The mesh policy file ([mesh] policy, docs/config.md "Policy"): read apart
// from config.cc, as [[escalation]] and [[drill]] are, and its digest, which
// hellos carry so that two sites with different policies both see drift.

#include <string>

#include "common/config.h"
#include "common/crypto.h"
#include "common/toml_section.h"

namespace relay {

/// Reads the policy file `file` (`[mesh] policy`, resolved; empty: none, the
/// empty policy) into config.policy and config.policy_digest. A file that
/// cannot be read is reported against `mesh`'s policy key, naming the path;
/// problems inside it against the file, its line and key. The node and peers
/// must be read already (targets are checked against them).
void read_policy(TomlSection& mesh, const std::filesystem::path& file, Config& config);

/// SHA-256 of the policy's canonical form: one line per rule in file order
/// (the first rule that matches decides), its name, then its `by` and its
/// `of` targets sorted. Comments, whitespace and the order of targets within
/// a list do not change it; anything that changes what the rules allow does.
crypto::Digest policy_digest(const mesh::Policy& policy);

/// The digest in lowercase hex, as Config::policy_digest holds it.
std::string digest_hex(const crypto::Digest& digest);

}  // namespace relay

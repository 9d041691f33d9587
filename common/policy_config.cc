#include "common/policy_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <set>

namespace relay {
namespace {

/// A rule's targets as the digest sees them: a set, not a list.
std::string canonical_targets(std::vector<std::string> targets) {
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  return fmt::format("{}", fmt::join(targets, ","));
}

void read_clear_rules(TomlSection& top, Config& config) {
  const toml::array* rules = top.tables("clear");
  if (rules == nullptr) return;
  std::set<std::string> names;
  for (std::size_t i = 0; i < rules->size(); ++i) {
    TomlSection section(*rules->get(i)->as_table(), top.file(),
                        "clear[" + std::to_string(i + 1) + "]", top.issues(), {"name", "by", "of"});
    mesh::ClearRule rule;
    // Refusals and receipts name the rule that decided, so each name is one rule.
    rule.name = "clear-" + std::to_string(i + 1);
    if (auto name = section.string("name", false)) {
      if (!valid_node_id(*name)) {
        section.error("name", "\"" + *name + "\" is not 1 to 32 of a-z, 0-9 and -");
      }
      rule.name = *name;
    }
    if (!names.insert(rule.name).second) {
      section.error("name",
                    "\"" + rule.name + "\" names another [[clear]] rule too: names are unique");
    }
    rule.by = read_targets(section, "by", config, "the sites that may clear", "[\"hq\"]");
    rule.of = section.has("of") ? read_targets(section, "of", config,
                                               "the sites whose events they may clear", "[\"all\"]")
                                : std::vector<std::string>{"all"};
    config.policy.clear.push_back(std::move(rule));
  }
}

}  // namespace

crypto::Digest policy_digest(const mesh::Policy& policy) {
  // A line per rule; names and targets hold no space, comma or newline
  // (a-z, 0-9, '-' and "group:"), so the form cannot be read two ways.
  std::string form = "relaymesh policy 1\n";
  for (const auto& rule : policy.clear) {
    form += "clear " + rule.name + " by " + canonical_targets(rule.by) + " of " +
            canonical_targets(rule.of) + "\n";
  }
  return crypto::sha256({crypto::as_bytes(form)});
}

std::string digest_hex(const crypto::Digest& digest) {
  return fmt::format("{:02x}", fmt::join(digest, ""));
}

void read_policy(TomlSection& mesh, const std::filesystem::path& file, Config& config) {
  config.policy = {};
  if (!file.empty()) {
    std::vector<ConfigIssue> read_issues;
    if (auto doc = parse_toml_file(file, read_issues)) {
      TomlSection top(*doc, file.string(), "", mesh.issues(), {"clear"});
      read_clear_rules(top, config);
    }
    for (auto& issue : read_issues) {
      // Not valid TOML: the file and its line. Not readable at all: the
      // config line that names it, and the path.
      if (issue.line > 0) {
        mesh.issues().push_back(std::move(issue));
      } else {
        mesh.error("policy", issue.to_string());
      }
    }
  }
  config.policy_digest = digest_hex(policy_digest(config.policy));
}

}  // namespace relay

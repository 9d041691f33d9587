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

/// Event types are free text: each is written with its length, so that no
/// comma or space inside one can make the form read two ways.
std::string canonical_types(std::vector<std::string> types) {
  std::sort(types.begin(), types.end());
  types.erase(std::unique(types.begin(), types.end()), types.end());
  std::string out;
  for (const auto& t : types) out += std::to_string(t.size()) + ":" + t + ";";
  return out;
}

/// A rule's name: its own, or "TABLE-N" for the Nth; refusals and receipts
/// name the rule that decided, so each name is one rule of its table.
std::string rule_name(TomlSection& section, std::string_view table, std::size_t index,
                      std::set<std::string>& names) {
  std::string name = std::string(table) + "-" + std::to_string(index + 1);
  if (auto own = section.string("name", false)) {
    if (!valid_node_id(*own)) section.error("name", "\"" + *own + "\" is not 1 to 32 of a-z, 0-9 and -");
    name = *own;
  }
  if (!names.insert(name).second) {
    section.error("name", "\"" + name + "\" names another [[" + std::string(table) +
                              "]] rule too: names are unique");
  }
  return name;
}

/// The rules of array-of-tables `table`, each read by `read` from a section
/// that takes `keys`.
template <typename Read>
void read_rules(TomlSection& top, std::string_view table, std::initializer_list<std::string_view> keys,
                Read read) {
  const toml::array* rules = top.tables(table);
  if (rules == nullptr) return;
  std::set<std::string> names;
  for (std::size_t i = 0; i < rules->size(); ++i) {
    TomlSection section(*rules->get(i)->as_table(), top.file(),
                        std::string(table) + "[" + std::to_string(i + 1) + "]", top.issues(),
                        keys);
    read(section, rule_name(section, table, i, names));
  }
}

/// A list of words from `allowed`; absent: empty (any).
std::vector<std::string> read_words(TomlSection& section, std::string_view key,
                                    const std::vector<std::string>& allowed) {
  auto words = section.strings(key);
  if (!words) return {};
  for (const auto& w : *words) {
    if (std::find(allowed.begin(), allowed.end(), w) == allowed.end()) {
      section.error(key, fmt::format("\"{}\" is not one of {}", w, fmt::join(allowed, ", ")));
    }
  }
  if (words->empty()) section.error(key, "empty: leave the key out to match any");
  return std::move(*words);
}

void read_clear_rules(TomlSection& top, Config& config) {
  read_rules(top, "clear", {"name", "by", "of"}, [&](TomlSection& section, std::string name) {
    mesh::ClearRule rule;
    rule.name = std::move(name);
    rule.by = read_targets(section, "by", config, "the sites that may clear", "[\"hq\"]");
    rule.of = section.has("of") ? read_targets(section, "of", config,
                                               "the sites whose events they may clear", "[\"all\"]")
                                : std::vector<std::string>{"all"};
    config.policy.clear.push_back(std::move(rule));
  });
}

void read_send_rules(TomlSection& top, Config& config) {
  read_rules(top, "send", {"name", "by", "kinds", "types", "priorities", "to", "allow"},
             [&](TomlSection& section, std::string name) {
               mesh::SendRule rule;
               rule.name = std::move(name);
               rule.by = section.has("by") ? read_targets(section, "by", config,
                                                          "the sites it concerns", "[\"hq\"]")
                                           : std::vector<std::string>{"all"};
               rule.kinds = read_words(section, "kinds", {"notification", "duress", "test"});
               rule.priorities =
                   read_words(section, "priorities", {"bulk", "normal", "emergency", "duress"});
               if (auto types = section.strings("types")) rule.types = std::move(*types);
               rule.allow = section.boolean("allow").value_or(true);
               if (!rule.allow && section.has("to")) {
                 section.error("to", "a rule with allow = false refuses what it matches to anyone");
               }
               rule.to = section.has("to")
                             ? read_targets(section, "to", config, "the targets it allows",
                                            "[\"origin\", \"hq\"]", {"origin"})
                             : std::vector<std::string>{"all"};
               config.policy.send.push_back(std::move(rule));
             });
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
  // After the [[clear]] lines, so that a policy without [[send]] rules keeps
  // the digest builds before them computed.
  for (const auto& rule : policy.send) {
    form += "send " + rule.name + " by " + canonical_targets(rule.by) + " kinds " +
            canonical_targets(rule.kinds) + " types " + canonical_types(rule.types) +
            " priorities " + canonical_targets(rule.priorities) +
            (rule.allow ? " to " + canonical_targets(rule.to) : " refused") + "\n";
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
      TomlSection top(*doc, file.string(), "", mesh.issues(), {"clear", "send"});
      read_clear_rules(top, config);
      read_send_rules(top, config);
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

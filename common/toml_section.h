#pragma once

#include <toml++/toml.h>

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_error.h"

namespace relay {

/// Reads one TOML table of a file, recording every problem as a ConfigIssue
/// (file, line, dotted key, what was expected) instead of stopping at the first.
class TomlSection {
 public:
  /// Checks the table against `known` keys at once: any other key is an error.
  TomlSection(const toml::table& table, std::string file, std::string path,
              std::vector<ConfigIssue>& issues, std::initializer_list<std::string_view> known);

  /// A string; nullopt (and an issue if `required`) when absent or not a string.
  std::optional<std::string> string(std::string_view key, bool required);
  /// An array of strings; nullopt when absent or wrongly typed.
  std::optional<std::vector<std::string>> strings(std::string_view key);
  /// An integer within [min, max].
  std::optional<std::int64_t> integer(std::string_view key, bool required, std::int64_t min,
                                      std::int64_t max);
  /// true or false; nullopt when absent or not a boolean.
  std::optional<bool> boolean(std::string_view key);
  /// A duration written as a string: "500ms", "90s", "5m", "1h"; must be in [min, max].
  std::optional<std::chrono::milliseconds> duration(std::string_view key,
                                                    std::chrono::milliseconds min,
                                                    std::chrono::milliseconds max);
  /// A sub-table ([node], [mesh], ...); nullptr when absent or not a table.
  const toml::table* table(std::string_view key);
  /// An array of tables ([[peer]]); nullptr when absent or not such an array.
  const toml::array* tables(std::string_view key);

  /// True if the table has `key`, of any type.
  bool has(std::string_view key) const { return table_.contains(key); }
  /// Records an issue about `key` of this table.
  void error(std::string_view key, std::string message);
  /// Dotted path of `key` inside this table, as printed in messages.
  std::string path_of(std::string_view key) const;
  const std::string& file() const { return file_; }
  std::vector<ConfigIssue>& issues() { return issues_; }

 private:
  const toml::table& table_;
  std::string file_;
  std::string path_;
  std::vector<ConfigIssue>& issues_;
};

/// Parses a TOML file; on a read or syntax error records an issue and returns nullopt.
std::optional<toml::table> parse_toml_file(const std::filesystem::path& file,
                                           std::vector<ConfigIssue>& issues);

/// Parses "500ms", "90s", "5m", "1h", "30d"; nullopt for anything else.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace relay

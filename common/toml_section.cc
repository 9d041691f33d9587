#include "common/toml_section.h"

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>

namespace relay {
namespace {

int line_of(const toml::node* node) {
  return node == nullptr ? 0 : static_cast<int>(node->source().begin.line);
}

}  // namespace

TomlSection::TomlSection(const toml::table& table, std::string file, std::string path,
                         std::vector<ConfigIssue>& issues,
                         std::initializer_list<std::string_view> known)
    : table_(table), file_(std::move(file)), path_(std::move(path)), issues_(issues) {
  for (const auto& [key, node] : table_) {
    bool found = false;
    for (auto k : known) found = found || k == key.str();
    if (found) continue;
    std::string expected;
    for (auto k : known) expected += (expected.empty() ? "" : ", ") + std::string(k);
    issues_.push_back(
        {file_, line_of(&node), path_of(key.str()), "unknown key; expected one of: " + expected});
  }
}

std::string TomlSection::path_of(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

void TomlSection::error(std::string_view key, std::string message) {
  issues_.push_back({file_, line_of(table_.get(key)), path_of(key), std::move(message)});
}

std::optional<std::string> TomlSection::string(std::string_view key, bool required) {
  const toml::node* node = table_.get(key);
  if (node == nullptr) {
    if (required) issues_.push_back({file_, line_of(&table_), path_of(key), "missing; required"});
    return std::nullopt;
  }
  if (auto s = node->value<std::string>()) return s;
  error(key, "expected a string in double quotes");
  return std::nullopt;
}

std::optional<std::vector<std::string>> TomlSection::strings(std::string_view key) {
  const toml::node* node = table_.get(key);
  if (node == nullptr) return std::nullopt;
  const toml::array* array = node->as_array();
  std::vector<std::string> out;
  if (array != nullptr) {
    for (const auto& item : *array) {
      auto s = item.value<std::string>();
      if (!s) break;
      out.push_back(*s);
    }
  }
  if (array == nullptr || out.size() != array->size()) {
    error(key, "expected an array of strings, such as [\"a\", \"b\"]");
    return std::nullopt;
  }
  return out;
}

std::optional<std::int64_t> TomlSection::integer(std::string_view key, bool required,
                                                 std::int64_t min, std::int64_t max) {
  const toml::node* node = table_.get(key);
  const std::string range = std::to_string(min) + " to " + std::to_string(max);
  if (node == nullptr) {
    if (required) {
      issues_.push_back(
          {file_, line_of(&table_), path_of(key), "missing; expected an integer " + range});
    }
    return std::nullopt;
  }
  auto v = node->value<std::int64_t>();
  if (!v || !node->is_integer() || *v < min || *v > max) {
    error(key, "expected an integer " + range);
    return std::nullopt;
  }
  return v;
}

std::optional<bool> TomlSection::boolean(std::string_view key) {
  const toml::node* node = table_.get(key);
  if (node == nullptr) return std::nullopt;
  if (node->is_boolean()) return node->value<bool>();
  error(key, "expected true or false");
  return std::nullopt;
}

std::optional<std::chrono::milliseconds> TomlSection::duration(std::string_view key,
                                                               std::chrono::milliseconds min,
                                                               std::chrono::milliseconds max) {
  const toml::node* node = table_.get(key);
  if (node == nullptr) return std::nullopt;
  const std::string expected = "expected a duration from " + std::to_string(min.count()) +
                               "ms to " + std::to_string(max.count()) +
                               "ms written as a string such as \"500ms\", \"90s\" or \"5m\"";
  auto s = node->value<std::string>();
  auto d = s ? parse_duration(*s) : std::nullopt;
  if (!d || *d < min || *d > max) {
    error(key, expected);
    return std::nullopt;
  }
  return d;
}

const toml::table* TomlSection::table(std::string_view key) {
  const toml::node* node = table_.get(key);
  if (node == nullptr) return nullptr;
  if (const toml::table* t = node->as_table()) return t;
  error(key, "expected a table, written [" + std::string(key) + "]");
  return nullptr;
}

const toml::array* TomlSection::tables(std::string_view key) {
  const toml::node* node = table_.get(key);
  if (node == nullptr) return nullptr;
  const toml::array* array = node->as_array();
  if (array != nullptr && array->is_array_of_tables()) return array;
  error(key, "expected one or more tables, each written [[" + std::string(key) + "]]");
  return nullptr;
}

std::optional<toml::table> parse_toml_file(const std::filesystem::path& file,
                                           std::vector<ConfigIssue>& issues) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    issues.push_back(
        {file.string(), 0, "", "cannot read the file: " + std::string(std::strerror(errno))});
    return std::nullopt;
  }
  std::ostringstream text;
  text << in.rdbuf();
  try {
    return toml::parse(text.str(), file.string());
  } catch (const toml::parse_error& e) {
    issues.push_back({file.string(), static_cast<int>(e.source().begin.line), "",
                      "not valid TOML: " + std::string(e.description())});
    return std::nullopt;
  }
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  std::int64_t n = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, n);
  if (ec != std::errc{} || ptr == text.data() || n < 0) return std::nullopt;
  const std::string_view unit(ptr, static_cast<std::size_t>(end - ptr));
  // Cap before multiplying so that a huge number cannot overflow.
  if (n > 1'000'000'000) return std::nullopt;
  if (unit == "ms") return std::chrono::milliseconds{n};
  if (unit == "s") return std::chrono::seconds{n};
  if (unit == "m") return std::chrono::minutes{n};
  if (unit == "h") return std::chrono::hours{n};
  if (unit == "d") return std::chrono::hours{24 * n};
  return std::nullopt;
}

}  // namespace relay

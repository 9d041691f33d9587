#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace relay {

/// One problem in a configuration or key file: where, which key, what was expected.
struct ConfigIssue {
  std::string file;
  int line = 0;     // 0 when the problem has no single line (a missing key)
  std::string key;  // dotted path such as "peer[2].public_key"; empty for the whole file
  std::string message;

  /// "FILE:LINE: KEY: message", leaving out the parts that are empty.
  std::string to_string() const;
};

/// Thrown at startup when configuration or key files are unusable. Carries
/// every problem found, not only the first, so one run shows them all.
class ConfigError : public std::runtime_error {
 public:
  explicit ConfigError(std::vector<ConfigIssue> issues);
  const std::vector<ConfigIssue>& issues() const { return issues_; }

 private:
  std::vector<ConfigIssue> issues_;
};

}  // namespace relay

#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "tests/support/temp_dir.h"

namespace relay::test {

/// A real PostgreSQL for one test: an ephemeral cluster in a temp dir,
/// reachable on a unix socket there only, removed at scope exit. Started by
/// scripts/pg-ephemeral (as the postgres user when running as root).
class PgCluster {
 public:
  PgCluster() : dir_(std::filesystem::temp_directory_path() / ("relaymesh-pg-" + random_name())) {
    run("start");
  }
  ~PgCluster() {
    // Nothing to do if stopping fails: the folder is in the temp dir.
    (void)!std::system((script() + " stop " + dir_.string() + " >/dev/null 2>&1").c_str());
  }
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  /// A libpq connection string for the cluster's postgres database.
  std::string dsn() const { return "host=" + dir_.string() + " user=postgres dbname=postgres"; }
  /// Restarts the server: every connection breaks.
  void restart() { run("restart"); }

 private:
  static std::string script() { return std::string(RELAY_SOURCE_DIR) + "/scripts/pg-ephemeral"; }
  static std::string random_name() {
    std::string name;
    for (int i = 0; i < 10; ++i) name += static_cast<char>('a' + std::rand() % 26);
    return name + std::to_string(::getpid());
  }
  void run(const std::string& verb) {
    const std::string command = script() + " " + verb + " " + dir_.string() + " >/dev/null";
    if (std::system(command.c_str()) != 0)
      throw std::runtime_error("pg-ephemeral " + verb + " failed");
  }

  std::filesystem::path dir_;
};

}  // namespace relay::test

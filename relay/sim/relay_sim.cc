// relay-sim: runs the mesh core on a simulated network and prints what it
// cost and whether every property held. Deterministic: a seed replays a run.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "relay/sim/cluster.h"

namespace {

using namespace relay::sim;
using Clock = std::chrono::steady_clock;

double ms(relay::mesh::Duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"relay-sim: the relaymesh protocol core on a simulated network"};
  std::size_t nodes = 10;
  double loss = 0;
  std::size_t events = 100;
  std::uint64_t seed = 1;
  double rate = 50;
  double idle_seconds = 30;
  double limit_seconds = 600;
  app.add_option("--nodes", nodes, "number of nodes (hq and clinics)")->check(CLI::Range(2, 5000));
  app.add_option("--loss", loss, "datagram loss on every link, both ways, 0 to 1")
      ->check(CLI::Range(0.0, 0.95));
  app.add_option("--events", events, "events to inject, from random origins")
      ->check(CLI::Range(1, 1'000'000));
  app.add_option("--seed", seed, "seed of every random choice; the same seed replays the run");
  app.add_option("--rate", rate, "events injected per simulated second")
      ->check(CLI::Range(0.1, 100'000.0));
  app.add_option("--idle", idle_seconds, "simulated seconds of idle traffic to measure")
      ->check(CLI::Range(1.0, 3600.0));
  app.add_option("--limit", limit_seconds, "simulated seconds to wait for convergence")
      ->check(CLI::Range(1.0, 86400.0));
  CLI11_PARSE(app, argc, argv);

  const auto wall_start = Clock::now();
  SimConfig config;
  config.nodes = nodes;
  config.seed = seed;
  config.link.loss = loss;
  Cluster cluster(config);
  std::fprintf(stderr, "relay-sim: %zu nodes, loss %.0f%%, %zu events, seed %llu\n", nodes,
               loss * 100, events, static_cast<unsigned long long>(seed));

  // Let liveness settle, then measure a quiet mesh.
  cluster.run_for(std::chrono::seconds(5));
  const auto idle_bytes = cluster.stats().bytes;
  const auto idle_datagrams = cluster.stats().datagrams;
  const auto idle = std::chrono::duration_cast<relay::mesh::Duration>(
      std::chrono::duration<double>(idle_seconds));
  cluster.run_for(idle);
  const double idle_bps =
      static_cast<double>(cluster.stats().bytes - idle_bytes) / idle_seconds / nodes;
  const double idle_dps =
      static_cast<double>(cluster.stats().datagrams - idle_datagrams) / idle_seconds / nodes;

  std::mt19937_64 rng(seed);
  const auto start = cluster.now();
  const auto before = cluster.stats().datagrams;
  const auto gap =
      std::chrono::duration_cast<relay::mesh::Duration>(std::chrono::duration<double>(1.0 / rate));
  for (std::size_t i = 0; i < events; ++i) {
    cluster.inject(rng() % nodes);
    cluster.run_for(gap);
    if (i % 1000 == 999) std::fprintf(stderr, "\r  injected %zu of %zu", i + 1, events);
  }
  std::fprintf(stderr, "\r  injected %zu; waiting for convergence\n", events);
  const auto limit = std::chrono::duration_cast<relay::mesh::Duration>(
      std::chrono::duration<double>(limit_seconds));
  const bool converged = cluster.run_until_converged(limit);
  const auto busy = cluster.now() - start;
  const double sent = static_cast<double>(cluster.stats().datagrams - before);
  const double idle_share = idle_dps * nodes * std::chrono::duration<double>(busy).count();

  auto times = cluster.convergence_times();
  std::sort(times.begin(), times.end());
  auto at = [&](double q) {
    return times.empty()
               ? 0.0
               : ms(times[std::min(times.size() - 1, static_cast<std::size_t>(q * times.size()))]);
  };
  const double wall = std::chrono::duration<double>(Clock::now() - wall_start).count();

  std::printf("nodes %zu  loss %.0f%%  events %zu  seed %llu\n", nodes, loss * 100, events,
              static_cast<unsigned long long>(seed));
  std::printf(
      "convergence (simulated): p50 %.1f ms  p99 %.1f ms  max %.1f ms  (%zu of %zu events)\n",
      at(0.5), at(0.99), times.empty() ? 0.0 : ms(times.back()), times.size(), events);
  std::printf("datagrams per event per node: %.2f (%.2f above the idle traffic)\n",
              sent / events / nodes, (sent - idle_share) / events / nodes);
  std::printf("idle per node: %.0f bytes/s, %.1f datagrams/s\n", idle_bps, idle_dps);
  std::printf("simulated %.1f s in %.2f s of wall time\n",
              std::chrono::duration<double>(cluster.now().time_since_epoch()).count(), wall);
  if (const auto violation = cluster.check(); violation || !converged) {
    std::printf("FAIL: %s (replay with --seed %llu)\n",
                violation ? violation->c_str() : "did not converge within the limit",
                static_cast<unsigned long long>(seed));
    return 1;
  }
  std::printf("PASS\n");
  return 0;
}

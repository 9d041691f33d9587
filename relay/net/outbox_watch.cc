#include "relay/net/outbox_watch.h"

#include <spdlog/spdlog.h>
#include <pqxx/connection>
#include <pqxx/transaction>

#include "common/log.h"
#include "relay/store/durability.h"
#include "relay/store/pg_store.h"

namespace relay::net {

OutboxWatch::OutboxWatch(asio::io_context& io, OutboxOptions options, const Config& config,
                         crypto::SigningKey key, Claimed claimed)
    : io_(io),
      options_(std::move(options)),
      config_(config),
      key_(std::move(key)),
      on_claimed_(std::move(claimed)),
      kick_(io, options_.kick, [this] { wake(); }),
      poll_(io, options_.poll_interval, [this] { wake(); }) {
  if (!options_.listen) return;
  // After every (re)connect a full claim: NOTIFYs were missed meanwhile.
  notify_.emplace(io, options_.dsn, "outbox", [this] { wake(); });
  // relayctl prune ran: the core must learn the new settled prefixes.
  notify_->also_listen("relay_retention", [this] {
    if (options_.retention_changed) options_.retention_changed();
  });
  if (options_.health != nullptr) {
    Health* health = options_.health;
    notify_->report_to(
        [health] { health->ok(Health::kOutboxListen); },
        [health](const std::string& error) { health->failing(Health::kOutboxListen, error); });
  }
}

OutboxWatch::~OutboxWatch() {
  stop();
}

void OutboxWatch::start() {
  kick_.start();
  thread_ = std::thread([this] { worker(); });
  poll_.start();
  if (notify_) notify_->start();
  wake();  // a full claim at start: rows may have waited while we were down
}

void OutboxWatch::stop() {
  if (stopped_) return;
  stopped_ = true;
  kick_.stop();
  poll_.stop();
  if (notify_) notify_->stop();
  wakeups_.stop();
  if (thread_.joinable()) thread_.join();
}

void OutboxWatch::wake() {
  if (!stopped_) wakeups_.wake();
}

void OutboxWatch::set_key(crypto::SigningKey key) {
  std::lock_guard lock(mutex_);
  key_ = std::move(key);
}

void OutboxWatch::heal(mesh::EventPtr own, mesh::EventPtr mesh_version) {
  {
    std::lock_guard lock(mutex_);
    heals_.emplace_back(std::move(own), std::move(mesh_version));
  }
  wakeups_.wake();
}

void OutboxWatch::set_paused(bool paused) {
  paused_ = paused;
  if (!paused) wake();
}

void OutboxWatch::worker() {
  std::unique_ptr<pqxx::connection> conn;
  auto backoff = std::chrono::milliseconds(100);
  // The highest own seq handed to the core. After a failed claim, whatever
  // lies above it in the log was committed by a claim whose connection broke
  // before it could say so; it is handed over before the next claim.
  std::optional<std::uint64_t> handed;
  bool resync = false;
  auto hand_over = [&](store::ClaimResult result) {
    for (const auto& e : result.events) handed = std::max(handed.value_or(0), e->key.seq);
    if (!result.events.empty() || result.rejected > 0 || !result.replaced.empty()) {
      asio::post(io_, [this, r = std::move(result)]() mutable { claimed(std::move(r)); });
    }
  };
  wake::Coalescer::Mark seen = 0;
  while (wakeups_.wait(seen)) {
    try {
      if (!conn) {
        conn = std::make_unique<pqxx::connection>(options_.dsn);
        // A claim acks an outbox row by deleting it: durably, or not at all.
        store::prepare_for_writes(*conn, options_.unsafe_durability);
      }
      if (!handed || resync) {
        pqxx::read_transaction tx(*conn);
        if (!handed) {
          handed =
              tx.exec_params1("SELECT coalesce(max(seq), 0) FROM relay_event_log WHERE origin = $1",
                              config_.node.id)[0]
                  .as<std::uint64_t>();
        } else {
          store::ClaimResult committed;
          committed.events = store::own_events_after(tx, config_.node.id, *handed);
          if (!committed.events.empty()) {
            spdlog::warn(
                "outbox claim: {} events committed by a claim that lost its connection; sending "
                "them",
                committed.events.size());
          }
          hand_over(std::move(committed));
        }
        tx.commit();
        resync = false;
      }
      const crypto::SigningKey key = [&] {
        std::lock_guard lock(mutex_);
        return key_;
      }();
      // A seq numbered twice first: the event it took from the mesh goes again.
      while (options_.numbering != nullptr) {
        std::pair<mesh::EventPtr, mesh::EventPtr> heal;
        {
          std::lock_guard lock(mutex_);
          if (heals_.empty()) break;
          heal = heals_.front();
        }
        try {
          hand_over(store::heal_conflict(*conn, config_, key, *options_.numbering, heal.first,
                                         heal.second));
        } catch (const pqxx::broken_connection&) {
          throw;  // tried again once the database answers
        } catch (const std::exception& e) {
          // Never ahead of the outbox for ever: the conflict stays an alarm.
          spdlog::error("heal of own seq {}: {}; the conflict stays (CONFLICT alarm)",
                        heal.first->key.seq, one_line(e.what()));
        }
        std::lock_guard lock(mutex_);
        heals_.erase(heals_.begin());
      }
      // Back-pressure, or numbering still learning from peers: urgent rows only.
      const bool urgent_only =
          paused_ || (options_.numbering != nullptr && !options_.numbering->ready());
      auto result =
          store::claim_outbox(*conn, config_, key, options_.batch, urgent_only, options_.numbering);
      backoff = std::chrono::milliseconds(100);
      if (options_.health != nullptr) options_.health->ok(Health::kOutboxClaim);
      if (result.full) wakeups_.wake();  // there may be more: claim again at once
      hand_over(std::move(result));
    } catch (const std::exception& e) {
      // The rows stay in the outbox (or the claim did commit: see resync);
      // try again after a pause, until the database answers.
      spdlog::error("outbox claim: {}; rows stay in the outbox, retrying in {} ms",
                    one_line(e.what()), backoff.count());
      if (options_.health != nullptr)
        options_.health->failing(Health::kOutboxClaim, one_line(e.what()));
      conn.reset();
      resync = handed.has_value();
      if (!wakeups_.sleep(backoff)) return;
      wakeups_.wake();
      backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
    }
  }
}

void OutboxWatch::claimed(store::ClaimResult result) {
  if (!stopped_) on_claimed_(std::move(result));
}

}  // namespace relay::net

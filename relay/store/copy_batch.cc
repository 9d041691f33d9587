#include "relay/store/copy_batch.h"

#include <pqxx/except>
#include <pqxx/result>
#include <pqxx/stream_to>
#include <pqxx/subtransaction>

#include <algorithm>
#include <map>
#include <tuple>
#include <utility>

namespace relay::store {
namespace {

// Per origin, the span of the batch's seqs: does any of it lie at or below
// the origin's pruned prefix, in a settled range or on a late seq? An event
// there may be a duplicate whose log row is gone, or new but to be
// remembered in relay_late: the deduplicating statement decides, row by
// row. A span is coarser than the seqs (a settled range between two of
// them counts too), which only sends such a batch the slow way. These
// tables hold a row per origin or per settled range: a few probes per batch.
constexpr const char* kNotPlainlyNew = R"sql(
SELECT EXISTS (
  SELECT 1 FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS b(origin, lo, hi)
  WHERE EXISTS (SELECT 1 FROM relay_watermarks w
                WHERE w.origin = b.origin AND w.pruned_through >= b.lo)
     OR EXISTS (SELECT 1 FROM relay_settled r
                WHERE r.origin = b.origin AND r.first <= b.hi AND r.last >= b.lo)
     OR EXISTS (SELECT 1 FROM relay_late l
                WHERE l.origin = b.origin AND l.seq BETWEEN b.lo AND b.hi))
)sql";

bool plainly_new(pqxx::transaction_base& tx, const Writes& writes) {
  std::map<std::string, std::pair<std::int64_t, std::int64_t>> spans;
  for (const auto* write : writes) {
    const auto seq = static_cast<std::int64_t>(write->event->key.seq);
    auto [it, fresh] = spans.try_emplace(write->event->key.origin, seq, seq);
    if (fresh) continue;
    it->second.first = std::min(it->second.first, seq);
    it->second.second = std::max(it->second.second, seq);
  }
  std::vector<std::string> origins;
  std::vector<std::int64_t> lo, hi;
  for (const auto& [origin, span] : spans) {
    origins.push_back(origin);
    lo.push_back(span.first);
    hi.push_back(span.second);
  }
  return !tx.exec_params1(kNotPlainlyNew, text_array(origins), int_array(lo), int_array(hi))[0]
              .as<bool>();
}

using Columns = std::vector<std::string>;

// Each row's text is made as it is streamed: the server parses one table's
// rows while this thread encodes the next (as raw COPY does), rather than
// waiting for the whole batch to be encoded first.
void copy_log(pqxx::transaction_base& tx, const Writes& writes) {
  pqxx::stream_to log(tx, "relay_event_log",
                      Columns{"origin", "seq", "priority", "kind", "signed", "outbox_id"});
  for (const auto* write : writes) {
    const mesh::Event& e = *write->event;
    const std::string outbox_id = std::to_string(write->outbox_id);
    // COPY's text format takes bytea as "\x" and hex; stream_to escapes the
    // backslash for COPY, which unescapes it.
    log << std::make_tuple(e.key.origin, e.key.seq, static_cast<int>(e.priority),
                           static_cast<int>(e.kind),
                           "\\x" + to_hex(e.signed_event.SerializeAsString()),
                           write->outbox_id == 0 ? nullptr : outbox_id.c_str());
  }
  log.complete();
}

std::size_t copy_queue(pqxx::transaction_base& tx, const Writes& writes) {
  Writes delivered;
  std::ranges::copy_if(writes, std::back_inserter(delivered),
                       [](const auto* w) { return w->queued(); });
  if (delivered.empty()) return 0;
  // The deduplicating statement's order: a consumer reading by id, oldest
  // first, meets the most urgent of one transaction first.
  std::ranges::sort(delivered, [](const auto* a, const auto* b) {
    const mesh::EventKey& ka = a->event->key;
    const mesh::EventKey& kb = b->event->key;
    return std::tie(b->event->priority, ka.origin, ka.seq) <
           std::tie(a->event->priority, kb.origin, kb.seq);
  });
  pqxx::stream_to mq(tx, "message_queue", Columns{"type", "data", "origin", "seq", "priority"});
  for (const auto* write : delivered) {
    const mesh::Event& e = *write->event;
    v1::Event event;
    event.ParseFromString(e.signed_event.event());
    mq << std::make_tuple(queue_row_type(*write, event), queue_data(*write, event), e.key.origin, e.key.seq,
                          static_cast<int>(e.priority));
  }
  mq.complete();
  return delivered.size();
}

void copy_owed(pqxx::transaction_base& tx, const std::string& self, const Writes& writes) {
  if (std::ranges::none_of(writes, [&](const auto* w) { return owes_receipt(*w, self); })) return;
  pqxx::stream_to owed(tx, "relay_receipts_owed",
                       Columns{"origin", "seq", "delivered_at", "outcome"});
  for (const auto* write : writes) {
    if (!owes_receipt(*write, self)) continue;
    // 'now' is the transaction's start, as now() in the statement.
    owed << std::make_tuple(write->event->key.origin, write->event->key.seq, "now",
                            static_cast<int>(write->outcome));
  }
  owed.complete();
}

void copy_unreplicated(pqxx::transaction_base& tx, const std::string& self, const Writes& writes) {
  const auto own = [&](const auto* w) { return w->event->key.origin == self; };
  if (std::ranges::none_of(writes, own)) return;
  pqxx::stream_to unreplicated(tx, "relay_unreplicated", Columns{"origin", "seq"});
  for (const auto* write : writes) {
    if (own(write)) unreplicated << std::make_tuple(self, write->event->key.seq);
  }
  unreplicated.complete();
}

}  // namespace

bool owes_receipt(const mesh::StoreBatch::Write& write, const std::string& self) {
  return write.target && write.event->key.origin != self;
}

std::string queue_row_type(const mesh::StoreBatch::Write& write, const v1::Event& event) {
  return write.outcome == v1::OUTCOME_REFUSED ? "relay.policy" : queue_type(event);
}

std::string queue_data(const mesh::StoreBatch::Write& write, const v1::Event& event) {
  if (write.outcome == v1::OUTCOME_REFUSED) return refusal_json(event, write.refusal);
  return queue_json(event, {write.outcome == v1::OUTCOME_DELIVERED_LATE, write.redelivered,
                            write.outside_policy});
}

std::optional<std::size_t> copy_new_events(pqxx::dbtransaction& tx, const std::string& self,
                                           const Writes& writes) {
  pqxx::subtransaction attempt(tx, "copy_batch");
  std::size_t queued = 0;
  try {
    // An event already in the log (or a receipt already owed, a mark
    // already set) breaks a primary key: nothing of the batch stays.
    copy_log(attempt, writes);
    queued = copy_queue(attempt, writes);
    copy_owed(attempt, self, writes);
    copy_unreplicated(attempt, self, writes);
  } catch (const pqxx::unique_violation&) {
    attempt.abort();
    return std::nullopt;
  }
  // Checked after the COPY, not before: a retention prune that removes an
  // earlier copy's log row commits its new prefix with that delete, so
  // either the COPY met the row (a unique violation, or it waited for the
  // prune) or this check, which reads after the COPY, sees the prefix.
  if (!plainly_new(attempt, writes)) {
    attempt.abort();
    return std::nullopt;
  }
  attempt.commit();
  return queued;
}

}  // namespace relay::store

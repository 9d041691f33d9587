#include "relay/wire/signing.h"

#include <climits>

namespace relay::wire {
namespace {

constexpr std::string_view kEventTag = "relaymesh v1 event signature";

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

bool has_nul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

}  // namespace

bool reserved_type(std::string_view type) {
  constexpr std::string_view kPrefix = "relay.";
  if (type.size() < kPrefix.size()) return false;
  for (std::size_t i = 0; i < kPrefix.size(); ++i) {
    // ASCII folding only: "relay." is ASCII, and a locale's rules must not
    // decide what a peer refuses.
    const char c = type[i];
    const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    if (lower != kPrefix[i]) return false;
  }
  return true;
}

bool well_formed(const v1::Event& e) {
  // What every store must be able to take: a signed event that PostgreSQL
  // would refuse (a NUL in text, a seq beyond bigint, an unknown priority)
  // must not reach a store lane and block it.
  if (e.seq() == 0 || e.seq() > static_cast<std::uint64_t>(INT64_MAX)) return false;
  if (e.priority() < v1::PRIORITY_BULK || e.priority() > v1::PRIORITY_DURESS) return false;
  if (e.kind() == v1::KIND_ACK) {
    // An answer to one event, saying how: anything else cannot be shown or
    // counted as a person's acknowledgement anywhere.
    if (e.references_size() != 1) return false;
    if (e.ack() != v1::ACK_RESPONDING && e.ack() != v1::ACK_RESOLVED) return false;
  } else if (e.kind() == v1::KIND_ESCALATION) {
    // About one event, in a numbered round: a consumer shows "round 2 of
    // 5" and the origin counts rounds by them.
    if (e.references_size() != 1 || e.escalation_round() < 1 || e.ack() != v1::ACK_UNSPECIFIED)
      return false;
  } else if (e.kind() == v1::KIND_UPDATE || e.kind() == v1::KIND_CANCEL) {
    // The origin revises its own alert, raised before: a site cannot
    // revise or cancel another's (a receiver can tell without holding the
    // alert), nor one not raised yet.
    if (e.references_size() != 1 || e.references(0).origin() != e.origin() ||
        e.references(0).seq() >= e.seq() || e.ack() != v1::ACK_UNSPECIFIED)
      return false;
  } else if (e.kind() < v1::KIND_NOTIFICATION || e.kind() > v1::KIND_TEST ||
             e.ack() != v1::ACK_UNSPECIFIED) {
    return false;
  }
  if (e.kind() != v1::KIND_ESCALATION && (e.escalation_round() != 0 || e.escalation_max() != 0))
    return false;
  if (e.targets().empty()) return false;
  for (const auto& t : e.targets()) {
    if (t.empty() || has_nul(t)) return false;
  }
  for (const auto& r : e.references()) {
    if (has_nul(r.origin()) || r.seq() > static_cast<std::uint64_t>(INT64_MAX)) return false;
  }
  for (const auto& r : e.resolved()) {
    if (r.empty() || has_nul(r)) return false;
  }
  // relay.* types are the relay's own; PostgreSQL's jsonb refuses a \u0000
  // escape, so data holding one could not reach any message_queue (an
  // escaped backslash before "u0000" is refused too: rare, and harmless).
  if (reserved_type(e.type()) || e.data().find("\\u0000") != std::string::npos) {
    return false;
  }
  return !has_nul(e.origin()) && !has_nul(e.title()) && !has_nul(e.body()) &&
         !has_nul(e.location()) && !has_nul(e.sender()) && !has_nul(e.type()) && !has_nul(e.data());
}

std::string event_signing_message(std::string_view event_bytes) {
  std::string message(kEventTag);
  message.push_back('\0');
  message.append(event_bytes);
  return message;
}

std::string receipts_signing_message(const v1::Receipts& r) {
  std::string m = "relaymesh v2 receipts";
  m.push_back('\0');
  m += r.origin();
  m.push_back('\0');
  m += r.target();
  m.push_back('\0');
  for (const auto& d : r.deliveries()) {
    put_be(m, d.seq(), 8);
    put_be(m, static_cast<std::uint64_t>(d.delivered_unix_ms()), 8);
    put_be(m, static_cast<std::uint64_t>(d.outcome()), 1);
  }
  return m;
}

std::string receipt_acks_signing_message(const v1::ReceiptAcks& a) {
  std::string m = "relaymesh v2 receipt acks";
  m.push_back('\0');
  m += a.origin();
  m.push_back('\0');
  m += a.target();
  m.push_back('\0');
  for (std::uint64_t seq : a.seqs()) put_be(m, seq, 8);
  return m;
}

v1::SignedEvent sign_event(const v1::Event& event, const crypto::SigningKey& key) {
  v1::SignedEvent signed_event;
  event.SerializeToString(signed_event.mutable_event());
  const auto sig = key.sign(crypto::as_bytes(event_signing_message(signed_event.event())));
  signed_event.set_signature(sig.data(), sig.size());
  return signed_event;
}

}  // namespace relay::wire

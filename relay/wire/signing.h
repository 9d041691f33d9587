#pragma once

#include <string>
#include <string_view>

#include "common/crypto.h"
#include "proto/relaymesh.pb.h"

namespace relay::wire {

namespace v1 = relaymesh::v1;

/// True if every field of the event is in range for every store: seq within
/// a bigint, a known kind and priority, targets present, no NUL in text; a
/// KIND_ACK references exactly one event and says responding or resolved;
/// KIND_ESCALATION references exactly one and has a round of 1 or more.
bool well_formed(const v1::Event& event);

/// True for a type reserved to the relay's own rows: "relay." in any case.
/// Consumers match types in their own ways (ILIKE, lower()), so
/// "RELAY.supervision" must not pass for a supervision alarm either.
bool reserved_type(std::string_view type);

/// The message an origin signs for an event: a domain tag, then the bytes.
/// The tag keeps an event signature from being valid for anything else.
std::string event_signing_message(std::string_view event_bytes);
/// Serializes and signs an event; the result is what travels and is stored.
v1::SignedEvent sign_event(const v1::Event& event, const crypto::SigningKey& key);

/// What a target signs for receipts and an origin for receipt acks:
/// a domain tag and the fields in a fixed byte layout (not protobuf's).
std::string receipts_signing_message(const v1::Receipts& receipts);
std::string receipt_acks_signing_message(const v1::ReceiptAcks& acks);

}  // namespace relay::wire

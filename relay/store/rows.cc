#include "relay/store/rows.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

namespace relay::store {

namespace pb = google::protobuf;

namespace {

// A SAX walk that only says yes or no: strict RFC 8259 (nlohmann's lexer,
// which also refuses bad UTF-8 and lone surrogates), and nothing that
// PostgreSQL's jsonb could still refuse: a number beyond numeric's range
// (a long exponent), nesting deeper than its parser is sure to take, or a
// \u0000 escape. Numbers are seen as their text, never as a double.
class JsonbSafe : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t& text) override {
    const auto e = text.find_first_of("eE");
    // numeric holds up to 131072 digits before the point and 16383 after:
    // an exponent of four digits or fewer, whatever its sign, fits.
    return e == string_t::npos || text.size() - e - 1 <= 5;
  }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return false; }
  bool start_object(std::size_t) override { return ++depth_ <= kMaxDepth; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return --depth_, true; }
  bool start_array(std::size_t) override { return ++depth_ <= kMaxDepth; }
  bool end_array() override { return --depth_, true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  static constexpr int kMaxDepth = 100;
  int depth_ = 0;
};

}  // namespace

bool jsonb_safe(const std::string& text) {
  if (text.find("\\u0000") != std::string::npos) return false;
  JsonbSafe sax;
  return nlohmann::json::sax_parse(text, &sax, nlohmann::json::input_format_t::json, true);
}

std::string text_array(const std::vector<std::string>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

std::string int_array(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

std::string to_hex(std::string_view bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string queue_type(const v1::Event& event) {
  // The relay's own row: an answer to an alert, not an alert (and its
  // origin cannot choose the type; a relay.* type never travels).
  if (event.kind() == v1::KIND_ACK) return "relay.ack";
  if (event.kind() == v1::KIND_ESCALATION) return "relay.escalation";
  return event.type().empty() ? kind_name(event.kind()) : event.type();
}

namespace {

pb::Value text(const std::string& s) {
  pb::Value v;
  v.set_string_value(s);
  return v;
}

pb::Value number(double d) {
  pb::Value v;
  v.set_number_value(d);
  return v;
}

std::string printed(const pb::Struct& object) {
  std::string out;
  if (!pb::util::MessageToJsonString(object, &out).ok() || out.empty() || out.back() != '}') {
    return "{}";
  }
  return out;
}

/// A relay.ack row: who answered which event, from where, and how.
std::string ack_json(const v1::Event& event, Arrival arrival) {
  pb::Struct object;
  auto& f = *object.mutable_fields();
  f["id"] = text(event.origin() + ":" + std::to_string(event.seq()));
  const auto& r = event.references(0);  // exactly one (wire::well_formed)
  f["references"] = text(r.origin() + ":" + std::to_string(r.seq()));
  f["state"] = text(event.ack() == v1::ACK_RESOLVED ? "resolved" : "responding");
  f["by"] = text(event.sender());
  f["site"] = text(event.origin());
  f["note"] = text(event.body());
  f["created_at"] = number(static_cast<double>(event.created_unix_ms()));
  f["priority"] = text(priority_name(event.priority()));
  f["exercise"].set_bool_value(event.exercise());
  f["late"].set_bool_value(arrival.late);
  f["redelivered"].set_bool_value(arrival.redelivered);
  return printed(object);
}

/// A relay.escalation row: which alarm nobody answered, the round, and
/// enough of the alarm (its title, location, sender) to act on it alone.
std::string escalation_json(const v1::Event& event) {
  pb::Struct object;
  auto& f = *object.mutable_fields();
  f["id"] = text(event.origin() + ":" + std::to_string(event.seq()));
  const auto& r = event.references(0);  // exactly one (wire::well_formed)
  f["references"] = text(r.origin() + ":" + std::to_string(r.seq()));
  f["round"] = number(event.escalation_round());
  f["max"] = number(event.escalation_max());
  f["title"] = text(event.title());
  f["location"] = text(event.location());
  f["sender"] = text(event.sender());
  f["origin"] = text(event.origin());
  f["created_at"] = number(static_cast<double>(event.created_unix_ms()));
  f["priority"] = text(priority_name(event.priority()));
  f["exercise"].set_bool_value(event.exercise());
  return printed(object);
}

}  // namespace

std::string refusal_json(const v1::Event& event, const std::string& why) {
  pb::Struct object;
  auto& f = *object.mutable_fields();
  f["refused"] = text(event.origin() + ":" + std::to_string(event.seq()));
  f["kind"] = text(kind_name(event.kind()));
  f["by"] = text(event.origin());
  f["sender"] = text(event.sender());
  auto* refs = f["references"].mutable_list_value();
  for (const auto& r : event.references())
    *refs->add_values() = text(r.origin() + ":" + std::to_string(r.seq()));
  f["reason"] = text(why);
  f["created_at"] = number(static_cast<double>(event.created_unix_ms()));
  return printed(object);
}

std::string queue_json(const v1::Event& event, Arrival arrival) {
  if (event.kind() == v1::KIND_ACK && event.references_size() == 1) return ack_json(event, arrival);
  if (event.kind() == v1::KIND_ESCALATION && event.references_size() == 1)
    return escalation_json(event);
  pb::Struct object;
  auto& f = *object.mutable_fields();
  f["id"] = text(event.origin() + ":" + std::to_string(event.seq()));
  f["origin"] = text(event.origin());
  f["seq"] = number(static_cast<double>(event.seq()));
  f["kind"] = text(kind_name(event.kind()));
  f["priority"] = text(priority_name(event.priority()));
  f["title"] = text(event.title());
  f["body"] = text(event.body());
  f["location"] = text(event.location());
  f["sender"] = text(event.sender());
  f["created"] = number(static_cast<double>(event.created_unix_ms()));
  if (event.expires_unix_ms() != 0)
    f["expires"] = number(static_cast<double>(event.expires_unix_ms()));
  f["exercise"].set_bool_value(event.exercise());
  f["late"].set_bool_value(arrival.late);
  f["redelivered"].set_bool_value(arrival.redelivered);
  if (!arrival.outside_policy.empty()) f["outside_policy"] = text(arrival.outside_policy);
  auto* targets = f["targets"].mutable_list_value();
  for (const auto& t : event.targets()) *targets->add_values() = text(t);
  auto* refs = f["references"].mutable_list_value();
  for (const auto& r : event.references())
    *refs->add_values() = text(r.origin() + ":" + std::to_string(r.seq()));
  // The event's data goes in as the text its origin's jsonb gave, not
  // through protobuf's Value (a double): a 30-digit number arrives digit for
  // digit. The origin checked it as jsonb; a peer that sends something else
  // still gets its alert delivered, with the data left out.
  const bool verbatim = !event.data().empty() && jsonb_safe(event.data());
  if (!verbatim) f["data"].set_null_value(pb::NULL_VALUE);
  std::string out = printed(object);
  if (out == "{}") return out;
  if (verbatim) {
    out.pop_back();
    out += ",\"data\":";
    out += event.data();
    out += '}';
  }
  return out;
}

}  // namespace relay::store

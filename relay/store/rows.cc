#include "relay/store/rows.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace relay::store {

namespace pb = google::protobuf;

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

std::string kind_name(v1::Kind kind) {
  switch (kind) {
    case v1::KIND_NOTIFICATION:
      return "notification";
    case v1::KIND_DURESS:
      return "duress";
    case v1::KIND_ALL_CLEAR:
      return "all-clear";
    case v1::KIND_TEST:
      return "test";
    case v1::KIND_RECEIPT:
      return "receipt";
    case v1::KIND_SUPERVISION:
      return "supervision";
    default:
      return "notification";
  }
}

std::string priority_name(v1::Priority priority) {
  switch (priority) {
    case v1::PRIORITY_DURESS:
      return "duress";
    case v1::PRIORITY_EMERGENCY:
      return "emergency";
    case v1::PRIORITY_BULK:
      return "bulk";
    default:
      return "normal";
  }
}

std::string queue_type(const v1::Event& event) {
  return event.type().empty() ? kind_name(event.kind()) : event.type();
}

std::string queue_json(const v1::Event& event, Arrival arrival) {
  pb::Struct object;
  auto& f = *object.mutable_fields();
  auto text = [](const std::string& s) {
    pb::Value v;
    v.set_string_value(s);
    return v;
  };
  auto number = [](double d) {
    pb::Value v;
    v.set_number_value(d);
    return v;
  };
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
  auto* targets = f["targets"].mutable_list_value();
  for (const auto& t : event.targets()) *targets->add_values() = text(t);
  auto* refs = f["references"].mutable_list_value();
  for (const auto& r : event.references())
    *refs->add_values() = text(r.origin() + ":" + std::to_string(r.seq()));
  pb::Value data;
  // The origin checked its data as jsonb; a peer that sends something else
  // still gets its alert delivered, with the data left out.
  if (event.data().empty() || !pb::util::JsonStringToMessage(event.data(), &data).ok()) {
    data.set_null_value(pb::NULL_VALUE);
  }
  f["data"] = data;
  std::string out;
  if (!pb::util::MessageToJsonString(object, &out).ok()) out = "{}";
  return out;
}

}  // namespace relay::store

#include "relay/mesh/types.h"

namespace relay::mesh {

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
    case v1::KIND_ACK:
      return "ack";
    case v1::KIND_ESCALATION:
      return "escalation";
    case v1::KIND_UPDATE:
      return "update";
    case v1::KIND_CANCEL:
      return "cancel";
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

}  // namespace relay::mesh

#pragma once

#include <algorithm>
#include <chrono>

#include "relay/mesh/types.h"

namespace relay::mesh {

/// Round-trip estimate of one peer and the retransmission timeout derived
/// from it (RFC 6298: SRTT + 4 RTTVAR, clamped), fed by ack and probe samples.
class RttEstimator {
 public:
  /// Before the first sample: RFC 6298 says 1 s; a WAN between sites is
  /// rarely above 300 ms, and a probe measures the real value within a second.
  static constexpr Duration kInitial = milliseconds(500);

  void sample(Duration rtt) {
    if (!has_sample_) {
      srtt_ = rtt;
      rttvar_ = rtt / 2;
      has_sample_ = true;
      return;
    }
    const Duration err = srtt_ > rtt ? srtt_ - rtt : rtt - srtt_;
    rttvar_ = (3 * rttvar_ + err) / 4;
    srtt_ = (7 * srtt_ + rtt) / 8;
  }

  /// SRTT + 4 RTTVAR, at least `floor`, at most `cap`.
  Duration rto(Duration floor, Duration cap) const {
    const Duration base = has_sample_ ? srtt_ + 4 * rttvar_ : kInitial;
    return std::clamp(base, floor, cap);
  }

  bool has_sample() const { return has_sample_; }
  Duration srtt() const { return srtt_; }

 private:
  bool has_sample_ = false;
  Duration srtt_{};
  Duration rttvar_{};
};

}  // namespace relay::mesh

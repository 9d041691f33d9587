#pragma once

// A runner's wake-up roles are relay/wake's, the ones relayd's outbox watch
// uses too (relay/net/outbox_watch.h); named here for the runner's code.
#include "relay/wake/wake.h"

namespace relay::runner {

using wake::KickListener;
using wake::NotifyListener;
using wake::PollTimer;
using wake::Wake;

}  // namespace relay::runner

#pragma once

#include "common/config.h"

namespace relay {

/// Binds `ep` (an IP literal) the way relayd will, with a socket of `type`
/// (SOCK_DGRAM or SOCK_STREAM), and closes it again: 0 if it bound, else
/// the errno (EINVAL for an address that is not an IP literal). For the
/// checks made before relayd takes a port: check-config and a reload.
int try_bind(const Endpoint& ep, int type);

}  // namespace relay

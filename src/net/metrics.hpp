// GET /metrics: the server's counters in Prometheus text format.
#pragma once

#include "net/server_context.hpp"

#include <string>

namespace eventcast::net {

std::string render_metrics(server_context& ctx);

}  // namespace eventcast::net

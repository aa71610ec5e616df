// Writing Prometheus text format (version 0.0.4), so every component that has counters can
// render its own (net's /metrics, the cluster bridge) in the same shape. No label carries user
// input.
#pragma once

#include <string>
#include <string_view>

namespace eventcast::core {

/// Appends one metric family with a single unlabelled sample: HELP, TYPE and the value.
template <class Value>
void append_metric(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help, Value value) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
    out.append(name).append(" ").append(type).append("\n").append(name).append(" ");
    out.append(std::to_string(value)).append("\n");
}

}  // namespace eventcast::core

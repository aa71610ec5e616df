// How error messages name a JSON value's kind ("an array", "a number"): one wording for every
// parser of outside input (WebSocket messages, POST /chat, provider streams).
#pragma once

#include <boost/json/value.hpp>

#include <string>

namespace eventcast::core {

inline std::string json_kind_name(const boost::json::value& v) {
    switch (v.kind()) {
        case boost::json::kind::null: return "null";
        case boost::json::kind::bool_: return "a boolean";
        case boost::json::kind::int64:
        case boost::json::kind::uint64:
        case boost::json::kind::double_: return "a number";
        case boost::json::kind::string: return "a string";
        case boost::json::kind::array: return "an array";
        case boost::json::kind::object: return "an object";
    }
    return "a value";
}

}  // namespace eventcast::core

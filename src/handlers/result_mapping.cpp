// The return contract of onPublish/onSubscribe (docs/protocol.md, "Namespace handlers").
#include "handlers/result_mapping.hpp"

#include <boost/json.hpp>

#include <optional>
#include <unordered_map>

namespace eventcast::handlers {

namespace json = boost::json;

namespace {

failure bad(std::string message) {
    return {failure::kind::bad_result, std::move(message), {}};
}

// The envelope's non-"ok" cases, or the "ok" value.
result<const json::value*> open(const json::value& env) {
    const auto* obj = env.if_object();
    if (!obj)
        return failure{failure::kind::exception, "the handler's answer could not be read", {}};
    if (const auto* ok = obj->if_contains("ok"))
        return ok;
    if (const auto* r = obj->if_contains("refuse"); r && r->is_string()) {
        if (r->as_string() == "unauthorized")
            return failure{
                failure::kind::unauthorized, "You are not authorized to make this call.", {}};
        failure f{failure::kind::error, {}, {}};
        if (const auto* m = obj->if_contains("message"); m && m->is_string())
            f.message = std::string(m->as_string());
        if (const auto* t = obj->if_contains("type"); t && t->is_string())
            f.error_type = std::string(t->as_string());
        return f;
    }
    if (const auto* l = obj->if_contains("limit"); l && l->is_string()) {
        if (l->as_string() == "memory")
            return failure{failure::kind::memory, "the handler ran out of memory", {}};
        return failure{failure::kind::timeout, "the handler ran past its time limit", {}};
    }
    failure f{failure::kind::exception, "the handler threw an exception", {}};
    if (const auto* t = obj->if_contains("threw"); t && t->is_string())
        f.message = "the handler threw: " + std::string(t->as_string());
    return f;
}

// `sp`: where the tree lives; map_publish gives a monotonic buffer on its stack, since the
// tree is read once and dropped (measured: map_publish of five 100-byte events, 4.4 -> see
// docs/BENCHMARKS.md).
result<json::value> parse(std::string_view envelope, json::storage_ptr sp = {}) {
    boost::system::error_code ec;
    json::parse_options opts;
    opts.max_depth = 64;
    auto v = json::parse(envelope, ec, std::move(sp), opts);
    if (ec)
        return failure{failure::kind::exception, "the handler's answer is not JSON", {}};
    return v;
}

std::string entry_name(std::size_t i) {
    return "onPublish's entry " + std::to_string(i);
}

}  // namespace

result<publish_decision> map_publish(std::string_view envelope,
                                     const std::vector<std::string>& incoming_ids) {
    // Five events of a few hundred bytes fit; bigger answers continue on the heap.
    alignas(16) unsigned char buffer[8192];
    json::monotonic_resource mr(buffer, sizeof buffer);
    auto env = parse(envelope, &mr);
    if (!env)
        return env.error();
    auto value = open(*env);
    if (!value)
        return value.error();
    publish_decision d;
    const json::value& v = **value;
    if (v.is_null())
        return d;
    const auto* list = v.if_array();
    if (!list)
        return bad("onPublish returned " + std::string(json::to_string(v.kind())) +
                   "; it must return an array of events or null");
    // A publish carries at most a few events (AppSync: 5): a linear search beats a hash map's
    // allocation; past 16 ids the map is built.
    std::unordered_map<std::string_view, std::size_t> index_of;
    if (incoming_ids.size() > 16) {
        index_of.reserve(incoming_ids.size());
        for (std::size_t i = 0; i < incoming_ids.size(); ++i)
            index_of.emplace(incoming_ids[i], i);
    }
    auto find_index = [&](std::string_view id) -> std::optional<std::size_t> {
        if (incoming_ids.size() > 16) {
            auto it = index_of.find(id);
            return it == index_of.end() ? std::nullopt : std::optional(it->second);
        }
        for (std::size_t i = 0; i < incoming_ids.size(); ++i)
            if (incoming_ids[i] == id)
                return i;
        return std::nullopt;
    };
    std::vector<bool> seen(incoming_ids.size(), false);
    for (std::size_t i = 0; i < list->size(); ++i) {
        const auto& entry = (*list)[i];
        if (entry.is_null())
            continue;  // AWS drops nulls
        const auto* obj = entry.if_object();
        if (!obj)
            return bad(entry_name(i) + " is " + std::string(json::to_string(entry.kind())) +
                       "; each entry must be an object {id, payload} or {id, error}, or null");
        const auto* id = obj->if_contains("id");
        if (!id || !id->is_string())
            return bad(entry_name(i) + " has no string id");
        const auto found = find_index(std::string_view(id->as_string()));
        if (!found)
            return bad(entry_name(i) + " has id '" + std::string(id->as_string()) +
                       "', which is not one of the published events' ids");
        if (seen[*found])
            return bad(entry_name(i) + " repeats id '" + std::string(id->as_string()) + "'");
        seen[*found] = true;
        if (const auto* err = obj->if_contains("error")) {
            d.failed.push_back(
                {*found, err->is_string() ? std::string(err->as_string()) : json::serialize(*err)});
            continue;
        }
        const auto* payload = obj->if_contains("payload");
        if (!payload)
            return bad(entry_name(i) + " (id '" + std::string(id->as_string()) +
                       "') has neither payload nor error");
        d.broadcast.push_back({*found, json::serialize(*payload)});
    }
    return d;
}

std::optional<failure> map_subscribe(std::string_view envelope) {
    auto env = parse(envelope);
    if (!env)
        return env.error();
    auto value = open(*env);
    if (!value)
        return value.error();
    return std::nullopt;
}

}  // namespace eventcast::handlers

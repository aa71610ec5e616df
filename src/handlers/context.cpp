// ctx as one JSON text: payloads are validated JSON texts already, so they are copied in as
// they are; everything else is escaped here.
#include "handlers/context.hpp"

#include "events/message.hpp"

namespace eventcast::handlers {

std::string build_context(const invocation& inv) {
    std::string out;
    std::size_t reserve = 256 + inv.channel.size() * 2 + inv.identity_json.size();
    if (inv.events)
        for (const auto& e : *inv.events)
            reserve += e.size() + 64;
    out.reserve(reserve);
    out += '{';
    if (inv.op == operation::publish && inv.events && inv.ids) {
        out += R"("events":[)";
        for (std::size_t i = 0; i < inv.events->size(); ++i) {
            if (i)
                out += ',';
            out += R"({"id":)";
            events::append_json_string(out, (*inv.ids)[i]);
            out += R"(,"payload":)";
            out += (*inv.events)[i];
            out += '}';
        }
        out += "],";
    }
    // AppSync's path always starts with '/' ("/default/foo"); channel_path::str() has none.
    std::string path;
    if (inv.channel.empty() || inv.channel.front() != '/')
        path += '/';
    path += inv.channel;
    out += R"("channel":)";
    events::append_json_string(out, path);
    out += R"(,"identity":)";
    out += inv.identity_json.empty() ? std::string_view("null") : inv.identity_json;
    out += R"(,"info":{"channel":{"path":)";
    events::append_json_string(out, path);
    out += R"(,"segments":[)";
    std::string_view rest = inv.channel;
    if (!rest.empty() && rest.front() == '/')
        rest.remove_prefix(1);
    bool first = true;
    while (!rest.empty()) {
        const auto slash = rest.find('/');
        const auto seg = rest.substr(0, slash);
        if (!first)
            out += ',';
        first = false;
        events::append_json_string(out, seg);
        if (slash == std::string_view::npos)
            break;
        rest.remove_prefix(slash + 1);
    }
    out += R"(]},"channelNamespace":{"name":)";
    events::append_json_string(out, inv.ns);
    out += R"(},"operation":)";
    out += inv.op == operation::publish ? R"("PUBLISH")" : R"("SUBSCRIBE")";
    out += R"(},"request":{"headers":{)";
    if (inv.headers) {
        for (std::size_t i = 0; i < inv.headers->size(); ++i) {
            if (i)
                out += ',';
            events::append_json_string(out, (*inv.headers)[i].first);
            out += ':';
            events::append_json_string(out, (*inv.headers)[i].second);
        }
    }
    out += R"(},"domainName":null},"stash":{}})";
    return out;
}

}  // namespace eventcast::handlers

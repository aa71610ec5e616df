// Loading namespace code and running it: the file is read and checked here, compiled once per
// version on each thread's engine (js_engine.cpp), and its answer mapped by result_mapping.
#include "handlers/registry.hpp"

#include "core/log.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace eventcast::handlers {

namespace {

std::atomic<std::uint64_t> next_generation{1};

// Handler code is small (AWS caps a namespace's code at 32 KB); 1 MiB leaves room and still
// refuses a file named by mistake.
constexpr std::size_t max_code_bytes = 1024 * 1024;

}  // namespace

std::optional<std::pair<std::string, std::string>> split_namespace_code(std::string_view spec) {
    const auto colon = spec.find(':');
    if (colon == std::string_view::npos || colon == 0 || colon + 1 == spec.size())
        return std::nullopt;
    return std::pair{std::string(spec.substr(0, colon)), std::string(spec.substr(colon + 1))};
}

boost::system::result<std::shared_ptr<const registry::code_map>, std::vector<std::string>>
registry::load(const std::vector<std::string>& specs, const std::vector<std::string>& namespaces,
               const engine_limits& limits) {
    std::vector<std::string> problems;
    auto code = std::make_shared<code_map>();
    auto& engine = js_engine::for_this_thread(limits);
    for (const auto& spec : specs) {
        auto parts = split_namespace_code(spec);
        if (!parts) {
            problems.push_back("namespace-code: '" + spec + "' is not NS:FILE");
            continue;
        }
        auto& [ns, file] = *parts;
        if (std::find(namespaces.begin(), namespaces.end(), ns) == namespaces.end()) {
            problems.push_back("namespace-code: '" + ns + "' is not a defined --namespace");
            continue;
        }
        if (code->count(ns)) {
            problems.push_back("namespace-code: namespace '" + ns + "' is given code twice");
            continue;
        }
        std::ifstream in(file, std::ios::binary);
        if (!in) {
            problems.push_back("namespace-code: cannot read '" + file + "' for namespace '" + ns +
                               "'");
            continue;
        }
        std::ostringstream text;
        text << in.rdbuf();
        auto src = std::make_shared<module_source>();
        src->file = file;
        src->text = std::move(text).str();
        if (src->text.size() > max_code_bytes) {
            problems.push_back("namespace-code: '" + file + "' is " +
                               std::to_string(src->text.size()) + " bytes; the limit is " +
                               std::to_string(max_code_bytes));
            continue;
        }
        src->generation = next_generation.fetch_add(1);
        if (auto error = engine.check(*src)) {
            problems.push_back(*error);
            continue;
        }
        if (!src->has_publish && !src->has_subscribe)
            log::warn("handlers: '{}' (namespace '{}') exports neither onPublish nor onSubscribe",
                      file, ns);
        code->emplace(ns, std::move(src));
    }
    if (!problems.empty())
        return problems;
    return std::shared_ptr<const code_map>(std::move(code));
}

boost::system::result<std::unique_ptr<registry>, std::vector<std::string>> registry::create(
    options opts) {
    if (opts.specs.empty() && opts.data_sources.empty() && opts.direct_lambdas.empty())
        return std::unique_ptr<registry>();
    auto code = load(opts.specs, opts.namespaces, opts.limits);
    if (!code)
        return code.error();
    std::vector<std::string> problems;
    const auto namespaces = opts.namespaces;
    auto known = [&](const std::string& ns, const char* option) {
        if (std::find(namespaces.begin(), namespaces.end(), ns) != namespaces.end())
            return true;
        problems.push_back(std::string(option) + ": '" + ns + "' is not a defined --namespace");
        return false;
    };
    auto sources = opts.data_sources;
    auto directs = opts.direct_lambdas;
    auto r = std::unique_ptr<registry>(new registry(std::move(opts), std::move(*code)));
    for (const auto& spec : sources) {
        auto parsed = parse_data_source(spec);
        if (!parsed) {
            problems.push_back(parsed.error());
            continue;
        }
        if (!known(parsed->first, "namespace-data-source"))
            continue;
        if (!r->sources_.emplace(parsed->first, parsed->second).second)
            problems.push_back("namespace-data-source: namespace '" + parsed->first +
                               "' is given a data source twice");
    }
    for (const auto& spec : directs) {
        auto parsed = parse_direct_lambda(spec);
        if (!parsed) {
            problems.push_back(parsed.error());
            continue;
        }
        const auto& [ns, d] = *parsed;
        if (!known(ns, "namespace-direct-lambda"))
            continue;
        if ((d.publish && !r->direct_publish_.emplace(ns, d).second) ||
            (d.subscribe && !r->direct_subscribe_.emplace(ns, d).second))
            problems.push_back("namespace-direct-lambda: namespace '" + ns +
                               "' is given two direct integrations for one operation");
    }
    auto plans = r->check_plans(*r->code_.load());
    problems.insert(problems.end(), plans.begin(), plans.end());
    if (!problems.empty())
        return problems;
    return r;
}

registry::registry(options opts, std::shared_ptr<const code_map> code)
    : limits_(opts.limits),
      namespaces_(std::move(opts.namespaces)),
      specs_(std::move(opts.specs)),
      code_(std::move(code)) {
    if ((!opts.data_sources.empty() || !opts.direct_lambdas.empty()) && opts.outbound.transport)
        outbound_ = std::make_unique<outbound>(std::move(opts.outbound));
}

std::vector<std::string> registry::check_plans(const code_map& code) const {
    std::vector<std::string> problems;
    for (const auto& entry : code) {
        // Named, not structured bindings: clang's C++20 cannot capture those in a lambda.
        const std::string& ns = entry.first;
        const auto& src = entry.second;
        const bool has_source = sources_.count(ns) != 0;
        auto check = [&](bool uses_source, bool has, bool direct, const char* name) {
            if (has && direct)
                problems.push_back("namespace '" + ns + "': " + name + " is both in '" + src->file +
                                   "' and a --namespace-direct-lambda integration");
            else if (uses_source && !has_source)
                problems.push_back(src->file + ":1:1: " + name +
                                   " has request/response, but namespace '" + ns +
                                   "' has no --namespace-data-source");
        };
        check(src->publish_source, src->has_publish, direct_publish_.count(ns) != 0, "onPublish");
        check(src->subscribe_source, src->has_subscribe, direct_subscribe_.count(ns) != 0,
              "onSubscribe");
    }
    if ((!sources_.empty() || !direct_publish_.empty() || !direct_subscribe_.empty()) && !outbound_)
        problems.push_back("data sources need the outbound transport (a wiring bug)");
    return problems;
}

std::vector<std::string> registry::reload(const std::vector<std::string>& specs) {
    std::lock_guard lock(reload_mutex_);
    const auto& wanted = specs.empty() ? specs_ : specs;
    auto code = load(wanted, namespaces_, limits_);
    if (code) {
        auto plans = check_plans(**code);
        if (!plans.empty())
            code = plans;
    }
    if (!code) {
        for (const auto& p : code.error())
            log::error("handlers: reload refused, the old code stays: {}", p);
        return code.error();
    }
    specs_ = wanted;
    code_.store(std::move(*code));
    log::info("handlers: reloaded {} namespace handler file(s)", specs_.size());
    return {};
}

std::shared_ptr<const module_source> registry::find(std::string_view ns) const {
    auto code = code_.load(std::memory_order_acquire);
    auto it = code->find(ns);
    return it == code->end() ? nullptr : it->second;
}

void registry::count(const failure& f) {
    switch (f.what) {
        case failure::kind::unauthorized:
        case failure::kind::error: return;  // the code's own decision
        case failure::kind::timeout: timeouts_.fetch_add(1, std::memory_order_relaxed); break;
        case failure::kind::memory: memory_.fetch_add(1, std::memory_order_relaxed); break;
        default: break;
    }
    failures_.fetch_add(1, std::memory_order_relaxed);
    log::warn("handlers: {}", f.message);
}

result<publish_decision> registry::on_publish(const module_source& code, const invocation& inv) {
    invocations_.fetch_add(1, std::memory_order_relaxed);
    auto& engine = js_engine::for_this_thread(limits_);
    const auto envelope = engine.invoke(code, "onPublish", build_context(inv));
    auto decision = map_publish(envelope, *inv.ids);
    if (!decision)
        count(decision.error());
    return decision;
}

std::optional<failure> registry::on_subscribe(const module_source& code, const invocation& inv) {
    invocations_.fetch_add(1, std::memory_order_relaxed);
    auto& engine = js_engine::for_this_thread(limits_);
    const auto envelope = engine.invoke(code, "onSubscribe", build_context(inv));
    auto refused = map_subscribe(envelope);
    if (refused)
        count(*refused);
    return refused;
}

const direct_lambda* registry::direct_for(std::string_view ns, operation op) const {
    const auto& m = op == operation::publish ? direct_publish_ : direct_subscribe_;
    auto it = m.find(ns);
    return it == m.end() ? nullptr : &it->second;
}

bool registry::waits(std::string_view ns, operation op) const {
    if (direct_for(ns, op))
        return true;
    auto code = find(ns);
    return code && (op == operation::publish ? code->publish_source : code->subscribe_source);
}

void registry::run_with_source(std::shared_ptr<const module_source> code, const char* handler,
                               std::string ctx_json,
                               std::function<void(std::string, std::optional<failure>)> finish) {
    namespace json = boost::json;
    const std::string name = handler;
    if (!code)  // a reload took the namespace's code away after waits() said it had some
        return finish({}, failure{failure::kind::exception,
                                  name + ": the namespace has no code since the last reload",
                                  {}});
    auto& engine = js_engine::for_this_thread(limits_);
    auto envelope = engine.invoke(*code, (name + ".request").c_str(), ctx_json);
    boost::system::error_code ec;
    auto parsed = json::parse(envelope, ec);
    const auto* env = ec ? nullptr : parsed.if_object();
    if (env && env->contains("early"))
        return finish(json::serialize(json::object{{"ok", env->at("early")}}), std::nullopt);
    if (!env || !env->contains("ok") || !env->contains("stash"))
        return finish(std::move(envelope), std::nullopt);  // refused, threw, or stopped
    auto ctx = json::parse(ctx_json);
    const auto ns = std::string(ctx.at("info").at("channelNamespace").at("name").as_string());
    auto found = sources_.find(ns);
    if (found == sources_.end())  // check_plans refuses such code; kept for a reload race
        return finish({}, failure{failure::kind::exception,
                                  name + ": namespace '" + ns + "' has no data source",
                                  {}});
    const auto& ds = found->second;
    auto stash = env->at("stash");
    outbound_->call(ds, env->at("ok"),
                    [this, code = std::move(code), name, ctx = std::move(ctx),
                     stash = std::move(stash), finish = std::move(finish)](call_result r) mutable {
                        auto& o = ctx.as_object();
                        if (!r.error.empty()) {
                            // As AppSync does: response(ctx) decides, with ctx.error set and
                            // ctx.result null. The failure is counted and logged either way.
                            count({failure::kind::exception,
                                   name + "'s data source failed: " + r.error,
                                   {}});
                            o["error"] = json::object{
                                {"message", r.error},
                                {"type", r.type.empty() ? "DataSourceError" : r.type}};
                            r.result = nullptr;
                        }
                        o["result"] = std::move(r.result);
                        o["stash"] = std::move(stash);
                        // The transport thread's own engine: response() is bounded by the time
                        // limit, as every invocation is.
                        auto& here = js_engine::for_this_thread(limits_);
                        finish(
                            here.invoke(*code, (name + ".response").c_str(), json::serialize(ctx)),
                            std::nullopt);
                    });
}

void registry::on_publish_async(const invocation& inv,
                                std::function<void(result<publish_decision>)> done) {
    invocations_.fetch_add(1, std::memory_order_relaxed);
    auto ctx = build_context(inv);
    auto ids = *inv.ids;
    if (const auto* d = direct_for(inv.ns, operation::publish)) {
        auto payload = direct_lambda_payload(ctx);
        if (d->event) {
            // AppSync's EVENT type: the function is triggered and the events go out unchanged.
            outbound_->invoke_lambda(d->function, "Event", std::move(payload),
                                     [this](call_result r) {
                                         if (!r.error.empty())
                                             count({failure::kind::exception,
                                                    "direct integration (EVENT): " + r.error,
                                                    {}});
                                     });
            publish_decision all;
            for (std::size_t i = 0; i < inv.events->size(); ++i)
                all.broadcast.push_back({i, (*inv.events)[i]});
            return done(std::move(all));
        }
        return outbound_->invoke_lambda(
            d->function, "RequestResponse", std::move(payload),
            [this, ids = std::move(ids), done = std::move(done)](call_result r) {
                if (!r.error.empty()) {
                    failure f{failure::kind::exception, "direct integration: " + r.error, {}};
                    count(f);
                    return done(f);
                }
                auto decision = map_direct_publish(r.result, ids);
                if (!decision)
                    count(decision.error());
                done(std::move(decision));
            });
    }
    run_with_source(find(inv.ns), "onPublish", std::move(ctx),
                    [this, ids = std::move(ids), done = std::move(done)](
                        std::string envelope, std::optional<failure> failed) {
                        if (failed) {
                            count(*failed);
                            return done(std::move(*failed));
                        }
                        auto decision = map_publish(envelope, ids);
                        if (!decision)
                            count(decision.error());
                        done(std::move(decision));
                    });
}

void registry::on_subscribe_async(const invocation& inv,
                                  std::function<void(std::optional<failure>)> done) {
    invocations_.fetch_add(1, std::memory_order_relaxed);
    auto ctx = build_context(inv);
    if (const auto* d = direct_for(inv.ns, operation::subscribe)) {
        auto payload = direct_lambda_payload(ctx);
        if (d->event) {
            outbound_->invoke_lambda(d->function, "Event", std::move(payload),
                                     [this](call_result r) {
                                         if (!r.error.empty())
                                             count({failure::kind::exception,
                                                    "direct integration (EVENT): " + r.error,
                                                    {}});
                                     });
            return done(std::nullopt);
        }
        return outbound_->invoke_lambda(
            d->function, "RequestResponse", std::move(payload),
            [this, done = std::move(done)](call_result r) {
                std::optional<failure> refused;
                if (!r.error.empty())
                    refused =
                        failure{failure::kind::exception, "direct integration: " + r.error, {}};
                else
                    refused = map_direct_subscribe(r.result);
                if (refused)
                    count(*refused);
                done(std::move(refused));
            });
    }
    run_with_source(
        find(inv.ns), "onSubscribe", std::move(ctx),
        [this, done = std::move(done)](std::string envelope, std::optional<failure> failed) {
            auto refused = failed ? std::move(failed) : map_subscribe(envelope);
            if (refused)
                count(*refused);
            done(std::move(refused));
        });
}

handler_counters registry::counters() const noexcept {
    return {invocations_.load(std::memory_order_relaxed), failures_.load(std::memory_order_relaxed),
            timeouts_.load(std::memory_order_relaxed), memory_.load(std::memory_order_relaxed)};
}

}  // namespace eventcast::handlers

// Loading namespace code and running it: the file is read and checked here, compiled once per
// version on each thread's engine (js_engine.cpp), and its answer mapped by result_mapping.
#include "handlers/registry.hpp"

#include "core/log.hpp"

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
    if (opts.specs.empty())
        return std::unique_ptr<registry>();
    auto code = load(opts.specs, opts.namespaces, opts.limits);
    if (!code)
        return code.error();
    return std::unique_ptr<registry>(new registry(std::move(opts), std::move(*code)));
}

registry::registry(options opts, std::shared_ptr<const code_map> code)
    : limits_(opts.limits),
      namespaces_(std::move(opts.namespaces)),
      specs_(std::move(opts.specs)),
      code_(std::move(code)) {}

std::vector<std::string> registry::reload(const std::vector<std::string>& specs) {
    std::lock_guard lock(reload_mutex_);
    const auto& wanted = specs.empty() ? specs_ : specs;
    auto code = load(wanted, namespaces_, limits_);
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

handler_counters registry::counters() const noexcept {
    return {invocations_.load(std::memory_order_relaxed), failures_.load(std::memory_order_relaxed),
            timeouts_.load(std::memory_order_relaxed), memory_.load(std::memory_order_relaxed)};
}

}  // namespace eventcast::handlers

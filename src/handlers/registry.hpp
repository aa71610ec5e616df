// Namespace code (--namespace-code NS:FILE): which namespaces run handlers, their current file
// text, and running onPublish/onSubscribe on this thread's engine with the limits. Reload
// replaces every file at once or, when any fails to load, keeps the old code and says why.
//
// Thread-safe: find() and the operations may run on any thread at once; reload() may run
// concurrently with them (an invocation that found the old code finishes on it).
#pragma once

#include "handlers/context.hpp"
#include "handlers/data_source.hpp"
#include "handlers/js_engine.hpp"
#include "handlers/result_mapping.hpp"

#include <boost/system/result.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace eventcast::handlers {

/// "NS:FILE" split at the first ':'; nullopt when either side is empty.
std::optional<std::pair<std::string, std::string>> split_namespace_code(std::string_view spec);

struct handler_counters {
    std::uint64_t invocations = 0;
    std::uint64_t failures = 0;  // exceptions, limits, bad results (not refusals by the code)
    std::uint64_t timeouts = 0;
    std::uint64_t memory = 0;
};

class registry {
public:
    struct options {
        std::vector<std::string> specs;       // NS:FILE, as configured
        std::vector<std::string> namespaces;  // the defined namespaces (--namespace)
        engine_limits limits;
        std::vector<std::string> data_sources;    // --namespace-data-source specs
        std::vector<std::string> direct_lambdas;  // --namespace-direct-lambda specs
        outbound_setup outbound;                  // needed when either is given
    };

    /// Reads and checks every file on this thread's engine. Fails with every problem, one line
    /// each ("handler.js:3:7: SyntaxError: ..."). Null without problems when `specs`,
    /// `data_sources` and `direct_lambdas` are all empty.
    static boost::system::result<std::unique_ptr<registry>, std::vector<std::string>> create(
        options opts);

    /// Reads the files of `specs` again (the ones given at start when empty) and, when every
    /// one loads, serves the new code from the next invocation on. Returns the problems; the
    /// old code stays when there are any.
    std::vector<std::string> reload(const std::vector<std::string>& specs = {});

    /// The namespace's code, or null when it has none (the common case: no allocation).
    std::shared_ptr<const module_source> find(std::string_view ns) const;

    /// Runs `code`'s onPublish on this thread's engine. `inv.ids` are the events' identifiers.
    result<publish_decision> on_publish(const module_source& code, const invocation& inv);
    /// Runs `code`'s onSubscribe; nullopt accepts.
    std::optional<failure> on_subscribe(const module_source& code, const invocation& inv);

    /// Whether `op` on `ns` waits for a data source: a direct Lambda integration, or code
    /// exporting the handler as {request, response}. Such an operation goes through the *_async
    /// calls below instead of on_publish/on_subscribe.
    bool waits(std::string_view ns, operation op) const;
    /// The waiting publish: request(ctx) on this thread, the data source call on the transport
    /// thread, response(ctx) there too; or the direct integration's invocation. `done` runs once,
    /// on this thread (an EVENT integration, an early return, a refusal by request()) or on the
    /// transport thread. `inv`'s views need not outlive this call.
    void on_publish_async(const invocation& inv,
                          std::function<void(result<publish_decision>)> done);
    /// The waiting subscribe; nullopt accepts. Threads as on_publish_async.
    void on_subscribe_async(const invocation& inv,
                            std::function<void(std::optional<failure>)> done);

    handler_counters counters() const noexcept;
    const engine_limits& limits() const noexcept { return limits_; }

private:
    using code_map = std::map<std::string, std::shared_ptr<const module_source>, std::less<>>;
    registry(options opts, std::shared_ptr<const code_map> code);
    static boost::system::result<std::shared_ptr<const code_map>, std::vector<std::string>> load(
        const std::vector<std::string>& specs, const std::vector<std::string>& namespaces,
        const engine_limits& limits);
    void count(const failure& f);
    // Problems of code exported as {request, response} without a data source, or of a handler
    // both coded and DIRECT.
    std::vector<std::string> check_plans(const code_map& code) const;
    const direct_lambda* direct_for(std::string_view ns, operation op) const;
    // request(ctx), the call, response(ctx); `finish` gets response()'s envelope (or request()'s
    // when it refused, threw or returned early), or the data source's failure.
    void run_with_source(std::shared_ptr<const module_source> code, const char* handler,
                         std::string ctx_json,
                         std::function<void(std::string, std::optional<failure>)> finish);

    const engine_limits limits_;
    const std::vector<std::string> namespaces_;
    std::mutex reload_mutex_;  // one reload at a time
    std::vector<std::string> specs_;
    std::atomic<std::shared_ptr<const code_map>> code_;
    std::map<std::string, data_source, std::less<>> sources_;
    std::map<std::string, direct_lambda, std::less<>> direct_publish_, direct_subscribe_;
    std::unique_ptr<outbound> outbound_;  // null without data sources and direct integrations
    std::atomic<std::uint64_t> invocations_{0}, failures_{0}, timeouts_{0}, memory_{0};
};

}  // namespace eventcast::handlers

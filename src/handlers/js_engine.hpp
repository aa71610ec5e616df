// The JavaScript engine (SpiderMonkey 102, docs/decisions/007-handler-engine.md): one context
// per thread that runs handlers, created on its first use. Handler files are ES modules; the
// only module they may import is the built-in '@aws-appsync/utils' (util, runtime); no other
// import, no I/O, no timers exist for their code.
//
// Threading: a js_engine is used only on the thread that made it (engine::for_this_thread).
// The watchdog thread only requests interrupts. Exceptions never leave this API.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace eventcast::handlers {

struct engine_limits {
    std::chrono::milliseconds time{1000};         // per invocation
    std::size_t memory_bytes = 64 * 1024 * 1024;  // per context (GC heap)
};

/// A handler file's text, immutable once loaded; `generation` changes when a reload loads it
/// again, so per-thread engines compile each version once.
struct module_source {
    std::string file;  // as named in --namespace-code (messages say file:line:column)
    std::string text;
    std::uint64_t generation = 0;
    bool has_publish = false;  // set by the start-up check
    bool has_subscribe = false;
    bool publish_source = false;  // onPublish is {request, response}: it needs a data source
    bool subscribe_source = false;
};

class js_engine {
public:
    /// This thread's engine, made on first use; its invocations follow `limits` from now on.
    static js_engine& for_this_thread(const engine_limits& limits);
    virtual ~js_engine() = default;

    /// Compiles and evaluates `src` in this context. Nullopt when it loads; otherwise
    /// "file:line:column: message". Sets which handlers the module exports.
    virtual std::optional<std::string> check(module_source& src) = 0;

    /// Calls the export `function_name` ("onPublish" or "onSubscribe", or "onPublish.request",
    /// "onPublish.response", ... for handlers with a data source) of `src` with the context
    /// `ctx_json`. request's envelope is {"ok":<request>,"stash":<ctx.stash>} or, after
    /// runtime.earlyReturn(v), {"early":v}; a missing response returns ctx.result. Returns the
    /// envelope result_mapping.hpp reads; never throws.
    virtual std::string invoke(const module_source& src, const char* function_name,
                               std::string_view ctx_json) = 0;

    /// Invocations stopped by the time or memory limit on this engine (tests).
    virtual std::uint64_t interrupted() const noexcept = 0;
};

}  // namespace eventcast::handlers

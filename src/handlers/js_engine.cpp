// SpiderMonkey 102 behind js_engine: one JSContext per thread, the '@aws-appsync/utils' module
// from the resolve hook, a watchdog thread for the time limit and the context's GC heap limit
// for memory. Why this engine: docs/decisions/007-handler-engine.md.
#include "handlers/js_engine.hpp"

#include "core/base64.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"

// SpiderMonkey's headers are not clean under our warning set.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
#pragma GCC diagnostic ignored "-Woverloaded-virtual"
#include <js/Array.h>
#include <js/CallAndConstruct.h>
#include <js/CompilationAndEvaluation.h>
#include <js/Conversions.h>
#include <js/ErrorReport.h>
#include <js/Exception.h>
#include <js/Initialization.h>
#include <js/Interrupt.h>
#include <js/Modules.h>
#include <js/SourceText.h>
#include <js/Stack.h>
#include <jsapi.h>
#include <jsfriendapi.h>
#pragma GCC diagnostic pop

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace eventcast::handlers {

namespace {

using clock = std::chrono::steady_clock;

constexpr const char* utils_specifier = "@aws-appsync/utils";
constexpr const char* prelude_source =
#include "handlers/prelude.js.inc"
    ;

std::int64_t ticks(clock::time_point t) {
    return t.time_since_epoch().count();
}

void init_process() {
    static std::once_flag once;
    // Shut down at exit, after the main thread's thread-local engine is gone (thread-locals end
    // before atexit functions run) and once the server has joined its threads: the engine's
    // helper threads hold process-wide locks that may not be destroyed while in use.
    std::call_once(once, [] {
        if (!JS_Init()) {
            log::error("handlers: the JavaScript engine failed to initialise");
            return;
        }
        std::atexit([] { JS_ShutDown(); });
    });
}

class spidermonkey_engine;

// Requests an interrupt of every engine whose invocation is past its deadline. One thread for
// the process, started with the first engine; a 5 ms tick bounds how far past its limit a
// handler can run (the limit's unit is milliseconds, its default 1 s).
class watchdog {
public:
    static watchdog& get() {
        static watchdog w;
        return w;
    }
    void add(spidermonkey_engine* e) {
        std::lock_guard lock(mutex_);
        engines_.push_back(e);
        if (!thread_.joinable())
            thread_ = std::thread([this] { run(); });
    }
    void remove(spidermonkey_engine* e) {
        std::lock_guard lock(mutex_);
        std::erase(engines_, e);
    }
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        wake_.notify_all();
        if (thread_.joinable())
            thread_.join();
    }

private:
    void run();
    std::mutex mutex_;
    std::condition_variable wake_;
    std::vector<spidermonkey_engine*> engines_;
    std::thread thread_;
    bool stop_ = false;
};

JSClass global_class = {
    "global", JSCLASS_GLOBAL_FLAGS, &JS::DefaultGlobalClassOps, nullptr, nullptr, nullptr};

std::string to_utf8(JSContext* cx, JS::HandleString s) {
    JS::UniqueChars chars = JS_EncodeStringToUTF8(cx, s);
    return chars ? std::string(chars.get()) : std::string();
}

std::string arg_string(JSContext* cx, const JS::CallArgs& args, unsigned i) {
    if (i >= args.length())
        return {};
    JS::RootedString s(cx, JS::ToString(cx, args[i]));
    return s ? to_utf8(cx, s) : std::string();
}

bool set_string(JSContext* cx, const JS::CallArgs& args, std::string_view v) {
    JSString* s = JS_NewStringCopyUTF8N(cx, JS::UTF8Chars(v.data(), v.size()));
    if (!s)
        return false;
    args.rval().setString(s);
    return true;
}

// Standard base64 (with padding) from core's base64url encoder.
std::string base64_standard(std::string_view bytes) {
    auto s = core::base64url_encode(bytes);
    for (auto& c : s)
        c = c == '-' ? '+' : c == '_' ? '/' : c;
    while (s.size() % 4)
        s += '=';
    return s;
}

class spidermonkey_engine final : public js_engine {
public:
    explicit spidermonkey_engine(const engine_limits& limits) : limits_(limits) {
        init_process();
        cx_ = JS_NewContext(static_cast<std::uint32_t>(
            std::min<std::size_t>(limits.memory_bytes * 2, 0xffffffffu)));
        if (!cx_) {
            log::error("handlers: could not create a JavaScript context");
            return;
        }
        JS_SetContextPrivate(cx_, this);
        // The GC's hard cap, above the limit on_interrupt enforces, for allocations between ticks.
        JS_SetGCParameter(cx_, JSGC_MAX_BYTES,
                          static_cast<std::uint32_t>(
                              std::min<std::size_t>(limits.memory_bytes * 2, 0xffffffffu)));
        // Room for native frames below the handler's, even under ASan; threads have 8 MiB.
        JS_SetNativeStackQuota(cx_, 2 * 1024 * 1024);
        js::UseInternalJobQueues(cx_);
        if (!JS::InitSelfHostedCode(cx_)) {
            log::error("handlers: the JavaScript engine's self-hosted code failed to load");
            JS_DestroyContext(cx_);
            cx_ = nullptr;
            return;
        }
        JS_AddInterruptCallback(cx_, &spidermonkey_engine::on_interrupt);
        JS::SetModuleResolveHook(JS_GetRuntime(cx_), &spidermonkey_engine::resolve);
        JS::RealmOptions realm;
        global_.init(
            cx_, JS_NewGlobalObject(cx_, &global_class, nullptr, JS::FireOnNewGlobalHook, realm));
        invoke_.init(cx_);
        utils_.init(cx_);
        if (!global_ || !load_runtime()) {
            log::error("handlers: the handler runtime failed to load");
            return;
        }
        ready_ = true;
        watchdog::get().add(this);
    }

    ~spidermonkey_engine() override {
        if (!cx_)
            return;
        watchdog::get().remove(this);
        modules_.clear();
        invoke_.reset();
        utils_.reset();
        global_.reset();
        JS_DestroyContext(cx_);
    }

    std::optional<std::string> check(module_source& src) override {
        if (!ready_)
            return src.file + ":1:1: the JavaScript engine is not available";
        JSAutoRealm realm(cx_, global_);
        auto loaded = load(src);
        if (!loaded)
            return loaded.error;
        JS::RootedObject ns(cx_, *loaded.ns);
        bool has = false;
        src.has_publish = JS_HasProperty(cx_, ns, "onPublish", &has) && has;
        has = false;
        src.has_subscribe = JS_HasProperty(cx_, ns, "onSubscribe", &has) && has;
        // A handler with a data source is an object holding request() and response().
        auto is_pair = [&](const char* name) {
            JS::RootedValue v(cx_);
            return JS_GetProperty(cx_, ns, name, &v) && v.isObject() &&
                   !JS::IsCallable(&v.toObject());
        };
        src.publish_source = src.has_publish && is_pair("onPublish");
        src.subscribe_source = src.has_subscribe && is_pair("onSubscribe");
        return std::nullopt;
    }

    std::string invoke(const module_source& src, const char* function_name,
                       std::string_view ctx_json) override {
        if (!ready_)
            return R"({"threw":"the JavaScript engine is not available"})";
        JSAutoRealm realm(cx_, global_);
        auto loaded = load(src);
        if (!loaded)
            return envelope_threw(loaded.error);
        current_file_ = &src.file;
        JS::RootedValueArray<3> args(cx_);
        args[0].setObject(**loaded.ns);
        JSString* name = JS_NewStringCopyZ(cx_, function_name);
        JSString* ctx =
            name ? JS_NewStringCopyUTF8N(cx_, JS::UTF8Chars(ctx_json.data(), ctx_json.size()))
                 : nullptr;
        if (!ctx)
            return finish_failed();
        args[1].setString(name);
        args[2].setString(ctx);
        JS::RootedValue out(cx_);
        timed_out_.store(false, std::memory_order_relaxed);
        deadline_.store(ticks(clock::now() + limits_.time), std::memory_order_release);
        const bool ok = JS_CallFunctionValue(cx_, nullptr, invoke_, args, &out);
        deadline_.store(0, std::memory_order_release);
        if (!ok || !out.isString())
            return finish_failed();
        JS::RootedString s(cx_, out.toString());
        return to_utf8(cx_, s);
    }

    std::uint64_t interrupted() const noexcept override { return interrupted_; }
    // The GC's hard cap stays the first caller's; the limits on_interrupt checks follow this.
    void set_limits(const engine_limits& limits) noexcept { limits_ = limits; }

    // Called by the watchdog thread.
    void poll(std::int64_t now) {
        const auto d = deadline_.load(std::memory_order_acquire);
        if (d == 0)
            return;
        if (now > d)
            timed_out_.store(true, std::memory_order_release);
        JS_RequestInterruptCallback(cx_);
    }

private:
    struct loaded_module {
        JS::PersistentRootedObject* ns = nullptr;
        std::string error;
        explicit operator bool() const noexcept { return ns != nullptr; }
    };
    struct compiled {
        std::uint64_t generation = 0;
        std::unique_ptr<JS::PersistentRootedObject> ns;
    };

    // The watchdog interrupts running code every tick: past the deadline it stops, and past
    // the memory limit too (the GC's own JSGC_MAX_BYTES does not stop nursery-heavy code in
    // time, measured: a loop pushing objects ran for 20 s under a 48 MiB limit).
    static bool on_interrupt(JSContext* cx) {
        auto* self = static_cast<spidermonkey_engine*>(JS_GetContextPrivate(cx));
        if (!self)
            return true;
        if (self->timed_out_.load(std::memory_order_acquire))
            return false;
        if (JS_GetGCParameter(cx, JSGC_BYTES) > self->limits_.memory_bytes) {
            self->memory_out_ = true;
            return false;
        }
        return true;
    }

    static JSObject* resolve(JSContext* cx, JS::HandleValue, JS::HandleObject request) {
        auto* self = static_cast<spidermonkey_engine*>(JS_GetContextPrivate(cx));
        JS::RootedString spec(cx, JS::GetModuleRequestSpecifier(cx, request));
        const auto name = spec ? to_utf8(cx, spec) : std::string();
        if (self && name == utils_specifier)
            return self->utils_;
        JS_ReportErrorUTF8(cx, "cannot import '%s': handler code may import only '%s'",
                           name.c_str(), utils_specifier);
        return nullptr;
    }

    // util.log / console.*: into eventcast's log, with the handler file's name.
    static bool native_log(JSContext* cx, unsigned argc, JS::Value* vp) {
        auto args = JS::CallArgsFromVp(argc, vp);
        auto* self = static_cast<spidermonkey_engine*>(JS_GetContextPrivate(cx));
        const auto level = arg_string(cx, args, 0);
        const auto text = arg_string(cx, args, 1);
        const std::string_view file = self && self->current_file_ ? *self->current_file_ : "";
        if (level == "error")
            log::error("handlers [{}] {}", file, text);
        else if (level == "warn")
            log::warn("handlers [{}] {}", file, text);
        else if (level == "debug")
            log::debug("handlers [{}] {}", file, text);
        else
            log::info("handlers [{}] {}", file, text);
        args.rval().setUndefined();
        return true;
    }
    static bool native_auto_id(JSContext* cx, unsigned argc, JS::Value* vp) {
        auto args = JS::CallArgsFromVp(argc, vp);
        return set_string(cx, args, core::uuid_v4());
    }
    static bool native_random_hex(JSContext* cx, unsigned argc, JS::Value* vp) {
        auto args = JS::CallArgsFromVp(argc, vp);
        double n = 0;
        if (args.length() < 1 || !JS::ToNumber(cx, args[0], &n) || n < 1 || n > 64)
            n = 16;
        return set_string(cx, args, core::random_secret_hex(static_cast<std::size_t>(n)));
    }
    static bool native_b64e(JSContext* cx, unsigned argc, JS::Value* vp) {
        auto args = JS::CallArgsFromVp(argc, vp);
        return set_string(cx, args, base64_standard(arg_string(cx, args, 0)));
    }
    static bool native_b64d(JSContext* cx, unsigned argc, JS::Value* vp) {
        auto args = JS::CallArgsFromVp(argc, vp);
        auto decoded = core::base64_decode_any(arg_string(cx, args, 0));
        if (!decoded) {
            JS_ReportErrorUTF8(cx, "util.base64Decode: the text is not base64");
            return false;
        }
        return set_string(cx, args, *decoded);
    }

    bool load_runtime() {
        JSAutoRealm realm(cx_, global_);
        if (!JS::InitRealmStandardClasses(cx_))
            return false;
        JS::RootedObject natives(cx_, JS_NewPlainObject(cx_));
        if (!natives || !JS_DefineFunction(cx_, natives, "log", native_log, 2, 0) ||
            !JS_DefineFunction(cx_, natives, "autoId", native_auto_id, 0, 0) ||
            !JS_DefineFunction(cx_, natives, "randomHex", native_random_hex, 1, 0) ||
            !JS_DefineFunction(cx_, natives, "b64e", native_b64e, 1, 0) ||
            !JS_DefineFunction(cx_, natives, "b64d", native_b64d, 1, 0))
            return false;
        JS::CompileOptions opts(cx_);
        opts.setFileAndLine("eventcast:runtime", 1);
        JS::SourceText<mozilla::Utf8Unit> text;
        if (!text.init(cx_, prelude_source, std::strlen(prelude_source),
                       JS::SourceOwnership::Borrowed))
            return false;
        JS::RootedValue factory(cx_);
        if (!JS::Evaluate(cx_, opts, text, &factory) || !factory.isObject())
            return report_internal();
        JS::RootedValueArray<1> fargs(cx_);
        fargs[0].setObject(*natives);
        JS::RootedValue runtime(cx_);
        if (!JS_CallFunctionValue(cx_, nullptr, factory, fargs, &runtime) || !runtime.isObject())
            return report_internal();
        JS::RootedObject rt(cx_, &runtime.toObject());
        JS::RootedValue v(cx_);
        if (!JS_GetProperty(cx_, rt, "invoke", &v))
            return false;
        invoke_ = v;
        // The built-in module reads util and runtime from a global that exists only while it
        // evaluates; handler code never sees it.
        if (!JS_DefineProperty(cx_, global_, "__eventcastRuntime", rt, 0))
            return false;
        static constexpr const char* utils_text =
            "const rt = globalThis.__eventcastRuntime;\n"
            "export const util = rt.util;\nexport const runtime = rt.runtime;\n";
        JS::CompileOptions mopts(cx_);
        mopts.setFileAndLine(utils_specifier, 1);
        JS::SourceText<mozilla::Utf8Unit> mtext;
        if (!mtext.init(cx_, utils_text, std::strlen(utils_text), JS::SourceOwnership::Borrowed))
            return false;
        JS::RootedObject m(cx_, JS::CompileModule(cx_, mopts, mtext));
        if (!m || !evaluate(m))
            return report_internal();
        utils_ = m;
        bool deleted = false;
        JS::ObjectOpResult res;
        deleted = JS_DeleteProperty(cx_, global_, "__eventcastRuntime", res);
        return deleted;
    }

    bool report_internal() {
        log::error("handlers: the runtime failed: {}", pending_message());
        return false;
    }

    bool evaluate(JS::HandleObject m) {
        if (!JS::ModuleInstantiate(cx_, m))
            return false;
        JS::RootedValue rv(cx_);
        timed_out_.store(false, std::memory_order_relaxed);
        deadline_.store(ticks(clock::now() + limits_.time), std::memory_order_release);
        bool ok = JS::ModuleEvaluate(cx_, m, &rv);
        if (ok && rv.isObject()) {
            JS::RootedObject promise(cx_, &rv.toObject());
            js::RunJobs(cx_);
            ok = JS::ThrowOnModuleEvaluationFailure(cx_, promise, JS::ThrowModuleErrorsSync);
        }
        deadline_.store(0, std::memory_order_release);
        return ok;
    }

    // "file:line:column: message" of the pending exception (cleared), or why there is none.
    std::string pending_message(const std::string* file = nullptr) {
        if (!JS_IsExceptionPending(cx_)) {
            if (timed_out_.load())
                return (file ? *file + ":1:1: " : std::string()) +
                       "stopped: ran past the time limit";
            return (file ? *file + ":1:1: " : std::string()) +
                   "stopped: out of memory or an uncatchable error";
        }
        JS::ExceptionStack stack(cx_);
        if (!JS::StealPendingExceptionStack(cx_, &stack))
            return "an exception that could not be read";
        JS::ErrorReportBuilder report(cx_);
        if (!report.init(cx_, stack, JS::ErrorReportBuilder::NoSideEffects) || !report.report())
            return "an exception that could not be read";
        const auto* r = report.report();
        std::string where = r->filename ? r->filename : (file ? file->c_str() : "");
        const char* message = report.toStringResult().c_str();
        return where + ":" + std::to_string(r->lineno ? r->lineno : 1) + ":" +
               std::to_string(r->column + 1) + ": " + (message ? message : "error");
    }

    // An import of anything but the built-in module is refused at its own position.
    std::optional<std::string> check_imports(JS::HandleObject m, const std::string& file) {
        JS::RootedObject requested(cx_, JS::GetRequestedModules(cx_, m));
        if (!requested)
            return std::nullopt;
        std::uint32_t length = 0;
        if (!JS::GetArrayLength(cx_, requested, &length))
            return std::nullopt;
        for (std::uint32_t i = 0; i < length; ++i) {
            JS::RootedValue entry(cx_);
            if (!JS_GetElement(cx_, requested, i, &entry))
                continue;
            JS::RootedString spec(cx_, JS::GetRequestedModuleSpecifier(cx_, entry));
            const auto name = spec ? to_utf8(cx_, spec) : std::string();
            if (name == utils_specifier)
                continue;
            std::uint32_t line = 0, column = 0;
            JS::GetRequestedModuleSourcePos(cx_, entry, &line, &column);
            return file + ":" + std::to_string(line) + ":" + std::to_string(column + 1) +
                   ": cannot import '" + name + "': handler code may import only '" +
                   utils_specifier + "'";
        }
        return std::nullopt;
    }

    loaded_module load(const module_source& src) {
        auto found = modules_.find(src.file);
        if (found != modules_.end() && found->second.generation == src.generation)
            return {found->second.ns.get(), {}};
        if (found != modules_.end())
            modules_.erase(found);
        JS::CompileOptions opts(cx_);
        opts.setFileAndLine(src.file.c_str(), 1);
        JS::SourceText<mozilla::Utf8Unit> text;
        if (!text.init(cx_, src.text.data(), src.text.size(), JS::SourceOwnership::Borrowed))
            return {nullptr, pending_message(&src.file)};
        JS::RootedObject m(cx_, JS::CompileModule(cx_, opts, text));
        if (!m)
            return {nullptr, pending_message(&src.file)};
        if (auto bad_import = check_imports(m, src.file))
            return {nullptr, *bad_import};
        if (!evaluate(m)) {
            JS_GC(cx_);
            return {nullptr, pending_message(&src.file)};
        }
        compiled c;
        c.generation = src.generation;
        c.ns = std::make_unique<JS::PersistentRootedObject>(cx_, JS::GetModuleNamespace(cx_, m));
        auto* ns = c.ns.get();
        modules_[src.file] = std::move(c);
        return {ns, {}};
    }

    static std::string envelope_threw(std::string_view message) {
        std::string out = R"({"threw":")";
        for (char c : message) {
            if (c == '"' || c == '\\')
                out += '\\';
            if (static_cast<unsigned char>(c) < 0x20)
                continue;
            out += c;
        }
        out += "\"}";
        return out;
    }

    // The call failed without an envelope: the limits stopped it, or the engine itself failed.
    std::string finish_failed() {
        const bool timed_out = timed_out_.exchange(false);
        const bool memory = std::exchange(memory_out_, false);
        if (JS_IsExceptionPending(cx_)) {
            auto message = pending_message();
            JS_GC(cx_);
            return envelope_threw(message);
        }
        ++interrupted_;
        JS_GC(cx_);  // whatever the stopped handler had allocated
        return timed_out && !memory ? R"({"limit":"timeout"})" : R"({"limit":"memory"})";
    }

    friend class watchdog;
    engine_limits limits_;  // the latest caller's (for_this_thread)
    JSContext* cx_ = nullptr;
    bool ready_ = false;
    JS::PersistentRootedObject global_;
    JS::PersistentRootedValue invoke_;
    JS::PersistentRootedObject utils_;
    std::unordered_map<std::string, compiled> modules_;  // by file name
    const std::string* current_file_ = nullptr;
    std::atomic<std::int64_t> deadline_{0};  // steady ticks; 0: not running handler code
    std::atomic<bool> timed_out_{false};
    bool memory_out_ = false;  // set by on_interrupt, on this engine's thread
    std::uint64_t interrupted_ = 0;
};

void watchdog::run() {
    std::unique_lock lock(mutex_);
    while (!stop_) {
        wake_.wait_for(lock, std::chrono::milliseconds(5));
        const auto now = ticks(clock::now());
        for (auto* e : engines_)
            e->poll(now);
    }
}

}  // namespace

js_engine& js_engine::for_this_thread(const engine_limits& limits) {
    thread_local std::unique_ptr<spidermonkey_engine> engine;
    if (!engine)
        engine = std::make_unique<spidermonkey_engine>(limits);
    engine->set_limits(limits);
    return *engine;
}

}  // namespace eventcast::handlers

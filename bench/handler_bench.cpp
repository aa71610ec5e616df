// bench/handler_bench: one namespace handler invocation as a publish pays it, on one thread:
// the context built (handlers::build_context), onPublish run on SpiderMonkey, its answer mapped
// (handlers::map_publish). 5 events of about 100 bytes each, as eventcast-bench sends them.
//   build/release/bench/handler_bench [--benchmark_filter=...]
// items_per_second is invocations per second on one core. The parts are measured alone too, so
// a change shows where it moved the cost. The server-level figure beside a namespace without
// code is bench/handlers-throughput's.
#include "handlers/context.hpp"
#include "handlers/registry.hpp"
#include "handlers/result_mapping.hpp"

#include <benchmark/benchmark.h>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace eventcast::handlers;

std::string handler_file(const char* name) {
    return std::string(EVENTCAST_BENCH_HANDLERS) + "/" + name;
}

struct fixture {
    std::unique_ptr<registry> reg;
    std::vector<std::string> events;
    std::vector<std::string> ids;
    invocation inv;

    fixture() {
        registry::options o;
        o.specs = {"trivial:" + handler_file("trivial.js"),
                   "realistic:" + handler_file("realistic.js")};
        o.namespaces = {"trivial", "realistic"};
        auto r = registry::create(std::move(o));
        if (!r)
            throw std::runtime_error("handler files did not load: " + r.error().front());
        reg = std::move(*r);
        for (int i = 0; i < 5; ++i) {
            events.push_back(R"({"seq":)" + std::to_string(i) +
                             R"(,"user":"alice","text":"a message of about a hundred bytes, as )"
                             R"(the load generator sends","n":42})");
            ids.push_back("6f1c4b1e-4b7a-4d2e-9a3b-00000000000" + std::to_string(i));
        }
        inv.op = operation::publish;
        inv.events = &events;
        inv.ids = &ids;
        inv.identity_json = "null";
    }
    void aim(const char* ns, const char* channel) {
        inv.ns = ns;
        inv.channel = channel;
    }
};

// Never destroyed: the engine is thread_local and goes first at exit.
fixture& shared() {
    static auto* f = new fixture;
    return *f;
}

void invoke(benchmark::State& state, const char* ns, const char* channel) {
    auto& f = shared();
    f.aim(ns, channel);
    auto code = f.reg->find(ns);
    for (auto _ : state) {
        auto d = f.reg->on_publish(*code, f.inv);
        if (!d || d->broadcast.size() != 5) {
            state.SkipWithError("the handler did not broadcast the 5 events");
            break;
        }
        benchmark::DoNotOptimize(d);
    }
    state.SetItemsProcessed(state.iterations());
}

void BM_OnPublishTrivial(benchmark::State& s) {
    invoke(s, "trivial", "/trivial/room");
}
void BM_OnPublishRealistic(benchmark::State& s) {
    invoke(s, "realistic", "/realistic/room");
}

void BM_BuildContext(benchmark::State& state) {
    auto& f = shared();
    f.aim("trivial", "/trivial/room");
    for (auto _ : state)
        benchmark::DoNotOptimize(build_context(f.inv));
    state.SetItemsProcessed(state.iterations());
}

void BM_MapPublish(benchmark::State& state) {
    auto& f = shared();
    std::string envelope = R"({"ok":[)";
    for (std::size_t i = 0; i < f.events.size(); ++i)
        envelope += (i ? "," : "") + std::string(R"({"id":")") + f.ids[i] + R"(","payload":)" +
                    f.events[i] + "}";
    envelope += "]}";
    for (auto _ : state)
        benchmark::DoNotOptimize(map_publish(envelope, f.ids));
    state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_OnPublishTrivial);
BENCHMARK(BM_OnPublishRealistic);
BENCHMARK(BM_BuildContext);
BENCHMARK(BM_MapPublish);

}  // namespace

BENCHMARK_MAIN();

// Handler files on the real engine: loading and its errors, the util surface, the limits,
// reload. Files are written to a fresh temporary directory per test.
#include "handlers/registry.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

namespace eventcast::handlers {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

class RegistryTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() /
               ("eventcast-handlers-" + std::to_string(std::random_device{}()));
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }

    std::string write(const std::string& name, const std::string& text) {
        auto path = (dir_ / name).string();
        std::ofstream(path) << text;
        return path;
    }
    boost::system::result<std::unique_ptr<registry>, std::vector<std::string>> make(
        std::vector<std::string> specs, engine_limits limits = {}) {
        registry::options o;
        o.specs = std::move(specs);
        o.namespaces = {"default", "other"};
        o.limits = limits;
        return registry::create(std::move(o));
    }
    result<publish_decision> publish(registry& r, std::string_view ns,
                                     std::vector<std::string> events) {
        events_ = std::move(events);
        ids_.clear();
        for (std::size_t i = 0; i < events_.size(); ++i)
            ids_.push_back("id-" + std::to_string(i));
        invocation inv;
        inv.op = operation::publish;
        inv.channel = ns == "default" ? "/default/room" : "/other/room";
        inv.ns = ns;
        inv.events = &events_;
        inv.ids = &ids_;
        inv.identity_json = identity_;
        auto code = r.find(ns);
        EXPECT_TRUE(code);
        return r.on_publish(*code, inv);
    }
    std::optional<failure> subscribe(registry& r, std::string_view ns) {
        invocation inv;
        inv.op = operation::subscribe;
        inv.channel = "/default/*";
        inv.ns = ns;
        inv.identity_json = identity_;
        return r.on_subscribe(*r.find(ns), inv);
    }

    fs::path dir_;
    std::vector<std::string> events_, ids_;
    std::string identity_ = "null";
};

TEST_F(RegistryTest, NoCodeMeansNoRegistry) {
    auto r = make({});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->get(), nullptr);
}

TEST_F(RegistryTest, FilterAndTransformAsAwsDocumentsThem) {
    auto file = write("h.js", R"(import { util } from '@aws-appsync/utils'
export function onPublish(ctx) {
  return ctx.events
    .filter((e) => !e.payload.spam)
    .map(({ id, payload }) => ({ id, payload: { ...payload, msg: 'Hello!', ns: ctx.info.channelNamespace.name } }))
}
)");
    auto r = make({"default:" + file});
    ASSERT_TRUE(r) << r.error().front();
    auto d = publish(**r, "default", {R"({"a":1})", R"({"spam":true})", R"({"a":3})"});
    ASSERT_TRUE(d) << d.error().message;
    ASSERT_EQ(d->broadcast.size(), 2u);
    EXPECT_EQ(d->broadcast[0].index, 0u);
    EXPECT_EQ(json::parse(d->broadcast[0].payload), json::parse(R"({"a":1,"msg":"Hello!","ns":"default"})"));
    EXPECT_EQ(d->broadcast[1].index, 2u);
    EXPECT_EQ(r->get()->find("other"), nullptr);
}

TEST_F(RegistryTest, PerEventErrorAndUtilError) {
    auto file = write("h.js", R"(import { util } from '@aws-appsync/utils'
export function onPublish(ctx) {
  if (ctx.events.length > 2) util.error('at most 2 events')
  return ctx.events.map((e) => (e.payload.bad ? { id: e.id, error: 'bad event' } : e))
}
)");
    auto r = make({"default:" + file});
    ASSERT_TRUE(r);
    auto d = publish(**r, "default", {R"({"bad":true})", R"({"x":1})"});
    ASSERT_TRUE(d);
    ASSERT_EQ(d->failed.size(), 1u);
    EXPECT_EQ(d->failed[0].index, 0u);
    EXPECT_EQ(d->failed[0].message, "bad event");
    ASSERT_EQ(d->broadcast.size(), 1u);
    auto e = publish(**r, "default", {"1", "2", "3"});
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().what, failure::kind::error);
    EXPECT_EQ(e.error().message, "at most 2 events");
}

TEST_F(RegistryTest, OnSubscribeRefusesByIdentity) {
    auto file = write("h.js", R"(import { util } from '@aws-appsync/utils'
export function onSubscribe(ctx) {
  if (!ctx.identity || !(ctx.identity.groups || []).includes('admin')) util.unauthorized()
}
)");
    auto r = make({"default:" + file});
    ASSERT_TRUE(r);
    auto refused = subscribe(**r, "default");
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->what, failure::kind::unauthorized);
    identity_ = R"({"sub":"u1","groups":["admin"]})";
    EXPECT_FALSE(subscribe(**r, "default"));
}

TEST_F(RegistryTest, UtilSurface) {
    auto file = write("h.js", R"(import { util, runtime } from '@aws-appsync/utils'
export function onPublish(ctx) {
  const t = util.time.nowEpochMilliSeconds()
  return [{ id: ctx.events[0].id, payload: {
    b64: util.base64Encode('hello?'), back: util.base64Decode('aGVsbG8/'),
    url: util.urlEncode('a b&c'), unurl: util.urlDecode('a+b%26c'),
    id: util.autoId(), ulid: util.autoUlid(), iso: util.time.nowISO8601(),
    sec: util.time.epochMilliSecondsToSeconds(t) === Math.floor(t / 1000),
    parsed: util.time.parseISO8601ToEpochMilliSeconds('2024-01-02T03:04:05Z'),
    typ: util.typeOf([1]), nul: util.isNullOrEmpty(''),
  } }]
}
)");
    auto r = make({"default:" + file});
    ASSERT_TRUE(r);
    auto d = publish(**r, "default", {"{}"});
    ASSERT_TRUE(d) << d.error().message;
    auto p = json::parse(d->broadcast.at(0).payload).as_object();
    EXPECT_EQ(p.at("b64"), "aGVsbG8/");
    EXPECT_EQ(p.at("back"), "hello?");
    EXPECT_EQ(p.at("url"), "a+b%26c");
    EXPECT_EQ(p.at("unurl"), "a b&c");
    EXPECT_EQ(p.at("id").as_string().size(), 36u);
    EXPECT_EQ(p.at("ulid").as_string().size(), 26u);
    EXPECT_EQ(p.at("iso").as_string().back(), 'Z');
    EXPECT_EQ(p.at("sec"), true);
    EXPECT_EQ(p.at("parsed"), 1704164645000);
    EXPECT_EQ(p.at("typ"), "List");
    EXPECT_EQ(p.at("nul"), true);
}

TEST_F(RegistryTest, AMissingUtilFunctionFailsWithItsName) {
    auto file = write("h.js", R"(import { util } from '@aws-appsync/utils'
export const onPublish = (ctx) => { util.autoKsuid(); return ctx.events }
)");
    auto r = make({"default:" + file});
    ASSERT_TRUE(r);
    auto d = publish(**r, "default", {"1"});
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().what, failure::kind::exception);
    EXPECT_NE(d.error().message.find("util.autoKsuid"), std::string::npos) << d.error().message;
}

TEST_F(RegistryTest, SyntaxErrorsNameFileLineAndColumn) {
    auto file = write("broken.js", "export function onPublish(ctx) {\n  return ctx.events.map((e) => \n}\n");
    auto r = make({"default:" + file});
    ASSERT_FALSE(r);
    ASSERT_EQ(r.error().size(), 1u);
    EXPECT_EQ(r.error()[0].rfind(file + ":3:", 0), 0u) << r.error()[0];
    EXPECT_NE(r.error()[0].find("SyntaxError"), std::string::npos) << r.error()[0];
}

TEST_F(RegistryTest, ImportsOtherThanTheUtilsAreRefusedAtTheirPosition) {
    auto file = write("imp.js", "import { util } from '@aws-appsync/utils'\nimport fs from 'fs'\nexport const onPublish = (c) => c.events\n");
    auto r = make({"default:" + file});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error()[0].rfind(file + ":2:", 0), 0u) << r.error()[0];
    EXPECT_NE(r.error()[0].find("cannot import 'fs'"), std::string::npos) << r.error()[0];
}

TEST_F(RegistryTest, ConfigProblemsAreAllReported) {
    auto ok = write("ok.js", "export const onPublish = (c) => c.events\n");
    auto r = make({"nope:" + ok, "default:/nonexistent/file.js", "missing-colon"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().size(), 3u);
}

TEST_F(RegistryTest, NoIoIsAvailableToHandlerCode) {
    auto file = write("io.js", R"(export function onPublish(ctx) {
  const found = ['require', 'process', 'fetch', 'XMLHttpRequest', 'setTimeout', 'os', 'load', 'read', '__eventcastRuntime']
    .filter((n) => typeof globalThis[n] !== 'undefined')
  return [{ id: ctx.events[0].id, payload: found }]
}
)");
    auto r = make({"default:" + file});
    ASSERT_TRUE(r);
    auto d = publish(**r, "default", {"1"});
    ASSERT_TRUE(d);
    EXPECT_EQ(d->broadcast.at(0).payload, "[]");
}

TEST_F(RegistryTest, AnInfiniteLoopIsStoppedByTheTimeLimitAndOtherCodeKeepsServing) {
    auto loop = write("loop.js", "export function onPublish(ctx) { while (true) {} }\n");
    auto fine = write("fine.js", "export const onPublish = (ctx) => ctx.events\n");
    engine_limits limits;
    limits.time = std::chrono::milliseconds(50);
    auto r = make({"default:" + loop, "other:" + fine}, limits);
    ASSERT_TRUE(r);
    const auto start = std::chrono::steady_clock::now();
    auto d = publish(**r, "default", {"1"});
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().what, failure::kind::timeout);
    EXPECT_LT(took, std::chrono::seconds(5));
    EXPECT_EQ(r->get()->counters().timeouts, 1u);
    auto ok = publish(**r, "other", {"1"});
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->broadcast.size(), 1u);
}

TEST_F(RegistryTest, ReloadSwapsCodeAndKeepsTheOldOnFailure) {
    auto file = write("h.js", "export const onPublish = (c) => []\n");
    auto r = make({"default:" + file});
    ASSERT_TRUE(r);
    EXPECT_TRUE(publish(**r, "default", {"1"})->broadcast.empty());
    write("h.js", "export const onPublish = (c) => c.events\n");
    EXPECT_TRUE(r->get()->reload().empty());
    EXPECT_EQ(publish(**r, "default", {"1"})->broadcast.size(), 1u);
    write("h.js", "export const onPublish = (c) => {\n");
    auto problems = r->get()->reload();
    ASSERT_EQ(problems.size(), 1u);
    EXPECT_NE(problems[0].find("h.js:"), std::string::npos) << problems[0];
    EXPECT_EQ(publish(**r, "default", {"1"})->broadcast.size(), 1u);  // the old code
}

TEST_F(RegistryTest, ExceptionsAndUnserialisableResultsFailTheOperation) {
    auto file = write("h.js", R"(export function onPublish(ctx) {
  if (ctx.events.length === 1) throw new TypeError('boom')
  const a = {}; a.self = a
  return [{ id: ctx.events[0].id, payload: a }]
}
)");
    auto r = make({"default:" + file});
    ASSERT_TRUE(r);
    auto t = publish(**r, "default", {"1"});
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message.find("TypeError: boom"), std::string::npos) << t.error().message;
    auto c = publish(**r, "default", {"1", "2"});
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().what, failure::kind::exception);
    EXPECT_EQ(r->get()->counters().failures, 2u);
}

TEST_F(RegistryTest, TheMemoryLimitStopsAHandlerAndTheContextKeepsWorking) {
    auto file = write("mem.js", R"(export function onPublish(ctx) {
  if (ctx.events.length === 2) { const a = []; for (;;) a.push({ n: a.length, s: "x" + a.length }) }
  return ctx.events
}
)");
    engine_limits limits;
    limits.memory_bytes = 48 * 1024 * 1024;
    limits.time = std::chrono::seconds(8);
    auto r = make({"default:" + file}, limits);
    ASSERT_TRUE(r);
    auto d = publish(**r, "default", {"1", "2"});
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().what, failure::kind::memory) << d.error().message;
    auto ok = publish(**r, "default", {"1"});
    ASSERT_TRUE(ok) << ok.error().message;
}

}  // namespace
}  // namespace eventcast::handlers

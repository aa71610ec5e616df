// Tests src/api/event_api.cpp: namespace checks and publish (identifiers back,
// bodies out to subscribers), with a real broker and no sockets.
#include "api/event_api.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace eventcast::api {
namespace {

class recording_subscriber : public pubsub::subscriber {
public:
    void deliver(const pubsub::shared_bytes& prefix, const pubsub::shared_batch& batch) override {
        std::lock_guard lock(mutex_);
        for (const auto& body : batch->bodies)
            frames.push_back(*prefix + body);
    }
    std::mutex mutex_;
    std::vector<std::string> frames;
};

core::config make_config() {
    core::config cfg;
    cfg.api_keys = {{"good-key", std::nullopt},
                    {"expired-key", std::chrono::system_clock::now() - std::chrono::hours(1)}};
    cfg.namespaces = {"default", "chat"};
    cfg.history.defaults.count = 1'000'000;  // the resume race test outruns the default 100
    return cfg;
}

events::channel_path path(std::string_view text) {
    return *events::channel_path::parse(text);
}

class EventApiTest : public ::testing::Test {
protected:
    core::config cfg_ = make_config();
    pubsub::broker broker_;
    core::stats stats_;
    std::unique_ptr<auth::authorizer> authz_ = *auth::authorizer::create(cfg_, nullptr);
    event_api api_{cfg_, broker_, stats_, *authz_};
};

TEST_F(EventApiTest, ExposesItsParts) {
    EXPECT_EQ(&api_.config(), &cfg_);
    EXPECT_EQ(&api_.stats(), &stats_);
    // The broker is not handed out: its one figure callers need is the subscription count.
    auto sub = std::make_shared<recording_subscriber>();
    auto h = broker_.subscribe(*events::channel_pattern::parse("default/x"), sub,
                               std::make_shared<const std::string>("p"));
    EXPECT_EQ(api_.subscription_count(), broker_.subscription_count());
    EXPECT_EQ(api_.subscription_count(), 1u);
    broker_.unsubscribe(h);
}

TEST_F(EventApiTest, CheckNamespaceAcceptsConfiguredNamespaces) {
    ASSERT_TRUE(api_.check_namespace("default").has_value());
    ASSERT_TRUE(api_.check_namespace("chat").has_value());
    EXPECT_EQ((*api_.check_namespace("default"))->name, "default");
    EXPECT_EQ((*api_.check_namespace("chat"))->name, "chat");
}

TEST_F(EventApiTest, CheckNamespaceRefusesOthersAsUnauthorized) {
    for (std::string_view ns : {"bad", "Default", "BedrockChat", ""}) {
        auto r = api_.check_namespace(ns);
        ASSERT_FALSE(r.has_value()) << ns;
        EXPECT_EQ(r.error().kind, events::error_kind::unauthorized);
        EXPECT_EQ(r.error().message,
                  "namespace '" + std::string(ns) + "' is not defined on this server");
    }
}

TEST_F(EventApiTest, PublishReturnsOneUuidPerEventInOrder) {
    const std::regex uuid("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$");
    const auto outcome = api_.publish(path("default/a"), {"1", "2", "3"});
    ASSERT_EQ(outcome.identifiers.size(), 3u);
    std::set<std::string> distinct;
    for (const auto& id : outcome.identifiers) {
        EXPECT_TRUE(std::regex_match(id, uuid)) << id;
        distinct.insert(id);
    }
    EXPECT_EQ(distinct.size(), 3u);
    EXPECT_EQ(stats_.events_in.load(), 3u);
}

TEST_F(EventApiTest, PublishedBodiesReachSubscribersAsDataFrames) {
    auto exact = std::make_shared<recording_subscriber>();
    auto wild = std::make_shared<recording_subscriber>();
    auto other = std::make_shared<recording_subscriber>();
    auto p1 = std::make_shared<const std::string>(events::data_prefix("e1"));
    auto p2 = std::make_shared<const std::string>(events::data_prefix("w1"));
    auto p3 = std::make_shared<const std::string>(events::data_prefix("o1"));
    auto h1 = broker_.subscribe(*events::channel_pattern::parse("/default/room"), exact, p1);
    auto h2 = broker_.subscribe(*events::channel_pattern::parse("default/*"), wild, p2);
    auto h3 = broker_.subscribe(*events::channel_pattern::parse("chat/room"), other, p3);

    const std::vector<std::string> events{R"({"msg":"hi \"you\""})", "42"};
    const auto outcome = api_.publish(path("/default/room"), events);
    EXPECT_EQ(outcome.identifiers.size(), 2u);
    const auto epoch = api_.history().epoch();
    EXPECT_EQ(outcome.first, (events::position{epoch, 1}));
    const auto pos = [&](std::uint64_t seq) { return events::format_position({epoch, seq}); };
    EXPECT_EQ(
        exact->frames,
        (std::vector<std::string>{
            R"({"type":"data","id":"e1","event":"{\"msg\":\"hi \\\"you\\\"\"}","position":")" +
                pos(1) + "\"}",
            R"({"type":"data","id":"e1","event":"42","position":")" + pos(2) + "\"}"}));
    EXPECT_EQ(
        wild->frames,
        (std::vector<std::string>{
            R"({"type":"data","id":"w1","event":"{\"msg\":\"hi \\\"you\\\"\"}","position":")" +
                pos(1) + "\"}",
            R"({"type":"data","id":"w1","event":"42","position":")" + pos(2) + "\"}"}));
    EXPECT_TRUE(other->frames.empty());
    EXPECT_EQ(stats_.events_in.load(), 2u);
    EXPECT_EQ(stats_.frames_out.load(), 4u) << "2 subscriptions reached x 2 events";
    for (auto h : {h1, h2, h3})
        broker_.unsubscribe(h);
}

TEST_F(EventApiTest, PublishWithNoSubscribersStillReturnsIdentifiers) {
    const auto outcome = api_.publish(path("chat/empty"), {"null"});
    EXPECT_EQ(outcome.identifiers.size(), 1u);
    EXPECT_EQ(stats_.frames_out.load(), 0u);
}

// A cluster link that records what it is given and accepts or refuses it, like the NATS bridge
// connected or not.
class fake_link : public cluster_link {
public:
    events::result<route> publish(const events::channel_path& p, const pubsub::shared_batch& batch,
                                  std::function<void(events::position)> where) override {
        channels.push_back(p.str());
        batches.push_back(batch);
        if (refuse)
            return events::protocol_error::invalid("event 0 does not fit in one NATS message");
        if (!accept)
            return route::local;
        if (where)
            located.push_back(std::move(where));  // the bridge: once the stream acknowledged it
        return route::sent;
    }
    bool when_interested(std::string_view ns, std::function<void()> ready) override {
        asked.emplace_back(ns);
        if (interested)
            return true;
        waiting.push_back(std::move(ready));
        return false;
    }
    void run_blocking(std::function<void()> job) override { jobs.push_back(std::move(job)); }
    bool accept = true;
    bool refuse = false;  // as for an event over the NATS server's max_payload
    bool interested = true;
    std::vector<std::string> channels;
    std::vector<pubsub::shared_batch> batches;
    std::vector<std::function<void(events::position)>> located;
    std::vector<std::string> asked;
    std::vector<std::function<void()>> waiting;
    std::vector<std::function<void()>> jobs;
};

TEST_F(EventApiTest, WithAClusterPublishesGoThereAndReachSubscribersOnlyThroughDeliverLocal) {
    auto sub = std::make_shared<recording_subscriber>();
    auto prefix = std::make_shared<const std::string>(events::data_prefix("s"));
    auto h = broker_.subscribe(*events::channel_pattern::parse("/default/room"), sub, prefix);
    fake_link link;
    api_.attach_cluster(&link);

    const auto out = api_.publish(path("/default/room"), {R"({"a":1})", "2"});
    EXPECT_EQ(out.identifiers.size(), 2u);
    ASSERT_EQ(link.channels, (std::vector<std::string>{"default/room"}));
    ASSERT_EQ(link.batches[0]->bodies.size(), 2u);  // one batch, index order, encoded once
    // Open bodies: each node adds its own position when the batch comes back.
    EXPECT_EQ(link.batches[0]->bodies[0], events::data_body_open(R"({"a":1})"));
    EXPECT_TRUE(sub->frames.empty()) << "local subscribers wait for the batch to come back";

    // What the bridge does with the decoded message.
    api_.deliver_local(path("/default/room"),
                       std::make_shared<pubsub::event_batch>(*link.batches[0]));
    EXPECT_EQ(sub->frames.size(), 2u);

    link.accept = false;  // disconnected: delivered here at once, still offered to the link
    api_.publish(path("/default/room"), {"3"});
    EXPECT_EQ(sub->frames.size(), 3u);
    EXPECT_EQ(link.channels.size(), 2u);

    api_.attach_cluster(nullptr);  // single node again
    api_.publish(path("/default/room"), {"4"});
    EXPECT_EQ(sub->frames.size(), 4u);
    EXPECT_EQ(link.channels.size(), 2u);
    EXPECT_EQ(stats_.events_in.load(), 4u);
    EXPECT_EQ(stats_.frames_out.load(), 4u);
    broker_.unsubscribe(h);
}

// The seq of a data frame's position, from the frame text.
std::uint64_t seq_of(std::string_view frame) {
    const auto at = frame.rfind('-');
    return std::stoull(std::string(frame.substr(at + 1, frame.size() - at - 3)));
}

TEST_F(EventApiTest, ResumeUnderConcurrentPublishingHasNoGapAndNoDuplicate) {
    const auto room = path("/default/room");
    for (int i = 0; i < 20; ++i)
        api_.publish(room, {std::to_string(i)});
    std::atomic<bool> stop{false};
    std::thread publisher([&] {
        for (int i = 0; !stop && i < 100000; ++i)
            api_.publish(room, {std::to_string(i), "0"});
    });
    // Resume from 10 while the publisher runs; give it a head start.
    while (api_.history().newest("default").seq < 200)
        std::this_thread::yield();
    auto live = std::make_shared<recording_subscriber>();
    auto prefix = std::make_shared<const std::string>(events::data_prefix("r"));
    auto r = api_.subscribe_resume(*events::channel_pattern::parse("default/room"),
                                   {api_.history().epoch(), 10}, live, prefix);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    while (api_.history().newest("default").seq < r->missed.back().seq + 200)
        std::this_thread::yield();
    stop = true;
    publisher.join();
    broker_.unsubscribe(r->handle);

    std::vector<std::uint64_t> seqs;
    for (const auto& e : r->missed) {
        ASSERT_EQ(
            e.batch->bodies[e.index].find(events::format_position({api_.history().epoch(), e.seq})),
            e.batch->bodies[e.index].size() - 2 -
                events::format_position({api_.history().epoch(), e.seq}).size())
            << "a replayed body carries its own position";
        seqs.push_back(e.seq);
    }
    ASSERT_FALSE(live->frames.empty());
    for (const auto& f : live->frames)
        seqs.push_back(seq_of(f));
    ASSERT_GT(seqs.size(), 300u);
    for (std::size_t i = 0; i < seqs.size(); ++i)
        ASSERT_EQ(seqs[i], 11 + i) << "gap or duplicate at index " << i << " (" << r->missed.size()
                                   << " replayed, then live)";
}

TEST_F(EventApiTest, ResumeThatCannotBeServedSubscribesNothing) {
    cfg_.history.defaults.count = 2;  // read by the store created below
    pubsub::broker broker;
    event_api api(cfg_, broker, stats_, *authz_);
    const auto room = path("/default/room");
    for (int i = 0; i < 5; ++i)
        api.publish(room, {"1"});
    auto sub = std::make_shared<recording_subscriber>();
    auto prefix = std::make_shared<const std::string>(events::data_prefix("r"));
    const auto pattern = *events::channel_pattern::parse("default/room");
    auto old = api.subscribe_resume(pattern, {api.history().epoch(), 1}, sub, prefix);
    ASSERT_FALSE(old.has_value());
    EXPECT_EQ(old.error().kind, events::error_kind::resume_too_old);
    auto ahead = api.subscribe_resume(pattern, {api.history().epoch(), 6}, sub, prefix);
    ASSERT_FALSE(ahead.has_value());
    EXPECT_EQ(ahead.error().kind, events::error_kind::invalid_input);
    EXPECT_EQ(broker.subscription_count(), 0u);
    auto ok = api.subscribe_resume(pattern, {api.history().epoch(), 3}, sub, prefix);
    ASSERT_TRUE(ok.has_value());
    EXPECT_EQ(ok->missed.size(), 2u);
    EXPECT_EQ(broker.subscription_count(), 1u);
    broker.unsubscribe(ok->handle);
}

// ---- operations: rate limit -> authorize -> namespace -> publish/subscribe -> answer ------

events::credentials key(std::string_view k) {
    events::credentials c;
    c.add("x-api-key", k);
    return c;
}

publish_request publish_req(std::string_view channel, std::vector<std::string> evs) {
    publish_request r;
    r.channel = path(channel);
    r.raw_channel = std::string(channel);
    r.events = std::move(evs);
    return r;
}

TEST_F(EventApiTest, PublishOperationAuthorizesThenPublishesAndAnswersOnceAtOnce) {
    auto sub = std::make_shared<recording_subscriber>();
    auto h = broker_.subscribe(*events::channel_pattern::parse("default/*"), sub,
                               std::make_shared<const std::string>("P"));
    const auto creds = key("good-key");
    int answers = 0;
    api_.publish(publish_req("default/a", {"1", "2"}), caller{&creds, nullptr, nullptr},
                 [&](publish_result r) {
                     ++answers;
                     ASSERT_TRUE(r.has_value());
                     EXPECT_EQ(r->identifiers.size(), 2u);
                 });
    EXPECT_EQ(answers, 1) << "an API key needs no I/O: the answer comes before publish returns";
    EXPECT_EQ(sub->frames.size(), 2u);
    broker_.unsubscribe(h);
}

TEST_F(EventApiTest, PublishOperationRefusesBadKeysBeforeAnythingElse) {
    const auto bad = key("nope");
    std::optional<publish_result> got;
    auto req = publish_req("undefined/a", {"1"});
    req.invalid = events::protocol_error{events::error_kind::bad_request, "body is wrong"};
    api_.publish(std::move(req), caller{&bad, nullptr, nullptr},
                 [&](publish_result r) { got = std::move(r); });
    ASSERT_TRUE(got && !got->has_value());
    EXPECT_EQ(got->error().kind, events::error_kind::unauthorized)
        << "an unauthenticated caller learns nothing about the body or the namespaces";
    EXPECT_EQ(stats_.auth_failures.load(), 1u);
    EXPECT_EQ(stats_.events_in.load(), 0u);
}

TEST_F(EventApiTest, PublishOperationAnswersTheBodysErrorThenTheNamespaceAfterAuthorization) {
    const auto creds = key("good-key");
    std::optional<publish_result> got;
    auto req = publish_req("default/a", {"1"});
    req.invalid = events::protocol_error{events::error_kind::bad_request, "body is wrong"};
    api_.publish(std::move(req), caller{&creds, nullptr, nullptr},
                 [&](publish_result r) { got = std::move(r); });
    ASSERT_TRUE(got && !got->has_value());
    EXPECT_EQ(got->error().message, "body is wrong");
    got.reset();
    api_.publish(publish_req("undefined/a", {"1"}), caller{&creds, nullptr, nullptr},
                 [&](publish_result r) { got = std::move(r); });
    ASSERT_TRUE(got && !got->has_value());
    EXPECT_EQ(got->error().message, "namespace 'undefined' is not defined on this server");
    EXPECT_EQ(stats_.events_in.load(), 0u);
}

TEST_F(EventApiTest, APublishTheClusterRefusesIsAnsweredWithItsErrorAndDeliveredNowhere) {
    auto sub = std::make_shared<recording_subscriber>();
    auto h = broker_.subscribe(*events::channel_pattern::parse("default/*"), sub,
                               std::make_shared<const std::string>("P"));
    fake_link link;
    link.refuse = true;
    api_.attach_cluster(&link);
    const auto creds = key("good-key");
    std::optional<publish_result> got;
    api_.publish(publish_req("default/a", {"1"}), caller{&creds, nullptr, nullptr},
                 [&](publish_result r) { got = std::move(r); });
    ASSERT_TRUE(got && !got->has_value()) << "never acknowledged";
    EXPECT_EQ(got->error().kind, events::error_kind::invalid_input);
    EXPECT_EQ(got->error().message, "event 0 does not fit in one NATS message");
    EXPECT_TRUE(sub->frames.empty()) << "not delivered here either: the publisher was told";

    // The server's own events (chat) have nobody to refuse to: this node's subscribers get them.
    const auto out = api_.publish(path("/default/a"), {"2"});
    EXPECT_EQ(out.identifiers.size(), 1u);
    EXPECT_EQ(sub->frames.size(), 1u);
    api_.attach_cluster(nullptr);
    broker_.unsubscribe(h);
}

TEST_F(EventApiTest, PublishLocatedSaysWhetherThePositionComesLater) {
    events::publish_outcome out;
    int calls = 0;
    const auto count = [&](events::position) { ++calls; };
    EXPECT_FALSE(api_.publish_located(path("/default/a"), {"1"}, out, count));
    EXPECT_GT(out.first.seq, 0u) << "single node: known at once";

    fake_link link;
    api_.attach_cluster(&link);
    EXPECT_TRUE(api_.publish_located(path("/default/a"), {"2"}, out, count));
    EXPECT_EQ(out.first.seq, 0u);
    ASSERT_EQ(link.located.size(), 1u) << "the link is asked to locate it";
    link.accept = false;  // not sent: delivered here, so the answer is final
    EXPECT_FALSE(api_.publish_located(path("/default/a"), {"3"}, out, count));
    EXPECT_EQ(link.located.size(), 1u);
    EXPECT_EQ(calls, 0) << "never inside the call";
    api_.attach_cluster(nullptr);
}

TEST_F(EventApiTest, OperationsPastTheConnectionsRateAreRefusedAndCounted) {
    const auto creds = key("good-key");
    auth::token_bucket bucket(1, 1);  // one operation, then none for a second
    int ok = 0, limited = 0;
    for (int i = 0; i < 3; ++i)
        api_.publish(publish_req("default/a", {"1"}), caller{&creds, nullptr, &bucket},
                     [&](publish_result r) {
                         if (r)
                             ++ok;
                         else if (r.error().kind == events::error_kind::limit_exceeded)
                             ++limited;
                     });
    EXPECT_EQ(ok, 1);
    EXPECT_EQ(limited, 2);
    EXPECT_EQ(stats_.rate_limited_operations.load(), 2u);
    auto un = api_.unsubscribe(caller{nullptr, nullptr, &bucket}, "x", nullptr);
    ASSERT_FALSE(un.has_value());
    EXPECT_EQ(un.error().kind, events::error_kind::limit_exceeded);
}

TEST_F(EventApiTest, SubscribeOperationIsLiveBeforeItAnswersAndUnsubscribeEndsIt) {
    const auto creds = key("good-key");
    auto sub = std::make_shared<recording_subscriber>();
    subscribe_request req{*events::channel_pattern::parse("default/room"), "default/room",
                          std::nullopt, sub, std::make_shared<const std::string>("S")};
    std::optional<subscribe_result> got;
    api_.subscribe(std::move(req), caller{&creds, nullptr, nullptr}, [&](subscribe_result r) {
        EXPECT_EQ(broker_.subscription_count(), 1u) << "live in the broker before the answer";
        got = std::move(r);
    });
    ASSERT_TRUE(got && got->has_value());
    api_.publish(path("default/room"), {"1"});
    EXPECT_EQ(sub->frames.size(), 1u);
    ASSERT_TRUE(api_.unsubscribe(caller{}, "s", (*got)->handle).has_value());
    EXPECT_EQ(broker_.subscription_count(), 0u);
    auto unknown = api_.unsubscribe(caller{}, "s", nullptr);
    ASSERT_FALSE(unknown.has_value());
    EXPECT_EQ(unknown.error().message, "Unknown operation id s");
}

TEST_F(EventApiTest, SubscribeOperationRefusesUndefinedNamespacesAndSubscribesNothing) {
    const auto creds = key("good-key");
    auto sub = std::make_shared<recording_subscriber>();
    subscribe_request req{*events::channel_pattern::parse("nowhere/*"), "nowhere/*", std::nullopt,
                          sub, std::make_shared<const std::string>("S")};
    std::optional<subscribe_result> got;
    api_.subscribe(std::move(req), caller{&creds, nullptr, nullptr},
                   [&](subscribe_result r) { got = std::move(r); });
    ASSERT_TRUE(got && !got->has_value());
    EXPECT_EQ(got->error().kind, events::error_kind::unauthorized);
    EXPECT_EQ(broker_.subscription_count(), 0u);
}

TEST_F(EventApiTest, WithAClusterASubscribeIsAnsweredOnceTheLinkHasTheInterest) {
    const auto creds = key("good-key");
    fake_link link;
    link.interested = false;  // the node's first subscription in the namespace: NATS pending
    api_.attach_cluster(&link);
    auto sub = std::make_shared<recording_subscriber>();
    subscribe_request req{*events::channel_pattern::parse("default/room"), "default/room",
                          std::nullopt, sub, std::make_shared<const std::string>("S")};
    std::optional<subscribe_result> got;
    api_.subscribe(std::move(req), caller{&creds, nullptr, nullptr},
                   [&](subscribe_result r) { got = std::move(r); });
    EXPECT_FALSE(got) << "answered before NATS had the interest";
    EXPECT_EQ(link.asked, (std::vector<std::string>{"default"}));
    EXPECT_EQ(broker_.subscription_count(), 1u) << "live in the broker already";
    ASSERT_EQ(link.waiting.size(), 1u);
    link.waiting[0]();  // the link's thread, once NATS confirmed
    ASSERT_TRUE(got && got->has_value());

    // A resume reads history on the link's thread, never on the caller's.
    subscribe_request resume{*events::channel_pattern::parse("default/room"), "default/room",
                             events::position{api_.history().epoch(), 0}, sub,
                             std::make_shared<const std::string>("R")};
    std::optional<subscribe_result> resumed;
    link.interested = true;
    api_.subscribe(std::move(resume), caller{&creds, nullptr, nullptr},
                   [&](subscribe_result r) { resumed = std::move(r); });
    EXPECT_FALSE(resumed);
    ASSERT_EQ(link.jobs.size(), 1u);
    link.jobs[0]();
    ASSERT_TRUE(resumed && resumed->has_value()) << resumed->error().message;
    api_.attach_cluster(nullptr);
    broker_.unsubscribe((*got)->handle);
    broker_.unsubscribe((*resumed)->handle);
}

TEST_F(EventApiTest, ConnectAndChatAreAuthorizedWithTheirModes) {
    const auto good = key("good-key");
    const auto expired = key("expired-key");
    std::optional<auth::auth_result> a, b, c;
    api_.connect(caller{&good, nullptr, nullptr}, [&](auth::auth_result r) { a = std::move(r); });
    api_.connect(caller{&expired, nullptr, nullptr},
                 [&](auth::auth_result r) { b = std::move(r); });
    api_.authorize_chat(caller{&good, nullptr, nullptr},
                        [&](auth::auth_result r) { c = std::move(r); });
    ASSERT_TRUE(a && b && c);
    EXPECT_TRUE(a->has_value());
    EXPECT_FALSE(b->has_value());
    EXPECT_TRUE(c->has_value());
    EXPECT_EQ(stats_.auth_failures.load(), 1u);
}

}  // namespace
}  // namespace eventcast::api

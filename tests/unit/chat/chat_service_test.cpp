// The chat service with a scripted provider: event order and seq, coalescing, errors before and
// after the provider accepts, cancel, limits, and request validation.
#include "chat/chat_service.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <condition_variable>
#include <thread>

namespace eventcast::chat {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

// Records every event published to the chat channel.
struct recorder : pubsub::subscriber {
    std::mutex m;
    std::condition_variable cv;
    std::vector<json::object> events;
    void deliver(const pubsub::shared_bytes&, const pubsub::shared_batch& batch) override {
        std::lock_guard l(m);
        for (const auto& body : batch->bodies) {
            // body is `"<event as JSON string>","position":"<position>"}`
            auto frame = json::parse("{\"event\":" + body).as_object();
            events.push_back(json::parse(frame.at("event").as_string()).as_object());
        }
        cv.notify_all();
    }
    bool wait_for(std::size_t n, std::chrono::milliseconds t = 3s) {
        std::unique_lock l(m);
        return cv.wait_for(l, t, [&] { return events.size() >= n; });
    }
    std::vector<json::object> snapshot() {
        std::lock_guard l(m);
        return events;
    }
};

// A provider whose completions the test drives by hand.
struct scripted_provider : llm::provider {
    struct run : llm::completion {
        std::shared_ptr<llm::completion_sink> sink;
        llm::completion_request request;
        std::atomic<bool> cancelled{false};
        void cancel() override {
            if (!cancelled.exchange(true))
                sink->on_finished("cancelled", {});
        }
    };
    std::mutex m;
    std::vector<std::shared_ptr<run>> runs;
    std::string_view name() const override { return "scripted"; }
    std::string_view default_model() const override { return "scripted-1"; }
    std::shared_ptr<llm::completion> start(llm::completion_request r,
                                           std::shared_ptr<llm::completion_sink> s) override {
        auto x = std::make_shared<run>();
        x->sink = std::move(s);
        x->request = std::move(r);
        std::lock_guard l(m);
        runs.push_back(x);
        return x;
    }
    std::shared_ptr<run> last() {
        std::lock_guard l(m);
        return runs.back();
    }
};

struct answers {
    std::mutex m;
    std::condition_variable cv;
    std::vector<http_answer> got;
    chat_service::responder responder() {
        return [this](http_answer a) {
            std::lock_guard l(m);
            got.push_back(std::move(a));
            cv.notify_all();
        };
    }
    http_answer wait(std::chrono::milliseconds t = 3s) {
        std::unique_lock l(m);
        cv.wait_for(l, t, [&] { return !got.empty(); });
        return got.empty() ? http_answer{0, "", "none"} : got.front();
    }
    std::size_t count() {
        std::lock_guard l(m);
        return got.size();
    }
};

class ChatServiceTest : public ::testing::Test {
protected:
    void make(std::chrono::milliseconds coalesce = 0ms, std::size_t per_user = 4,
              std::string format = "typed") {
        cfg_.chat.coalesce = coalesce;
        cfg_.chat.event_format = std::move(format);
        cfg_.chat.max_streams_per_user = per_user;
        cfg_.api_keys = {{"test-key", std::nullopt}};
        authz_ = std::move(*auth::authorizer::create(cfg_, nullptr));
        api_ = std::make_unique<api::event_api>(cfg_, broker_, stats_, *authz_);
        std::map<std::string, std::unique_ptr<llm::provider>> providers;
        auto p = std::make_unique<scripted_provider>();
        provider_ = p.get();
        providers["scripted"] = std::move(p);
        svc_ = std::make_unique<chat_service>(cfg_, *api_, transport_, std::move(providers),
                                              "scripted");
        rec_ = std::make_shared<recorder>();
        auto pattern = events::channel_pattern::parse("BedrockChat/*");
        handle_ = broker_.subscribe(*pattern, rec_, std::make_shared<const std::string>("p"));
    }
    void TearDown() override {
        transport_.stop();
        if (handle_)
            broker_.unsubscribe(handle_);
    }

    core::config cfg_;
    pubsub::broker broker_;
    core::stats stats_;
    aws::transport transport_;
    std::unique_ptr<auth::authorizer> authz_;
    std::unique_ptr<api::event_api> api_;
    scripted_provider* provider_ = nullptr;
    std::unique_ptr<chat_service> svc_;
    std::shared_ptr<recorder> rec_;
    pubsub::subscription_handle handle_ = nullptr;
};

TEST_F(ChatServiceTest, PublishesStartDeltasEndWithGaplessSeqAndAnswersOnAccept) {
    make();
    answers a;
    svc_->start(R"({"userId":"alice","prompt":"hi","system":"be brief","maxTokens":9})",
                a.responder());
    auto run = provider_->last();
    EXPECT_EQ(run->request.system, "be brief");
    EXPECT_EQ(run->request.max_tokens, 9);
    EXPECT_EQ(run->request.model, "scripted-1");
    EXPECT_EQ(a.count(), 0u) << "no answer before the provider accepts";
    run->sink->on_accepted();
    auto ans = a.wait();
    EXPECT_EQ(ans.status, 200u);
    EXPECT_EQ(json::parse(ans.body).at("channel").as_string(), "/BedrockChat/alice");
    run->sink->on_text("Hel");
    run->sink->on_text("lo");
    run->sink->on_finished("end_turn", {3, 2});
    ASSERT_TRUE(rec_->wait_for(4));
    auto ev = rec_->snapshot();
    ASSERT_EQ(ev.size(), 4u);
    const char* types[] = {"start", "delta", "delta", "end"};
    for (std::size_t i = 0; i < ev.size(); ++i) {
        EXPECT_EQ(ev[i].at("type").as_string(), types[i]);
        EXPECT_EQ(ev[i].at("seq").as_int64(), static_cast<std::int64_t>(i));
    }
    EXPECT_EQ(ev[1].at("data").as_string(), "Hel");
    EXPECT_EQ(ev[3].at("usage").at("outputTokens").as_int64(), 2);
    auto st = json::parse(svc_->status(json::parse(ans.body).at("streamId").as_string()).body);
    EXPECT_EQ(st.at("text").as_string(), "Hello");
    EXPECT_EQ(st.at("status").as_string(), "completed");
    EXPECT_EQ(svc_->active_streams(), 0u);
}

TEST_F(ChatServiceTest, CoalescesWithinTheWindowKeepingTextAndOrder) {
    make(50ms);
    answers a;
    svc_->start(R"({"userId":"bob","prompt":"hi"})", a.responder());
    auto run = provider_->last();
    run->sink->on_accepted();
    std::string expected;
    for (int i = 0; i < 100; ++i) {
        const auto piece = std::to_string(i) + " ";
        expected += piece;
        run->sink->on_text(piece);
    }
    run->sink->on_finished("end_turn", {});
    ASSERT_TRUE(rec_->wait_for(3));
    auto ev = rec_->snapshot();
    std::string text;
    for (std::size_t i = 0; i < ev.size(); ++i) {
        EXPECT_EQ(ev[i].at("seq").as_int64(), static_cast<std::int64_t>(i));
        if (ev[i].at("type").as_string() == "delta")
            text += ev[i].at("data").as_string();
    }
    EXPECT_EQ(text, expected);
    EXPECT_LE(ev.size(), 4u) << "100 pieces in one window should be one or two deltas";
}

TEST_F(ChatServiceTest, RefusalBeforeTheStreamIsAnHttpErrorAndNoEvents) {
    make();
    answers a;
    svc_->start(R"({"userId":"carol","prompt":"hi"})", a.responder());
    provider_->last()->sink->on_failed({"ThrottlingException", "slow down", 429, true});
    auto ans = a.wait();
    EXPECT_EQ(ans.status, 429u);
    EXPECT_EQ(ans.error_type, "ThrottlingException");
    std::this_thread::sleep_for(50ms);
    EXPECT_TRUE(rec_->snapshot().empty());
    EXPECT_EQ(svc_->active_streams(), 0u);
}

TEST_F(ChatServiceTest, FailureMidStreamIsAnErrorEventAfterTheDeltas) {
    make();
    answers a;
    svc_->start(R"({"userId":"dan","prompt":"hi"})", a.responder());
    auto run = provider_->last();
    run->sink->on_accepted();
    run->sink->on_text("partial");
    run->sink->on_failed({"ModelStreamErrorException", "model broke", 0, false});
    ASSERT_TRUE(rec_->wait_for(3));
    auto ev = rec_->snapshot();
    EXPECT_EQ(ev.back().at("type").as_string(), "error");
    EXPECT_EQ(ev.back().at("errorType").as_string(), "ModelStreamErrorException");
    EXPECT_EQ(ev.back().at("seq").as_int64(), 2);
    // Nothing after the end, even if a confused provider keeps talking.
    run->sink->on_text("late");
    run->sink->on_finished("end_turn", {});
    std::this_thread::sleep_for(30ms);
    EXPECT_EQ(rec_->snapshot().size(), 3u);
}

TEST_F(ChatServiceTest, CancelGoesToTheProviderAndEndsCancelled) {
    make();
    answers a;
    svc_->start(R"({"userId":"eve","prompt":"hi"})", a.responder());
    auto run = provider_->last();
    run->sink->on_accepted();
    const auto id = std::string(json::parse(a.wait().body).at("streamId").as_string());
    EXPECT_EQ(svc_->cancel(id).status, 202u);
    EXPECT_TRUE(run->cancelled);
    ASSERT_TRUE(rec_->wait_for(2));
    EXPECT_EQ(rec_->snapshot().back().at("stopReason").as_string(), "cancelled");
    EXPECT_EQ(svc_->cancel("s-unknown").status, 404u);
}

TEST_F(ChatServiceTest, WaitAnswersAtTheEndWithTheWholeText) {
    make();
    answers a;
    svc_->start(R"({"userId":"fred","prompt":"hi","wait":true})", a.responder());
    auto run = provider_->last();
    run->sink->on_accepted();
    run->sink->on_text("all of it");
    EXPECT_EQ(a.count(), 0u);
    run->sink->on_finished("max_tokens", {1, 3});
    auto body = json::parse(a.wait().body);
    EXPECT_EQ(body.at("text").as_string(), "all of it");
    EXPECT_EQ(body.at("stopReason").as_string(), "max_tokens");
}

TEST_F(ChatServiceTest, LimitsStreamsPerUserAndFreesTheSlotAtTheEnd) {
    make(0ms, 1);
    answers first;
    answers second;
    svc_->start(R"({"userId":"gil","prompt":"1"})", first.responder());
    svc_->start(R"({"userId":"gil","prompt":"2"})", second.responder());
    EXPECT_EQ(second.wait().status, 429u);
    provider_->last()->sink->on_accepted();
    provider_->last()->sink->on_finished("end_turn", {});
    answers third;
    svc_->start(R"({"userId":"gil","prompt":"3"})", third.responder());
    EXPECT_EQ(provider_->runs.size(), 2u);
}

TEST_F(ChatServiceTest, ValidatesTheRequest) {
    make();
    const std::vector<std::pair<std::string, std::string>> bad = {
        {"[]", "request body is an array"},
        {R"({"prompt":"x"})", "'userId' is missing"},
        {R"({"userId":"no/slash","prompt":"x"})", "not a channel segment"},
        {R"({"userId":"u"})", "'prompt' is missing"},
        {R"({"userId":"u","messages":[{"role":"assistant","content":"x"}]})",
         "must end with a user message"},
        {R"({"userId":"u","prompt":"x","provider":"other"})", "available: scripted"},
        {R"({"userId":"u","prompt":"x","temperature":"hot"})", "'temperature'"},
        {R"({"userId":"u","prompt":"x","wait":"yes"})", "'wait'"},
    };
    for (const auto& [body, needle] : bad) {
        answers a;
        svc_->start(body, a.responder());
        auto ans = a.wait();
        EXPECT_EQ(ans.status, 400u) << body;
        EXPECT_NE(ans.body.find(needle), std::string::npos) << body << " -> " << ans.body;
    }
    EXPECT_TRUE(provider_->runs.empty());
}

TEST_F(ChatServiceTest, PassesAConversationThrough) {
    make();
    answers a;
    svc_->start(R"({"userId":"hal","messages":[{"role":"user","content":"a"},)"
                R"({"role":"assistant","content":"b"}],"prompt":"c"})",
                a.responder());
    const auto& msgs = provider_->last()->request.messages;
    ASSERT_EQ(msgs.size(), 3u);
    EXPECT_EQ(msgs[1].role, "assistant");
    EXPECT_EQ(msgs[2].text, "c");
}

// The AWS sample's page renders JSON.parse(event).data of every event: each must be exactly
// {"data":"<chunk>"}, with nothing before, after or on failure that would be an empty row.
TEST_F(ChatServiceTest, SampleFormatPublishesOnlyDataChunks) {
    make(0ms, 4, "sample");
    answers a;
    svc_->start(R"({"userId":"sam","prompt":"hi"})", a.responder());
    auto run = provider_->last();
    run->sink->on_accepted();
    auto ans = json::parse(a.wait().body);
    EXPECT_EQ(ans.at("eventFormat").as_string(), "sample");
    run->sink->on_text("Par");
    run->sink->on_text("is.");
    run->sink->on_finished("end_turn", {3, 2});
    ASSERT_TRUE(rec_->wait_for(2));
    std::this_thread::sleep_for(30ms);
    auto ev = rec_->snapshot();
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(json::serialize(ev[0]), R"({"data":"Par"})");
    EXPECT_EQ(json::serialize(ev[1]), R"({"data":"is."})");
    auto st = json::parse(svc_->status(ans.at("streamId").as_string()).body);
    EXPECT_EQ(st.at("text").as_string(), "Paris.");
    EXPECT_EQ(st.at("status").as_string(), "completed");
}

TEST_F(ChatServiceTest, SampleFormatFailureMidStreamPublishesNoErrorEvent) {
    make(0ms, 4, "sample");
    answers a;
    svc_->start(R"({"userId":"sam","prompt":"hi"})", a.responder());
    auto run = provider_->last();
    run->sink->on_accepted();
    run->sink->on_text("partial");
    run->sink->on_failed({"ModelStreamErrorException", "model broke", 0, false});
    ASSERT_TRUE(rec_->wait_for(1));
    std::this_thread::sleep_for(30ms);
    auto ev = rec_->snapshot();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(json::serialize(ev[0]), R"({"data":"partial"})");
    auto st = json::parse(svc_->status(json::parse(a.wait().body).at("streamId").as_string()).body);
    EXPECT_EQ(st.at("error").at("errorType").as_string(), "ModelStreamErrorException");
}

TEST_F(ChatServiceTest, EventFormatInTheBodyOverridesTheServerDefault) {
    make();  // typed by default
    answers a;
    svc_->start(R"({"userId":"sam","prompt":"hi","eventFormat":"sample"})", a.responder());
    auto run = provider_->last();
    run->sink->on_accepted();
    run->sink->on_text("x");
    run->sink->on_finished("end_turn", {});
    ASSERT_TRUE(rec_->wait_for(1));
    std::this_thread::sleep_for(30ms);
    ASSERT_EQ(rec_->snapshot().size(), 1u);
    EXPECT_EQ(json::serialize(rec_->snapshot()[0]), R"({"data":"x"})");

    core::chat_config sample_cfg;
    sample_cfg.event_format = "sample";
    auto typed =
        parse_chat_request(R"({"userId":"u","prompt":"p","eventFormat":"typed"})", sample_cfg);
    ASSERT_TRUE(typed);
    EXPECT_EQ(typed->format, event_format::typed);
    auto bad = parse_chat_request(R"({"userId":"u","prompt":"p","eventFormat":"raw"})", cfg_.chat);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().status, 400u);
    EXPECT_NE(bad.error().body.find("eventFormat"), std::string::npos);
}

}  // namespace
}  // namespace eventcast::chat

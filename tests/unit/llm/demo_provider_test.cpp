// The demo model: deterministic answers, streamed on the llm thread, cancellable.
#include "llm/demo_provider.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

namespace eventcast::llm {
namespace {

struct recording_sink : completion_sink {
    std::mutex m;
    std::condition_variable cv;
    bool accepted = false;
    std::string text;
    int pieces = 0;
    std::optional<std::string> stop;
    token_usage usage;
    void on_accepted() override {
        std::lock_guard l(m);
        accepted = true;
    }
    void on_text(std::string_view t) override {
        std::lock_guard l(m);
        text += t;
        ++pieces;
    }
    void on_finished(std::string reason, token_usage u) override {
        std::lock_guard l(m);
        stop = reason;
        usage = u;
        cv.notify_all();
    }
    void on_failed(provider_error) override { ADD_FAILURE() << "the demo model never fails"; }
    bool wait_done(std::chrono::milliseconds t = std::chrono::seconds(5)) {
        std::unique_lock l(m);
        return cv.wait_for(l, t, [&] { return stop.has_value(); });
    }
};

completion_request ask(std::string prompt, std::optional<std::int64_t> max_tokens = {}) {
    completion_request r;
    r.messages.push_back({"user", std::move(prompt)});
    r.max_tokens = max_tokens;
    return r;
}

TEST(DemoProviderTest, AnswerIsDeterministicLabelledAndCappedByMaxTokens) {
    const auto a = demo_provider::answer_for(ask("hello world", 10));
    EXPECT_EQ(a, demo_provider::answer_for(ask("hello world", 10)));
    EXPECT_EQ(a.rfind("[demo model] You said: hello world", 0), 0u) << a;
    std::size_t words = 1;
    for (char c : a)
        words += c == ' ';
    EXPECT_EQ(words, 10u);
}

TEST(DemoProviderTest, ChunksJoinToTheAnswerForAnyChunkSize) {
    const auto req = ask("split me into pieces please", 30);
    for (std::size_t per : {1u, 2u, 3u, 7u, 100u}) {
        std::string joined;
        for (const auto& c : demo_provider::chunks_for(req, per))
            joined += c;
        EXPECT_EQ(joined, demo_provider::answer_for(req)) << per;
    }
}

TEST(DemoProviderTest, StreamsEveryChunkThenEndTurn) {
    aws::transport t;
    demo_provider p(t, std::chrono::milliseconds(1), 2);
    auto sink = std::make_shared<recording_sink>();
    auto c = p.start(ask("stream it", 12), sink);
    ASSERT_TRUE(sink->wait_done());
    EXPECT_TRUE(sink->accepted);
    EXPECT_EQ(*sink->stop, "end_turn");
    EXPECT_EQ(sink->text, demo_provider::answer_for(ask("stream it", 12)));
    EXPECT_EQ(sink->pieces, 6);
    EXPECT_EQ(sink->usage.output_tokens, 6);
}

TEST(DemoProviderTest, CancelEndsWithCancelled) {
    aws::transport t;
    demo_provider p(t, std::chrono::milliseconds(50));
    auto sink = std::make_shared<recording_sink>();
    auto c = p.start(ask("long", 10000), sink);
    std::this_thread::sleep_for(std::chrono::milliseconds(120));
    c->cancel();
    ASSERT_TRUE(sink->wait_done());
    EXPECT_EQ(*sink->stop, "cancelled");
    EXPECT_LT(sink->pieces, 100);
}

TEST(DemoProviderTest, StoppingTheTransportRunsNoMoreTimers) {
    auto sink = std::make_shared<recording_sink>();
    {
        aws::transport t;
        demo_provider p(t, std::chrono::milliseconds(20));
        p.start(ask("x", 1000), sink);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        t.stop();
    }
    std::lock_guard l(sink->m);
    EXPECT_LT(sink->pieces, 1000);
}

}  // namespace
}  // namespace eventcast::llm

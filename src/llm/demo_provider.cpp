// Demo model: the answer is a pure function of the request, and chunks are timers on the llm
// thread, so 10,000 demo streams cost timers, not threads.
#include "llm/demo_provider.hpp"

#include <atomic>
#include <mutex>
#include <sstream>

namespace eventcast::llm {

namespace {

constexpr const char* filler[] = {
    "eventcast", "streams",       "each",  "chunk",     "of", "this",
    "answer",    "into",          "your",  "channel",   "as", "an",
    "AppSync",   "Events",        "data",  "frame,",    "in", "order",
    "and",       "without",       "gaps.", "Subscribe", "to", "BedrockChat/<user>",
    "or",        "BedrockChat/*", "to",    "watch",     "it", "arrive."};

struct demo_run final : completion, std::enable_shared_from_this<demo_run> {
    aws::transport& t;
    std::shared_ptr<completion_sink> sink;
    std::vector<std::string> chunks;
    std::chrono::milliseconds pace;
    std::size_t next = 0;
    std::int64_t input_tokens = 0;
    std::atomic<bool> cancelled{false};
    bool done = false;  // llm thread only

    demo_run(aws::transport& tr, std::shared_ptr<completion_sink> s, std::vector<std::string> c,
             std::chrono::milliseconds p)
        : t(tr), sink(std::move(s)), chunks(std::move(c)), pace(p) {}

    void cancel() override {
        cancelled = true;
        t.post([self = shared_from_this()] { self->step(); });
    }

    void step() {
        if (done)
            return;
        if (cancelled) {
            done = true;
            sink->on_finished("cancelled", {input_tokens, static_cast<std::int64_t>(next)});
            return;
        }
        if (next == chunks.size()) {
            done = true;
            sink->on_finished("end_turn", {input_tokens, static_cast<std::int64_t>(chunks.size())});
            return;
        }
        sink->on_text(chunks[next++]);
        t.schedule(pace, [self = shared_from_this()] { self->step(); });
    }
};

std::vector<std::string> words_of(std::string_view s) {
    std::vector<std::string> out;
    std::istringstream in{std::string(s)};
    std::string w;
    while (in >> w)
        out.push_back(w);
    return out;
}

}  // namespace

std::vector<std::string> demo_provider::chunks_for(const completion_request& request,
                                                   std::size_t words_per_chunk) {
    std::string prompt = request.messages.empty() ? "" : request.messages.back().text;
    auto prompt_words = words_of(prompt);
    if (prompt_words.size() > 12)
        prompt_words.resize(12);
    std::vector<std::string> words = {"[demo", "model]", "You", "said:"};
    for (auto& w : prompt_words)
        words.push_back(w);
    const std::size_t total = static_cast<std::size_t>(request.max_tokens.value_or(48));
    for (std::size_t i = 0; words.size() < total; ++i)
        words.push_back(filler[i % (sizeof(filler) / sizeof(filler[0]))]);
    if (words.size() > total)
        words.resize(std::max<std::size_t>(total, 1));
    std::vector<std::string> chunks;
    const std::size_t per = std::max<std::size_t>(words_per_chunk, 1);
    for (std::size_t i = 0; i < words.size(); i += per) {
        std::string c;
        for (std::size_t j = i; j < std::min(words.size(), i + per); ++j)
            c += (j == 0 ? "" : " ") + words[j];
        chunks.push_back(std::move(c));
    }
    return chunks;
}

std::string demo_provider::answer_for(const completion_request& request) {
    std::string out;
    for (const auto& c : chunks_for(request, 1))
        out += c;
    return out;
}

std::shared_ptr<completion> demo_provider::start(completion_request request,
                                                 std::shared_ptr<completion_sink> sink) {
    auto run = std::make_shared<demo_run>(transport_, std::move(sink),
                                          chunks_for(request, words_per_chunk_), pace_);
    for (const auto& m : request.messages)
        run->input_tokens += static_cast<std::int64_t>(words_of(m.text).size());
    transport_.post([run] {
        if (run->cancelled) {
            run->step();
            return;
        }
        run->sink->on_accepted();
        run->step();
    });
    return run;
}

}  // namespace eventcast::llm

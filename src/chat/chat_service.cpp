// Chat streams. Each stream is a completion_sink: provider callbacks (llm thread) publish events
// through the same event_api as any client publish, so wildcard subscribers, limits and the
// broker's ordering all apply. A stream's mutex orders its events; seq is assigned under it.
#include "chat/chat_service.hpp"

#include "core/ids.hpp"
#include "core/json_kind.hpp"
#include "core/log.hpp"
#include "events/channel.hpp"

#include <boost/json.hpp>

namespace eventcast::chat {

namespace json = boost::json;

namespace {

http_answer error_answer(unsigned status, std::string type, std::string message) {
    json::object o;
    json::array errors;
    errors.push_back(json::object{{"errorType", type}, {"message", message}});
    o["errors"] = std::move(errors);
    o["message"] = message;
    return {status, json::serialize(o), std::move(type)};
}

}  // namespace

boost::system::result<chat_request, http_answer> parse_chat_request(std::string_view body,
                                                                    const core::chat_config& cfg,
                                                                    std::string_view token_user) {
    auto bad = [](std::string msg) {
        return error_answer(400, "BadRequestException", std::move(msg));
    };
    json::error_code ec;
    json::parse_options opt;
    opt.max_depth = 16;
    auto root = json::parse(json::string_view(body.data(), body.size()), ec, {}, opt);
    if (ec)
        return bad("request body is not valid JSON: " + ec.message() +
                   R"(; expected {"userId":"alice","prompt":"Hello"})");
    const auto* o = root.if_object();
    if (!o)
        return bad("request body is " + core::json_kind_name(root) +
                   R"(; expected {"userId":"alice","prompt":"Hello"})");
    chat_request r;
    r.format = cfg.event_format == "sample" ? event_format::sample : event_format::typed;
    const auto* user = o->if_contains("userId");
    if (!token_user.empty()) {
        // Authenticated by token: the identity is the user; a body naming someone else is a
        // mistake or an attempt to write into another user's channel, so say so.
        if (user && !(user->is_string() && user->as_string() == token_user))
            return error_answer(403, "UnauthorizedException",
                                "'userId' must be the caller's own identity '" +
                                    std::string(token_user.substr(0, 60)) +
                                    "' (taken from the token); leave it out");
        r.user_id = std::string(token_user);
    } else if (!user || !user->is_string())
        return bad(std::string("'userId' is ") + (user ? core::json_kind_name(*user) : "missing") +
                   "; expected a string that is a channel segment (1..50 of A-Z a-z 0-9 -)");
    else
        r.user_id = std::string(user->as_string());
    if (!events::valid_segment(r.user_id))
        return bad("'userId' '" + r.user_id.substr(0, 60) +
                   "' is not a channel segment: it becomes /" + cfg.chat_namespace +
                   "/<userId>; allowed: 1..50 of A-Z a-z 0-9 and '-', starting and ending with "
                   "a letter or digit");
    std::size_t total_bytes = 0;
    if (const auto* msgs = o->if_contains("messages"); msgs && !msgs->is_null()) {
        const auto* arr = msgs->if_array();
        if (!arr)
            return bad("'messages' is " + core::json_kind_name(*msgs) +
                       R"(; expected [{"role":"user","content":"..."},...])");
        for (std::size_t i = 0; i < arr->size(); ++i) {
            const auto* m = (*arr)[i].if_object();
            const auto where = "messages[" + std::to_string(i) + "]";
            if (!m)
                return bad(where + R"( is not an object like {"role":"user","content":"..."})");
            const auto* role = m->if_contains("role");
            const auto* content = m->if_contains("content");
            if (!role || !role->is_string() ||
                (role->as_string() != "user" && role->as_string() != "assistant"))
                return bad(where + ".role must be \"user\" or \"assistant\"");
            if (!content || !content->is_string())
                return bad(where + ".content must be a string");
            total_bytes += content->as_string().size();
            r.completion.messages.push_back(
                {std::string(role->as_string()), std::string(content->as_string())});
        }
    }
    const auto* prompt = o->if_contains("prompt");
    if (prompt && !prompt->is_null()) {
        if (!prompt->is_string())
            return bad("'prompt' is " + core::json_kind_name(*prompt) + "; expected a string");
        if (prompt->as_string().empty())
            return bad("'prompt' is empty");
        total_bytes += prompt->as_string().size();
        r.completion.messages.push_back({"user", std::string(prompt->as_string())});
    }
    if (r.completion.messages.empty())
        return bad("'prompt' is missing; give a prompt (a string) or messages");
    if (r.completion.messages.back().role != "user")
        return bad("the conversation must end with a user message; add a 'prompt'");
    if (const auto* sys = o->if_contains("system"); sys && !sys->is_null()) {
        if (!sys->is_string())
            return bad("'system' is " + core::json_kind_name(*sys) + "; expected a string");
        r.completion.system = std::string(sys->as_string());
        total_bytes += r.completion.system.size();
    }
    if (total_bytes > cfg.max_prompt_bytes)
        return error_answer(413, "BadRequestException",
                            "prompt, messages and system are " + std::to_string(total_bytes) +
                                " bytes; the limit is " + std::to_string(cfg.max_prompt_bytes) +
                                " (--chat-max-prompt-bytes)");
    if (const auto* m = o->if_contains("model"); m && !m->is_null()) {
        if (!m->is_string() || m->as_string().empty() || m->as_string().size() > 2048)
            return bad("'model' must be a model id string of 1..2048 characters");
        r.completion.model = std::string(m->as_string());
    }
    if (const auto* p = o->if_contains("provider"); p && !p->is_null()) {
        if (!p->is_string())
            return bad("'provider' is " + core::json_kind_name(*p) + "; expected a string");
        r.provider = std::string(p->as_string());
    }
    if (const auto* mt = o->if_contains("maxTokens"); mt && !mt->is_null()) {
        if (!mt->is_int64() || mt->as_int64() < 1 || mt->as_int64() > 1'000'000)
            return bad("'maxTokens' must be an integer from 1 to 1000000");
        r.completion.max_tokens = mt->as_int64();
    }
    if (const auto* t = o->if_contains("temperature"); t && !t->is_null()) {
        if (!t->is_number())
            return bad("'temperature' must be a number from 0 to 2");
        const double v = t->to_number<double>();
        if (v < 0 || v > 2)
            return bad("'temperature' must be a number from 0 to 2");
        r.completion.temperature = v;
    }
    if (const auto* f = o->if_contains("eventFormat"); f && !f->is_null()) {
        if (!f->is_string() || (f->as_string() != "typed" && f->as_string() != "sample"))
            return bad(R"('eventFormat' must be "typed" (start, delta, end/error events) or )"
                       R"("sample" (only {"data":"<chunk>"} per delta, as the AWS sample))");
        r.format = f->as_string() == "sample" ? event_format::sample : event_format::typed;
    }
    if (const auto* w = o->if_contains("wait"); w && !w->is_null()) {
        if (!w->is_bool())
            return bad("'wait' must be true or false");
        r.wait = w->as_bool();
    }
    return r;
}

namespace {

// Maps a provider's refusal before streaming to what our caller should see.
http_answer provider_refusal(const llm::provider_error& e, std::string_view provider) {
    unsigned status = 502;
    if (e.http_status == 429 || e.type == "ThrottlingException" ||
        e.type == "ModelNotReadyException")
        status = 429;
    else if (e.http_status == 400 || e.http_status == 404 || e.http_status == 413 ||
             e.http_status == 422 || e.type == "ValidationException")
        status = 400;  // the request (model, prompt, parameters) was refused: the caller's to fix
    else if (e.type == "Timeout")
        status = 504;
    const auto type = e.type.empty() ? std::string("ProviderError") : e.type;
    return error_answer(status, type, std::string(provider) + " refused the request: " + e.message);
}

}  // namespace

/// One stream. Its mutex guards everything below; provider callbacks and HTTP calls meet here.
class chat_stream final : public llm::completion_sink,
                          public std::enable_shared_from_this<chat_stream> {
public:
    chat_stream(chat_service& svc, std::string id, std::string user, events::channel_path channel,
                std::string provider, std::string model, bool wait, event_format format,
                std::size_t prompt_bytes, chat_service::responder respond)
        : svc_(svc),
          id_(std::move(id)),
          user_(std::move(user)),
          channel_(std::move(channel)),
          provider_(std::move(provider)),
          model_(std::move(model)),
          wait_(wait),
          sample_(format == event_format::sample),
          prompt_bytes_(prompt_bytes),
          respond_(std::move(respond)) {}

    void attach(std::shared_ptr<llm::completion> c) {
        std::lock_guard lock(mutex_);
        completion_ = std::move(c);
        if (cancel_requested_ && completion_)
            completion_->cancel();
    }

    const std::string& user() const noexcept { return user_; }
    bool ended() const {
        std::lock_guard lock(mutex_);
        return state_ == state::ended;
    }
    std::chrono::steady_clock::time_point ended_at() const {
        std::lock_guard lock(mutex_);
        return ended_at_;
    }

    void on_accepted() override {
        std::lock_guard lock(mutex_);
        if (state_ != state::starting)
            return;
        state_ = state::streaming;
        json::object start{{"type", "start"},
                           {"streamId", id_},
                           {"seq", seq_++},
                           {"model", model_},
                           {"provider", provider_}};
        if (provider_ == "demo")
            start["note"] = "offline demo model: a deterministic answer, not a real LLM";
        // The sample format has deltas only: its page renders .data of every event, so a start
        // event would be an empty row.
        if (!sample_) {
            // In cluster mode the start event's position is its stream sequence, known once
            // JetStream acknowledged it (a NATS round trip, bounded): the answer, which carries
            // resumeAfter, waits for it (start_located), not this thread.
            std::weak_ptr<chat_stream> self = weak_from_this();
            events::publish_outcome out;
            locating_ = svc_.api_.publish_located(channel_, {json::serialize(start)}, out,
                                                  [self](events::position p) {
                                                      if (auto s = self.lock())
                                                          s->start_located(p);
                                                  });
            start_position_ = out.first;
        }
        if (!wait_ && !locating_)
            answer(ok_body(false));
    }

    // The start event's position, from the cluster (seq 0: not learned in time; the answer
    // then has no resumeAfter, as before).
    void start_located(events::position p) {
        std::lock_guard lock(mutex_);
        locating_ = false;
        if (start_position_.seq == 0)
            start_position_ = p;
        if (!wait_)
            answer(ok_body(false));
        else if (answer_when_located_)
            answer(ok_body(true));
    }

    void on_text(std::string_view text) override {
        std::lock_guard lock(mutex_);
        if (state_ != state::streaming || text.empty())
            return;
        const auto now = std::chrono::steady_clock::now();
        if (text_.empty())
            svc_.api_.stats().provider_first_chunk.observe(now - created_);
        if (pending_.empty())
            pending_since_ = now;
        text_ += text;
        pending_ += text;
        if (svc_.cfg_.chat.coalesce.count() == 0)
            return flush_locked();
        if (!flush_scheduled_) {
            flush_scheduled_ = true;
            svc_.transport_.schedule(svc_.cfg_.chat.coalesce,
                                     [self = shared_from_this()] { self->flush(); });
        }
    }

    void on_finished(std::string stop_reason, llm::token_usage usage) override {
        {
            std::lock_guard lock(mutex_);
            if (state_ == state::ended)
                return;
            if (state_ == state::starting) {
                // Cancelled before the provider answered: nothing was published.
                end_locked("cancelled");
                answer(
                    error_answer(409, "StreamCancelled",
                                 "stream " + id_ + " was cancelled before the provider answered"));
            } else {
                flush_locked();
                stop_reason_ = std::move(stop_reason);
                usage_ = usage;
                json::object end{{"type", "end"},
                                 {"streamId", id_},
                                 {"seq", seq_++},
                                 {"stopReason", stop_reason_}};
                if (usage.input_tokens >= 0 || usage.output_tokens >= 0) {
                    json::object u;
                    if (usage.input_tokens >= 0)
                        u["inputTokens"] = usage.input_tokens;
                    if (usage.output_tokens >= 0)
                        u["outputTokens"] = usage.output_tokens;
                    end["usage"] = std::move(u);
                }
                if (!sample_)
                    publish(end);
                account(usage);
                end_locked(stop_reason_ == "cancelled" ? "cancelled" : "completed");
                if (wait_ && locating_)
                    answer_when_located_ = true;  // resumeAfter first (start_located)
                else if (wait_)
                    answer(ok_body(true));
            }
        }
        svc_.finished(*this);
    }

    void on_failed(llm::provider_error e) override {
        {
            std::lock_guard lock(mutex_);
            if (state_ == state::ended)
                return;
            log::warn("chat [{}] {} failed: {} {}", id_, provider_, e.type, e.message);
            error_ = e;
            core::stats::add(svc_.api_.stats().chat_streams_failed);
            if (state_ == state::starting) {
                end_locked("failed");
                answer(provider_refusal(e, provider_));
            } else {
                flush_locked();
                // The sample format has no error event: a subscriber sees the answer stop;
                // GET /chat/<streamId> says why.
                if (!sample_)
                    publish(json::object{{"type", "error"},
                                         {"streamId", id_},
                                         {"seq", seq_++},
                                         {"errorType", e.type},
                                         {"message", e.message}});
                account({});
                end_locked("failed");
                if (wait_) {
                    auto a = provider_refusal(e, provider_);
                    answer(std::move(a));
                }
            }
        }
        svc_.finished(*this);
    }

    void cancel() {
        std::shared_ptr<llm::completion> c;
        {
            std::lock_guard lock(mutex_);
            if (state_ == state::ended)
                return;
            cancel_requested_ = true;
            c = completion_;
        }
        if (c)
            c->cancel();
    }

    /// Server shutdown: drop the completion (it may hold this stream as its sink: a cycle).
    void abandon() {
        std::lock_guard lock(mutex_);
        completion_.reset();
        respond_ = nullptr;
    }

    json::object status_json() const {
        std::lock_guard lock(mutex_);
        json::object o{{"streamId", id_},
                       {"userId", user_},
                       {"channel", "/" + channel_.str()},
                       {"provider", provider_},
                       {"model", model_},
                       {"status", status_name()},
                       {"text", text_},
                       {"seq", seq_ == 0 ? 0 : seq_ - 1}};
        if (start_position_.seq > 0) {
            // A client that lost its connection subscribes to `channel` with
            // "resume":{"after": resumeAfter} and gets the whole stream again, from its start
            // event (docs/protocol.md, "History and resume"); or from the last position it saw.
            o["startPosition"] = events::format_position(start_position_);
            o["resumeAfter"] =
                events::format_position({start_position_.epoch, start_position_.seq - 1});
        }
        if (!stop_reason_.empty())
            o["stopReason"] = stop_reason_;
        if (error_)
            o["error"] = json::object{{"errorType", error_->type}, {"message", error_->message}};
        return o;
    }

private:
    enum class state { starting, streaming, ended };

    void flush() {
        std::lock_guard lock(mutex_);
        flush_scheduled_ = false;
        if (state_ == state::streaming)
            flush_locked();
    }

    void flush_locked() {
        if (pending_.empty())
            return;
        if (sample_) {
            const auto position = publish(json::object{{"data", pending_}});
            if (start_position_.seq == 0)
                start_position_ = position;  // resumeAfter: just before the first delta
        } else {
            publish(json::object{
                {"type", "delta"}, {"streamId", id_}, {"seq", seq_++}, {"data", pending_}});
        }
        pending_.clear();
        svc_.api_.stats().chunk_publish.observe(std::chrono::steady_clock::now() - pending_since_);
    }

    events::position publish(const json::object& event) {
        return svc_.api_.publish(channel_, {json::serialize(event)}).first;
    }

    // The stream's tokens into the ledger (metrics, budgets). What the provider did not say
    // (a cancel or a failure before its usage event) is estimated at 4 bytes a token, so a
    // budget cannot be outrun by cancelling every answer before it ends.
    void account(llm::token_usage usage) {
        const auto estimate = [](std::size_t bytes) {
            return static_cast<std::uint64_t>((bytes + 3) / 4);
        };
        const std::uint64_t in = usage.input_tokens >= 0
                                     ? static_cast<std::uint64_t>(usage.input_tokens)
                                     : estimate(prompt_bytes_);
        const std::uint64_t out = usage.output_tokens >= 0
                                      ? static_cast<std::uint64_t>(usage.output_tokens)
                                      : estimate(text_.size());
        svc_.ledger_.add(user_, provider_, model_, in, out);
    }

    void end_locked(const char* outcome) {
        state_ = state::ended;
        outcome_ = outcome;
        ended_at_ = std::chrono::steady_clock::now();
        completion_.reset();
    }

    const char* status_name() const {
        if (state_ == state::starting)
            return "starting";
        if (state_ == state::streaming)
            return "streaming";
        return outcome_;
    }

    http_answer ok_body(bool with_result) const {
        json::object o{{"channel", "/" + channel_.str()},
                       {"streamId", id_},
                       {"provider", provider_},
                       {"model", model_},
                       {"eventFormat", sample_ ? "sample" : "typed"}};
        if (start_position_.seq > 0)
            o["resumeAfter"] =
                events::format_position({start_position_.epoch, start_position_.seq - 1});
        if (with_result) {
            o["status"] = status_name();
            o["text"] = text_;
            o["stopReason"] = stop_reason_;
            if (usage_.input_tokens >= 0 || usage_.output_tokens >= 0)
                o["usage"] = json::object{{"inputTokens", usage_.input_tokens},
                                          {"outputTokens", usage_.output_tokens}};
        }
        return {200, json::serialize(o), {}};
    }

    void answer(http_answer a) {
        if (!respond_)
            return;
        auto r = std::move(respond_);
        respond_ = nullptr;
        r(std::move(a));
    }

    chat_service& svc_;
    const std::string id_;
    const std::string user_;
    const events::channel_path channel_;
    const std::string provider_;
    const std::string model_;
    const bool wait_;
    const bool sample_;  // event_format::sample: {"data":...} deltas and nothing else

    const std::size_t prompt_bytes_;  // system + messages, for the estimate in account()
    mutable std::mutex mutex_;
    chat_service::responder respond_;
    std::shared_ptr<llm::completion> completion_;
    state state_ = state::starting;
    const char* outcome_ = "starting";
    std::int64_t seq_ = 0;              // next seq to assign
    events::position start_position_;   // of the start event; seq 0 until it is published
    bool locating_ = false;             // the cluster has yet to say start_position_
    bool answer_when_located_ = false;  // the waiting answer is ready but for resumeAfter
    std::string text_;                  // everything streamed so far
    std::string pending_;               // not yet published (coalescing window)
    bool flush_scheduled_ = false;
    bool cancel_requested_ = false;
    std::string stop_reason_;
    llm::token_usage usage_;
    std::optional<llm::provider_error> error_;
    std::chrono::steady_clock::time_point ended_at_;
    const std::chrono::steady_clock::time_point created_ = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point pending_since_;  // arrival of pending_'s first byte
};

chat_service::chat_service(const core::config& cfg, api::event_api& api, aws::transport& transport,
                           std::map<std::string, std::unique_ptr<llm::provider>> providers,
                           std::string default_provider)
    : cfg_(cfg),
      api_(api),
      transport_(transport),
      providers_(std::move(providers)),
      default_provider_(std::move(default_provider)),
      ledger_(cfg.chat.max_tokens_per_user, cfg.chat.budget_window) {}

chat_service::~chat_service() {
    std::lock_guard lock(mutex_);
    for (auto& [id, stream] : streams_)
        stream->abandon();
}

void chat_service::start(std::string_view body, responder respond, std::string_view token_user) {
    auto parsed = parse_chat_request(body, cfg_.chat, token_user);
    if (!parsed)
        return respond(parsed.error());
    auto& req = *parsed;
    const std::string provider_name = req.provider.empty() ? default_provider_ : req.provider;
    auto pit = providers_.find(provider_name);
    if (pit == providers_.end()) {
        std::string names;
        for (const auto& [n, p] : providers_)
            names += (names.empty() ? "" : ", ") + n;
        return respond(error_answer(400, "BadRequestException",
                                    "provider '" + provider_name.substr(0, 40) +
                                        "' is not configured; available: " + names));
    }
    llm::provider& provider = *pit->second;
    if (req.completion.model.empty())
        req.completion.model = std::string(provider.default_model());
    auto channel = events::channel_path::parse(cfg_.chat.chat_namespace + "/" + req.user_id);
    if (!channel)
        return respond(error_answer(400, "BadRequestException", channel.error().message));
    if (auto over = ledger_.check(req.user_id)) {
        const auto wait = std::chrono::duration_cast<std::chrono::seconds>(
                              over->resets_at - token_ledger::clock::now())
                              .count() +
                          1;
        auto a = error_answer(429, "LimitExceededException",
                              "user '" + req.user_id + "' has used " + std::to_string(over->used) +
                                  " of " + std::to_string(over->limit) +
                                  " tokens in this --chat-budget-window; it resets in " +
                                  std::to_string(wait) + " s (GET /chat/usage says when)");
        a.headers.emplace_back("Retry-After", std::to_string(wait));
        return respond(std::move(a));
    }
    std::size_t prompt_bytes = req.completion.system.size();
    for (const auto& turn : req.completion.messages)
        prompt_bytes += turn.text.size();

    std::shared_ptr<chat_stream> stream;
    {
        std::lock_guard lock(mutex_);
        // Forget finished streams past their retention.
        const auto now = std::chrono::steady_clock::now();
        for (auto it = streams_.begin(); it != streams_.end();) {
            if (it->second->ended() && now - it->second->ended_at() > cfg_.chat.retention)
                it = streams_.erase(it);
            else
                ++it;
        }
        if (active_ >= cfg_.chat.max_streams)
            return respond(error_answer(429, "LimitExceededException",
                                        "the server has " + std::to_string(active_) +
                                            " streams running; the limit is " +
                                            std::to_string(cfg_.chat.max_streams)));
        auto& per_user = active_per_user_[req.user_id];
        if (per_user >= cfg_.chat.max_streams_per_user)
            return respond(error_answer(429, "LimitExceededException",
                                        "user '" + req.user_id + "' has " +
                                            std::to_string(per_user) +
                                            " streams running; the limit is " +
                                            std::to_string(cfg_.chat.max_streams_per_user)));
        ++per_user;
        ++active_;
        core::stats::add(api_.stats().chat_streams_total);
        auto id = "s-" + core::random_secret_hex(8);
        stream = std::make_shared<chat_stream>(*this, id, req.user_id, std::move(*channel),
                                               provider_name, req.completion.model, req.wait,
                                               req.format, prompt_bytes, std::move(respond));
        streams_.emplace(std::move(id), stream);
    }
    log::debug("chat stream for user={} provider={} model={}", req.user_id, provider_name,
               req.completion.model);
    stream->attach(provider.start(std::move(req.completion), stream));
}

void chat_service::finished(const chat_stream& s) {
    std::lock_guard lock(mutex_);
    --active_;
    auto it = active_per_user_.find(s.user());
    if (it != active_per_user_.end() && --it->second == 0)
        active_per_user_.erase(it);
}

std::shared_ptr<chat_stream> chat_service::find(std::string_view stream_id) const {
    std::lock_guard lock(mutex_);
    auto it = streams_.find(std::string(stream_id));
    return it == streams_.end() ? nullptr : it->second;
}

http_answer chat_service::status(std::string_view stream_id, std::string_view token_user) {
    auto s = find(stream_id);
    if (s && !token_user.empty() && s->user() != token_user)
        s.reset();  // another user's stream: answer as if it did not exist
    if (!s)
        return error_answer(404, "NotFoundException",
                            "no stream '" + std::string(stream_id.substr(0, 40)) +
                                "' (finished streams are kept for --chat-retention-s)");
    return {200, json::serialize(s->status_json()), {}};
}

http_answer chat_service::cancel(std::string_view stream_id, std::string_view token_user) {
    auto s = find(stream_id);
    if (s && !token_user.empty() && s->user() != token_user)
        s.reset();
    if (!s)
        return error_answer(404, "NotFoundException",
                            "no stream '" + std::string(stream_id.substr(0, 40)) + "'");
    s->cancel();
    return {202, json::serialize(s->status_json()), {}};
}

http_answer chat_service::usage(std::string_view user) {
    if (!events::valid_segment(user))
        return error_answer(400, "BadRequestException",
                            "GET /chat/usage needs the userId: the caller's token names it, or "
                            "give ?userId=<1..50 of A-Z a-z 0-9 - _> with an API key");
    return {200, json::serialize(ledger_.usage_of(user)), {}};
}

std::size_t chat_service::active_streams() const {
    std::lock_guard lock(mutex_);
    return active_;
}

}  // namespace eventcast::chat

// Provider transfers. One http_completion per stream: it is both the transfer's handler (llm
// thread) and the completion handle the chat service cancels (any thread).
#include "llm/http_providers.hpp"

#include "core/log.hpp"
#include "llm/bedrock_stream.hpp"
#include "llm/openai_stream.hpp"
#include "aws/sigv4.hpp"

#include <boost/json.hpp>
#include <boost/url/parse.hpp>

#include <atomic>
#include <strings.h>

namespace eventcast::llm {

namespace json = boost::json;

namespace {

constexpr std::size_t max_error_body = 64 * 1024;

// Shared lifecycle: accept on the first 2xx byte, collect a non-2xx body as the error, map
// transport failures, and end exactly once.
class http_completion : public completion,
                        public aws::http_handler,
                        public std::enable_shared_from_this<http_completion> {
public:
    http_completion(aws::transport& t, std::shared_ptr<completion_sink> sink, std::string provider)
        : transport_(t), sink_(std::move(sink)), provider_(std::move(provider)) {}

    void begin(aws::http_call call) {
        id_ = transport_.start(std::move(call), shared_from_this());
        started_ = true;
        if (cancelled_)
            transport_.cancel(id_);
    }

    void cancel() override {
        cancelled_ = true;
        if (started_)
            transport_.cancel(id_);
    }

    // llm thread from here on.
    void fail_before_start(provider_error e) {
        if (ended_)
            return;
        ended_ = true;
        e.before_stream = true;
        sink_->on_failed(std::move(e));
    }

    void on_header(std::string_view name, std::string_view value) override {
        if (name.size() == 16 && strncasecmp(name.data(), "x-amzn-errortype", 16) == 0)
            error_type_header_ = std::string(value);
    }

    bool on_body(long status, std::string_view bytes) override {
        if (ended_)
            return false;
        status_ = status;
        if (status < 200 || status >= 300) {
            if (error_body_.size() < max_error_body)
                error_body_.append(bytes.substr(0, max_error_body - error_body_.size()));
            return true;
        }
        if (!accepted_) {
            accepted_ = true;
            sink_->on_accepted();
        }
        return on_stream_bytes(bytes);
    }

    void on_complete(const aws::transfer_result& r) override {
        if (ended_)
            return;
        if (r.cancelled) {
            ended_ = true;
            return sink_->on_finished("cancelled", usage_);
        }
        if (r.status != 0)
            status_ = r.status;
        if (status_ != 0 && (status_ < 200 || status_ >= 300)) {
            ended_ = true;
            auto e = http_error(static_cast<unsigned>(status_), error_type_header_, error_body_);
            e.http_status = static_cast<unsigned>(status_);
            e.before_stream = true;
            return sink_->on_failed(std::move(e));
        }
        if (!r.error.empty()) {
            ended_ = true;
            return sink_->on_failed({r.timed_out ? "Timeout" : "ProviderUnavailable",
                                     provider_ + ": " + r.error, 0, !accepted_});
        }
        if (!accepted_) {
            accepted_ = true;
            sink_->on_accepted();
        }
        on_stream_end();
    }

protected:
    /// Parses stream bytes; returns false to abort (after calling fail_in_stream).
    virtual bool on_stream_bytes(std::string_view bytes) = 0;
    /// The body ended normally: finish or report truncation.
    virtual void on_stream_end() = 0;
    virtual provider_error http_error(unsigned status, const std::string& type_header,
                                      const std::string& body) = 0;

    void emit_text(std::string_view text) {
        if (!ended_ && !text.empty())
            sink_->on_text(text);
    }
    void finish(std::string stop_reason) {
        if (ended_)
            return;
        ended_ = true;
        sink_->on_finished(std::move(stop_reason), usage_);
    }
    void fail_in_stream(std::string type, std::string message) {
        if (ended_)
            return;
        ended_ = true;
        sink_->on_failed({std::move(type), std::move(message), 0, false});
    }

    token_usage usage_;

private:
    aws::transport& transport_;
    std::shared_ptr<completion_sink> sink_;
    std::string provider_;
    aws::transport::transfer_id id_ = 0;
    std::atomic<bool> cancelled_{false};
    std::atomic<bool> started_{false};
    bool accepted_ = false;
    bool ended_ = false;
    long status_ = 0;
    std::string error_body_;
    std::string error_type_header_;
};

// Upper-case first letter: Bedrock in-stream exception types come as lowerCamelCase
// (throttlingException); HTTP ones as UpperCamelCase. Events carry one spelling.
std::string upper_first(std::string s) {
    if (!s.empty() && s[0] >= 'a' && s[0] <= 'z')
        s[0] = static_cast<char>(s[0] - 'a' + 'A');
    return s;
}

class bedrock_completion final : public http_completion {
public:
    using http_completion::http_completion;

private:
    bool on_stream_bytes(std::string_view bytes) override {
        for (auto& ev : parser_.feed(bytes)) {
            if (auto* d = std::get_if<bedrock::text_delta>(&ev)) {
                emit_text(d->text);
            } else if (auto* s = std::get_if<bedrock::message_stop>(&ev)) {
                stop_reason_ = s->stop_reason;
            } else if (auto* m = std::get_if<bedrock::metadata>(&ev)) {
                if (m->input_tokens)
                    usage_.input_tokens = static_cast<std::int64_t>(*m->input_tokens);
                if (m->output_tokens)
                    usage_.output_tokens = static_cast<std::int64_t>(*m->output_tokens);
            } else if (auto* e = std::get_if<bedrock::bedrock_error>(&ev)) {
                fail_in_stream(upper_first(e->type), e->message);
                return false;
            }
        }
        if (parser_.error()) {
            fail_in_stream("ProviderProtocolError", "bedrock stream: " + parser_.error()->message);
            return false;
        }
        return true;
    }

    void on_stream_end() override {
        if (auto r = parser_.finish(); !r)
            return fail_in_stream("TruncatedStream",
                                  "bedrock stream ended early: " + r.error().message);
        finish(stop_reason_.empty() ? "end_turn" : stop_reason_);
    }

    provider_error http_error(unsigned status, const std::string& type_header,
                              const std::string& body) override {
        auto e = bedrock::parse_http_error(status, type_header, body);
        return {upper_first(e.type.empty() ? "HttpError" : e.type),
                e.message.empty() ? "HTTP " + std::to_string(status) : e.message, status, true};
    }

    bedrock::converse_stream_parser parser_;
    std::string stop_reason_;
};

class openai_completion final : public http_completion {
public:
    using http_completion::http_completion;

private:
    bool on_stream_bytes(std::string_view bytes) override { return take(parser_.feed(bytes)); }

    bool take(std::vector<openai::stream_item> items) {
        for (auto& item : items) {
            if (auto* c = std::get_if<openai::chunk>(&item)) {
                emit_text(c->content);
                if (c->finish_reason)
                    stop_reason_ = *c->finish_reason;
                if (c->usage) {
                    usage_.input_tokens = static_cast<std::int64_t>(c->usage->prompt_tokens);
                    usage_.output_tokens = static_cast<std::int64_t>(c->usage->completion_tokens);
                }
            } else if (auto* e = std::get_if<openai::api_error>(&item)) {
                fail_in_stream(e->type.empty() ? "ProviderError" : e->type, e->message);
                return false;
            }
        }
        if (parser_.error()) {
            fail_in_stream("ProviderProtocolError", "openai stream: " + parser_.error()->message);
            return false;
        }
        return true;
    }

    void on_stream_end() override {
        if (!take(parser_.finish()))
            return;
        finish(stop_reason_.empty() ? "stop" : stop_reason_);
    }

    provider_error http_error(unsigned status, const std::string&,
                              const std::string& body) override {
        auto e = openai::parse_error_body(status, body);
        std::string type = e.type.empty() ? "HttpError" : e.type;
        if (status == 429)
            type = "ThrottlingException";
        return {type, e.message.empty() ? "HTTP " + std::to_string(status) : e.message, status,
                true};
    }

    openai::chat_stream_parser parser_;
    std::string stop_reason_;
};

std::string host_of(const std::string& url) {
    auto u = boost::urls::parse_uri(url);
    if (!u)
        return {};
    std::string host(u->encoded_host());
    if (u->has_port())
        host += ":" + std::string(u->port());
    return host;
}

}  // namespace

// ---- Bedrock --------------------------------------------------------------------------------

boost::system::result<bedrock_settings, std::string> bedrock_settings_from(
    const core::chat_config& cfg, const aws::environment& env, aws::credential_chain& chain,
    bool allow_imds) {
    bedrock_settings s;
    s.default_model = cfg.bedrock_model;
    s.connect_timeout = cfg.connect_timeout;
    s.idle_timeout = cfg.idle_timeout;
    s.region = cfg.bedrock_region;
    if (s.region.empty())
        s.region = aws::resolve_region(env, allow_imds).value_or("");
    if (s.region.empty())
        return {boost::system::in_place_error,
                std::string("no AWS region: set --bedrock-region, AWS_REGION or a profile region")};
    s.endpoint = cfg.bedrock_endpoint;
    if (s.endpoint.empty())
        s.endpoint = env.var("AWS_ENDPOINT_URL_BEDROCK_RUNTIME");
    if (s.endpoint.empty())
        s.endpoint = env.var("AWS_ENDPOINT_URL");
    if (s.endpoint.empty())
        s.endpoint = "https://bedrock-runtime." + s.region + ".amazonaws.com";
    while (!s.endpoint.empty() && s.endpoint.back() == '/')
        s.endpoint.pop_back();
    s.bearer_token = env.var("AWS_BEARER_TOKEN_BEDROCK");
    if (s.bearer_token.empty() && !chain.has_local_credentials() && !allow_imds)
        return {boost::system::in_place_error,
                std::string("no AWS credentials in the environment or ~/.aws files, and no "
                            "AWS_BEARER_TOKEN_BEDROCK")};
    return s;
}

std::string bedrock_provider::request_body(const completion_request& request) {
    json::object body;
    json::array messages;
    for (const auto& m : request.messages)
        messages.push_back(json::object{{"role", m.role},
                                        {"content", json::array{json::object{{"text", m.text}}}}});
    body["messages"] = std::move(messages);
    if (!request.system.empty())
        body["system"] = json::array{json::object{{"text", request.system}}};
    json::object inference;
    if (request.max_tokens)
        inference["maxTokens"] = *request.max_tokens;
    if (request.temperature)
        inference["temperature"] = *request.temperature;
    if (!inference.empty())
        body["inferenceConfig"] = std::move(inference);
    return json::serialize(body);
}

std::shared_ptr<completion> bedrock_provider::start(completion_request request,
                                                    std::shared_ptr<completion_sink> sink) {
    auto c = std::make_shared<bedrock_completion>(transport_, sink, "bedrock");
    // Credential lookup may touch the network (container/IMDS): do it on the llm thread.
    transport_.post([this, c, request = std::move(request)] {
        const auto model = request.model.empty() ? settings_.default_model : request.model;
        aws::http_call call;
        call.url = settings_.endpoint + "/model/" + aws::uri_encode(model) + "/converse-stream";
        call.body = request_body(request);
        call.connect_timeout = settings_.connect_timeout;
        call.idle_timeout = settings_.idle_timeout;
        const std::string host = host_of(settings_.endpoint);
        call.headers = {"Content-Type: application/json", "Host: " + host};
        if (!settings_.bearer_token.empty()) {
            call.headers.push_back("Authorization: Bearer " + settings_.bearer_token);
            return c->begin(std::move(call));
        }
        auto creds = chain_.get();
        if (!creds)
            return c->fail_before_start({"CredentialsNotFound", creds.error(), 0, true});
        const std::string path = "/model/" + aws::uri_encode(model) + "/converse-stream";
        const aws::http_header headers[] = {{"content-type", "application/json"}, {"host", host}};
        aws::sigv4_request req{"POST", path, "", headers, call.body};
        auto sig = aws::sign_request(req, creds->credentials,
                                {settings_.region, "bedrock", std::chrono::system_clock::now()});
        if (!sig)
            return c->fail_before_start({"SigningFailed", sig.error().message, 0, true});
        for (const auto& h : sig->added_headers)
            call.headers.push_back(h.name + ": " + h.value);
        call.headers.push_back("Authorization: " + sig->authorization);
        c->begin(std::move(call));
    });
    return c;
}

// ---- OpenAI-compatible ----------------------------------------------------------------------

std::string openai_provider::completions_url(std::string base) {
    while (!base.empty() && base.back() == '/')
        base.pop_back();
    if (base.size() >= 3 && base.substr(base.size() - 3) == "/v1")
        return base + "/chat/completions";
    return base + "/v1/chat/completions";
}

std::string openai_provider::request_body(const completion_request& request,
                                          const std::string& max_tokens_field) {
    json::object body;
    body["model"] = request.model;
    json::array messages;
    if (!request.system.empty())
        messages.push_back(json::object{{"role", "system"}, {"content", request.system}});
    for (const auto& m : request.messages)
        messages.push_back(json::object{{"role", m.role}, {"content", m.text}});
    body["messages"] = std::move(messages);
    body["stream"] = true;
    body["stream_options"] = json::object{{"include_usage", true}};
    if (request.max_tokens)
        body[max_tokens_field] = *request.max_tokens;
    if (request.temperature)
        body["temperature"] = *request.temperature;
    return json::serialize(body);
}

std::shared_ptr<completion> openai_provider::start(completion_request request,
                                                   std::shared_ptr<completion_sink> sink) {
    auto c = std::make_shared<openai_completion>(transport_, std::move(sink), "openai");
    if (request.model.empty())
        request.model = settings_.default_model;
    aws::http_call call;
    call.url = completions_url(settings_.base_url);
    call.body = request_body(request, settings_.max_tokens_field);
    call.connect_timeout = settings_.connect_timeout;
    call.idle_timeout = settings_.idle_timeout;
    call.headers = {"Content-Type: application/json", "Accept: text/event-stream"};
    if (!settings_.api_key.empty())
        call.headers.push_back("Authorization: Bearer " + settings_.api_key);
    c->begin(std::move(call));
    return c;
}

}  // namespace eventcast::llm

// Wiring. The provider registry is built here too: which providers exist and which one is the
// default is a decision about this process's configuration, not about any one provider.
#include "app/components.hpp"

#include "cluster/jetstream_history.hpp"
#include "core/log.hpp"
#include "llm/demo_provider.hpp"
#include "llm/http_providers.hpp"

#include <map>
#include <stdexcept>

namespace eventcast::app {

// net::cluster_status over the NATS bridge.
class components::cluster_status_view final : public net::cluster_status {
public:
    explicit cluster_status_view(const cluster::nats_bridge& b) : bridge_(b) {}
    bool connected() const override { return bridge_.connected(); }
    std::string state() const override { return bridge_.state(); }
    void append_metrics(std::string& out) const override { bridge_.append_metrics(out); }

private:
    const cluster::nats_bridge& bridge_;
};

// net::remote_chat over the chat directory.
class components::remote_chat_view final : public net::remote_chat {
public:
    explicit remote_chat_view(cluster::chat_directory& d) : directory_(d) {}
    void ask(std::string_view op, std::string_view stream_id, std::string_view user,
             std::chrono::milliseconds timeout,
             std::function<void(std::optional<chat::http_answer>)> done) override {
        directory_.ask(
            op, stream_id, user, timeout,
            [done = std::move(done)](std::optional<cluster::remote_answer> a) {
                if (!a)
                    return done(std::nullopt);
                done(chat::http_answer{a->status, std::move(a->body), std::move(a->error_type)});
            });
    }

private:
    cluster::chat_directory& directory_;
};

namespace {

struct provider_registry {
    std::map<std::string, std::unique_ptr<llm::provider>> providers;
    std::string default_provider;
};

// Bedrock is on when asked for, or when AWS credentials and a region are at hand. IMDS is
// consulted only when Bedrock was asked for, so start-up never waits on the network.
provider_registry make_providers(const core::config& cfg, aws::transport& transport,
                                 const aws::environment& aws_env,
                                 aws::credential_chain& aws_chain) {
    provider_registry r;
    r.providers["demo"] = std::make_unique<llm::demo_provider>(transport, cfg.chat.demo_pace,
                                                               cfg.chat.demo_words_per_chunk);
    r.default_provider = cfg.chat.provider;
    if (!cfg.chat.openai_base_url.empty()) {
        llm::openai_settings os;
        os.base_url = cfg.chat.openai_base_url;
        os.api_key = cfg.chat.openai_api_key;
        os.default_model = cfg.chat.openai_model.empty() ? "gpt-4o-mini" : cfg.chat.openai_model;
        os.max_tokens_field = cfg.chat.openai_max_tokens_field;
        os.connect_timeout = cfg.chat.connect_timeout;
        os.idle_timeout = cfg.chat.idle_timeout;
        log::info("chat: openai-compatible provider at {} (model {})", os.base_url,
                  os.default_model);
        r.providers["openai"] = std::make_unique<llm::openai_provider>(transport, std::move(os));
        if (r.default_provider.empty())
            r.default_provider = "openai";
    }
    const bool want_bedrock = cfg.chat.provider == "bedrock";
    if (auto bs = llm::bedrock_settings_from(cfg.chat, aws_env, aws_chain, want_bedrock)) {
        log::info("chat: bedrock provider, region {}, endpoint {}, model {}, auth {}", bs->region,
                  bs->endpoint, bs->default_model,
                  bs->bearer_token.empty() ? "SigV4" : "bearer token");
        r.providers["bedrock"] =
            std::make_unique<llm::bedrock_provider>(transport, std::move(*bs), aws_chain);
        if (r.default_provider.empty())
            r.default_provider = "bedrock";
    } else if (want_bedrock) {
        throw std::runtime_error("--chat-provider bedrock: " + bs.error());
    }
    if (r.default_provider.empty())
        r.default_provider = "demo";
    if (!r.providers.count(r.default_provider))
        throw std::runtime_error("--chat-provider " + r.default_provider +
                                 " is not available in this build");
    if (r.default_provider == "demo")
        log::info(
            "chat: no model provider configured; POST /chat uses the offline demo model "
            "(deterministic text, not a real LLM). Configure --openai-base-url or AWS "
            "credentials and --bedrock-region for a real one.");
    else
        log::info("chat: default provider {}", r.default_provider);
    return r;
}

}  // namespace

components::components(const core::config& cfg) : cfg_(cfg) {}

components::~components() {
    stop();
}

boost::system::result<std::unique_ptr<components>, std::vector<std::string>> components::build(
    const core::config& cfg) {
    std::unique_ptr<components> c(new components(cfg));
    auto authz = auth::authorizer::create(cfg, &c->transport_);
    if (!authz)
        return authz.error();
    c->authz_ = std::move(*authz);
    // Cluster mode keeps history in NATS JetStream, so that every node can serve a resume.
    if (!cfg.cluster.urls.empty()) {
        auto js = std::make_shared<cluster::jetstream_history>(cfg);
        c->jetstream_ = js.get();
        c->history_ = std::move(js);
    }
    c->api_ = std::make_unique<api::event_api>(cfg, c->broker_, c->stats_, *c->authz_, c->history_);
    // Namespace code: every file is checked now, so a broken one stops the start (file:line:col).
    handlers::registry::options ho;
    ho.specs = cfg.handlers.namespace_code;
    ho.namespaces = cfg.namespaces;
    ho.limits.time = cfg.handlers.time_limit;
    ho.limits.memory_bytes = cfg.handlers.memory_limit_mb * 1024 * 1024;
    c->aws_chain_ = std::make_unique<aws::credential_chain>(c->aws_env_);
    ho.data_sources = cfg.handlers.data_sources;
    ho.direct_lambdas = cfg.handlers.direct_lambdas;
    ho.outbound.transport = &c->transport_;
    ho.outbound.chain = c->aws_chain_.get();
    // Data sources sign for the region chat's Bedrock uses; no IMDS lookup at start-up.
    ho.outbound.region = !cfg.chat.bedrock_region.empty()
                             ? cfg.chat.bedrock_region
                             : aws::resolve_region(c->aws_env_, false).value_or("us-east-1");
    ho.outbound.lambda_endpoint = cfg.handlers.lambda_endpoint;
    ho.outbound.bedrock_endpoint = cfg.chat.bedrock_endpoint;
    ho.outbound.timeout = cfg.handlers.data_source_timeout;
    auto code = handlers::registry::create(std::move(ho));
    if (!code)
        return code.error();
    c->handlers_ = std::move(*code);
    c->api_->attach_handlers(c->handlers_.get());
    auto reg = make_providers(cfg, c->transport_, c->aws_env_, *c->aws_chain_);
    c->chat_ = std::make_unique<chat::chat_service>(cfg, *c->api_, c->transport_,
                                                    std::move(reg.providers), reg.default_provider);
    if (!cfg.cluster.urls.empty()) {
        c->bridge_ = std::make_unique<cluster::nats_bridge>(cfg.cluster, *c->api_, c->broker_,
                                                            c->jetstream_);
        c->status_view_ = std::make_unique<cluster_status_view>(*c->bridge_);
        // GET /chat/<id> and cancel on any node: the owner answers over NATS.
        auto* chat = c->chat_.get();
        c->chat_directory_ = std::make_unique<cluster::chat_directory>(
            cfg.cluster,
            [chat](std::string_view op, std::string_view id,
                   std::string_view user) -> std::optional<cluster::remote_answer> {
                auto a = op == "cancel" ? chat->cancel(id, user) : chat->status(id, user);
                if (a.status == 404)
                    return std::nullopt;  // not here (or not the caller's): stay silent
                return cluster::remote_answer{a.status, std::move(a.body), std::move(a.error_type)};
            });
        c->chat_view_ = std::make_unique<remote_chat_view>(*c->chat_directory_);
    }
    return c;
}

net::cluster_parts components::cluster_parts() {
    return {status_view_.get(), chat_view_.get()};
}

std::vector<std::string> components::reload(const core::config& next) {
    return authz_->reload(next);
}

void components::start() {
    if (bridge_)
        bridge_->start();  // connects, or keeps trying in the background
    if (chat_directory_)
        chat_directory_->start();
}

void components::stop() {
    if (stopped_)
        return;
    stopped_ = true;
    if (chat_directory_)
        chat_directory_->stop();
    if (bridge_)
        bridge_->stop();
    transport_.stop();  // ends provider transfers while the chat service still exists
}

}  // namespace eventcast::app

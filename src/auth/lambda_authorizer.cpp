// The webhook call runs on the outbound transport's thread; a timer cancels it at the
// deadline. Failures (timeout, non-2xx, bad JSON) refuse the request and are not cached, so the
// next request asks again.
#include "auth/lambda_authorizer.hpp"

#include "core/ids.hpp"
#include "core/log.hpp"

#include <boost/json.hpp>
#include <openssl/evp.h>

#include <cstring>

namespace eventcast::auth {

namespace json = boost::json;

namespace {

const char* lambda_operation(operation op) {
    switch (op) {
        case operation::connect: return "EVENT_CONNECT";
        case operation::subscribe: return "EVENT_SUBSCRIBE";
        case operation::publish: return "EVENT_PUBLISH";
        case operation::chat: return "EVENT_PUBLISH";
    }
    return "EVENT_CONNECT";
}

class webhook_call final : public aws::http_handler {
public:
    webhook_call(std::chrono::seconds default_ttl,
                 std::function<void(lambda_answer, std::chrono::seconds)> done)
        : default_ttl_(default_ttl), done_(std::move(done)) {}

    bool on_body(long status, std::string_view bytes) override {
        status_ = status;
        if (body_.size() + bytes.size() > 64 * 1024)
            return false;  // an authorizer answer is small; refuse to buffer more
        body_.append(bytes);
        return true;
    }

    void on_complete(const aws::transfer_result& r) override {
        if (!r.error.empty() || r.cancelled || r.timed_out) {
            const char* why =
                r.timed_out || r.cancelled ? "did not answer in time" : "could not be reached";
            log::warn("auth: the Lambda authorizer webhook {}{}{}", why,
                      r.error.empty() ? "" : ": ", r.error);
            done_({false, std::string("the authorizer ") + why, "{}"}, std::chrono::seconds(0));
            return;
        }
        auto [answer, ttl] = lambda_authorizer::parse_answer(r.status, body_, default_ttl_);
        done_(std::move(answer), ttl);
    }

private:
    std::chrono::seconds default_ttl_;
    std::function<void(lambda_answer, std::chrono::seconds)> done_;
    long status_ = 0;
    std::string body_;
};

}  // namespace

lambda_authorizer::lambda_authorizer(options opts, aws::transport& transport)
    : opts_(std::move(opts)), transport_(transport) {}

std::size_t lambda_authorizer::digest_hash::operator()(const digest& d) const noexcept {
    std::size_t h;
    std::memcpy(&h, d.data(), sizeof h);
    return h;
}

lambda_authorizer::digest lambda_authorizer::key_of(const lambda_request& req) {
    digest out{};
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned len = 0;
    const char op = static_cast<char>(req.op);
    const char zero = 0;
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, req.token.data(), req.token.size());
    EVP_DigestUpdate(ctx, &zero, 1);
    EVP_DigestUpdate(ctx, &op, 1);
    EVP_DigestUpdate(ctx, req.ns.data(), req.ns.size());
    EVP_DigestUpdate(ctx, &zero, 1);
    EVP_DigestUpdate(ctx, req.channel.data(), req.channel.size());
    EVP_DigestFinal_ex(ctx, out.data(), &len);
    EVP_MD_CTX_free(ctx);
    return out;
}

std::optional<lambda_answer> lambda_authorizer::cached(const lambda_request& req) const {
    const auto key = key_of(req);
    std::lock_guard lock(mutex_);
    auto it = cache_.find(key);
    if (it == cache_.end() || it->second.expires <= std::chrono::steady_clock::now())
        return std::nullopt;
    return it->second.answer;
}

void lambda_authorizer::store(const digest& key, const lambda_answer& a, std::chrono::seconds ttl) {
    if (ttl.count() <= 0)
        return;
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    if (cache_.size() >= opts_.max_cache_entries) {
        std::erase_if(cache_, [&](const auto& kv) { return kv.second.expires <= now; });
        if (cache_.size() >= opts_.max_cache_entries)
            cache_.clear();  // bounded memory beats a perfect cache
    }
    cache_[key] = {a, now + ttl};
}

std::uint64_t lambda_authorizer::calls() const {
    std::lock_guard lock(mutex_);
    return calls_;
}

std::string lambda_authorizer::request_body(const lambda_request& req,
                                            std::string_view request_id) {
    json::object headers;
    for (const auto& [name, value] : req.headers.entries())
        headers[name] = value;
    json::object body{
        {"authorizationToken", req.token},
        {"requestContext",
         {{"apiId", "eventcast"},
          {"accountId", ""},
          {"requestId", request_id},
          {"operation", lambda_operation(req.op)},
          {"channelNamespaceName", req.ns},
          {"channel", req.channel}}},
        {"requestHeaders", std::move(headers)},
    };
    return json::serialize(body);
}

std::pair<lambda_answer, std::chrono::seconds> lambda_authorizer::parse_answer(
    long status, std::string_view body, std::chrono::seconds default_ttl) {
    if (status < 200 || status > 299)
        return {{false, "the authorizer answered HTTP " + std::to_string(status), "{}"},
                std::chrono::seconds(0)};
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    const json::object* o = ec ? nullptr : v.if_object();
    const json::value* allowed = o ? o->if_contains("isAuthorized") : nullptr;
    if (!allowed || !allowed->is_bool())
        return {{false, "the authorizer's answer has no boolean isAuthorized", "{}"},
                std::chrono::seconds(0)};
    auto ttl = default_ttl;
    if (const auto* t = o->if_contains("ttlOverride"); t && t->is_int64())
        ttl = std::chrono::seconds(std::clamp<std::int64_t>(t->as_int64(), 0, 3600));
    lambda_answer a;
    a.allowed = allowed->as_bool();
    if (!a.allowed)
        a.reason = "the authorizer refused the request";
    if (const auto* c = o->if_contains("handlerContext"); c && c->is_object())
        a.handler_context = json::serialize(*c);
    return {a, ttl};
}

void lambda_authorizer::ask(lambda_request req, std::function<void(lambda_answer)> done) {
    {
        std::lock_guard lock(mutex_);
        ++calls_;
    }
    aws::http_call call;
    call.method = "POST";
    call.url = opts_.url;
    call.headers = {"Content-Type: application/json"};
    call.body = request_body(req, core::uuid_v4());
    call.connect_timeout = opts_.timeout;
    call.idle_timeout = opts_.timeout;
    const auto key = key_of(req);
    auto handler = std::make_shared<webhook_call>(
        opts_.default_ttl,
        [this, key, done = std::move(done)](lambda_answer a, std::chrono::seconds ttl) {
            store(key, a, ttl);
            done(std::move(a));
        });
    const auto id = transport_.start(std::move(call), handler);
    // The idle timeout alone would let a slow drip of bytes keep a request waiting forever.
    transport_.schedule(opts_.timeout, [this, id] { transport_.cancel(id); });
}

}  // namespace eventcast::auth

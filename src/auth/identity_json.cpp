// The identity's strings are escaped here; claims and handlerContext are JSON texts already
// (serialized by the verifier from what it parsed), so they are copied in as they are.
#include "auth/identity_json.hpp"

#include "events/message.hpp"

#include <string_view>

namespace eventcast::auth {

namespace {

class object_writer {
public:
    object_writer() { out_ += '{'; }
    void string(std::string_view name, std::string_view value) {
        key(name);
        events::append_json_string(out_, value);
    }
    /// An empty value is null (an absent claim, a field this server has no source for).
    void string_or_null(std::string_view name, std::string_view value) {
        if (value.empty())
            return raw(name, "null");
        string(name, value);
    }
    void raw(std::string_view name, std::string_view json) {
        key(name);
        out_ += json;
    }
    std::string done() && {
        out_ += '}';
        return std::move(out_);
    }

private:
    void key(std::string_view name) {
        if (out_.size() > 1)
            out_ += ',';
        events::append_json_string(out_, name);
        out_ += ':';
    }
    std::string out_;
};

// arn:aws:iam::<account>:user/name or arn:aws:sts::<account>:assumed-role/...: the fifth field.
std::string_view account_of(std::string_view arn) {
    if (arn.rfind("arn:", 0) != 0)
        return {};
    std::size_t at = 0;
    for (int field = 0; field < 4; ++field) {
        at = arn.find(':', at);
        if (at == std::string_view::npos)
            return {};
        ++at;
    }
    const auto end = arn.find(':', at);
    return end == std::string_view::npos ? std::string_view{} : arn.substr(at, end - at);
}

}  // namespace

std::string identity_json(const identity& who) {
    object_writer w;
    switch (who.how) {
        case mode::api_key: return "null";
        case mode::lambda:
            w.raw("handlerContext", who.handler_context.empty() ? "{}" : who.handler_context);
            return std::move(w).done();
        case mode::iam: {
            // The key file's principal is the caller's ARN when it names one (iam.hpp); a bare
            // access key id has no account to show.
            const bool is_arn = who.user.rfind("arn:", 0) == 0;
            w.string_or_null("accountId", account_of(who.user));
            w.raw("cognitoIdentityPoolId", "null");
            w.raw("cognitoIdentityId", "null");
            w.raw("sourceIp", "[]");
            w.string("username", who.user);
            w.string_or_null("userArn", is_arn ? std::string_view(who.user) : std::string_view{});
            w.raw("cognitoIdentityAuthType", "null");
            w.raw("cognitoIdentityAuthProvider", "null");
            return std::move(w).done();
        }
        case mode::cognito:
        case mode::oidc: {
            w.string("sub", who.subject.empty() ? who.user : who.subject);
            w.string_or_null("issuer", who.issuer);
            if (who.how == mode::cognito)
                w.string_or_null("username", who.username.empty() ? who.user : who.username);
            w.raw("claims", who.claims_json.empty() ? "{}" : who.claims_json);
            if (who.how == mode::oidc)
                return std::move(w).done();
            w.raw("sourceIp", "[]");
            w.string("defaultAuthStrategy", "ALLOW");
            if (who.groups.empty()) {
                w.raw("groups", "null");
            } else {
                std::string groups = "[";
                for (std::size_t i = 0; i < who.groups.size(); ++i) {
                    if (i)
                        groups += ',';
                    events::append_json_string(groups, who.groups[i]);
                }
                groups += ']';
                w.raw("groups", groups);
            }
            return std::move(w).done();
        }
    }
    return "null";
}

}  // namespace eventcast::auth

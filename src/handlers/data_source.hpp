// Data sources of namespace handlers (docs/protocol.md, "Data sources"): what a handler's
// request(ctx) returns becomes one outbound call (the Lambda Invoke API, an HTTP request, a
// Bedrock runtime call), SigV4-signed where AWS wants it, over aws::transport; its answer becomes
// ctx.result. Also AppSync's direct Lambda integration: the payload a function receives and the
// answer it gives. Spec parsing and answer mapping are pure and unit-tested.
//
// Threading: outbound::call may be called from any thread; `done` runs once, on the transport
// thread (credential lookup and signing happen there too, so no I/O thread waits).
#pragma once

#include "aws/aws_credentials.hpp"
#include "aws/transport.hpp"
#include "handlers/result_mapping.hpp"

#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace eventcast::handlers {

/// --namespace-data-source NS:lambda:FUNCTION | NS:http:BASE_URL | NS:bedrock[:MODEL_ID]
struct data_source {
    enum class kind { lambda, http, bedrock };
    kind what = kind::lambda;
    std::string target;  // function name or ARN, base URL, default model id (may be empty)
};
/// Splits and checks a spec; the error names the spec and the rule.
boost::system::result<std::pair<std::string, data_source>, std::string> parse_data_source(
    std::string_view spec);

/// --namespace-direct-lambda NS:OPERATIONS:INVOKE_TYPE:FUNCTION
struct direct_lambda {
    bool publish = false;
    bool subscribe = false;
    bool event = false;    // INVOKE_TYPE EVENT: fire and forget; else REQUEST_RESPONSE
    std::string function;  // name, partial or full ARN (may hold ':')
};
boost::system::result<std::pair<std::string, direct_lambda>, std::string> parse_direct_lambda(
    std::string_view spec);

/// One finished data source call. `error` empty: `result` is ctx.result.
struct call_result {
    std::string error;  // for the operation's error message: names the source and the cause
    boost::json::value result;
    /// With `error`: what response(ctx) sees as ctx.error.type ("Lambda:Unhandled", the
    /// service's exception name, "HTTP 503"); empty for transport failures.
    std::string type = {};
};

/// Where and how outbound calls go. The transport and chain must outlive the outbound.
struct outbound_setup {
    aws::transport* transport = nullptr;
    aws::credential_chain* chain = nullptr;
    std::string region;            // signing region and default endpoints
    std::string lambda_endpoint;   // scheme://host[:port]; empty: https://lambda.<region>...
    std::string bedrock_endpoint;  // empty: https://bedrock-runtime.<region>.amazonaws.com
    std::chrono::milliseconds timeout{10'000};
};

class outbound {
public:
    explicit outbound(outbound_setup setup);

    /// Runs the call `request` (what request(ctx) returned) describes against `source`; see
    /// docs/protocol.md for each kind's shape. A request of the wrong shape fails at once (still
    /// through `done`, on the transport thread).
    void call(const data_source& source, boost::json::value request,
              std::function<void(call_result)> done);

    /// POST .../functions/FUNCTION/invocations with X-Amz-Invocation-Type `invocation_type`
    /// ("RequestResponse" or "Event"); the result is the function's answer parsed as JSON (null
    /// for Event, or an empty answer). A function error is an error naming its type and message.
    void invoke_lambda(const std::string& function, const char* invocation_type,
                       std::string payload, std::function<void(call_result)> done);

    const outbound_setup& setup() const noexcept { return setup_; }

private:
    struct plain_call;
    void start(aws::http_call call, std::string what, bool sign, std::string_view service,
               std::function<void(long, std::vector<std::pair<std::string, std::string>>,
                                  std::string, std::string)>
                   finished);
    outbound_setup setup_;
};

/// The event a directly integrated function receives: the handler context (`ctx_json`,
/// context.hpp) with AppSync's extra fields (result, error, prev, outErrors, null or empty).
std::string direct_lambda_payload(std::string_view ctx_json);

/// A direct integration's answer for a publish: {"events":[...]} (each {id, payload} or
/// {id, error}), {"error":"message"} failing the whole publish, or null (nothing broadcast).
result<publish_decision> map_direct_publish(const boost::json::value& answer,
                                            const std::vector<std::string>& incoming_ids);
/// For a subscribe: null or an object without "error" accepts; {"error":"message"} refuses.
std::optional<failure> map_direct_subscribe(const boost::json::value& answer);

}  // namespace eventcast::handlers

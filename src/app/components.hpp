// The one place that builds eventcast's components and wires them together: the broker, the
// authorizer and its outbound transport, the history store (in memory, or JetStream in cluster
// mode), the event_api, the model providers and the chat service, and in cluster mode the NATS
// bridge and the chat directory, handed to net::server only as its interfaces. main() makes
// one of these, then the server.
#pragma once

#include "api/event_api.hpp"
#include "auth/authorizer.hpp"
#include "aws/aws_credentials.hpp"
#include "aws/transport.hpp"
#include "chat/chat_service.hpp"
#include "cluster/chat_directory.hpp"
#include "cluster/nats_bridge.hpp"
#include "core/config.hpp"
#include "net/server.hpp"
#include "pubsub/broker.hpp"

#include <boost/system/result.hpp>

#include <memory>
#include <string>
#include <vector>

namespace eventcast::app {

class components {
public:
    /// Builds everything `cfg` asks for. Configuration problems come back one line each (the
    /// process exits 2); other failures throw std::runtime_error (exit 1). `cfg` must outlive
    /// the components.
    static boost::system::result<std::unique_ptr<components>, std::vector<std::string>> build(
        const core::config& cfg);
    ~components();

    api::event_api& api() { return *api_; }
    /// Namespace code; null when no --namespace-code is given.
    handlers::registry* handlers() { return handlers_.get(); }
    chat::chat_service* chat() { return chat_.get(); }
    /// What net::server gets of cluster mode (null members without --cluster).
    net::cluster_parts cluster_parts();

    /// Starts the background parts (NATS connections: connected, or retrying) before the
    /// server accepts.
    void start();
    /// SIGHUP: what the components can change at run time, taken from `next` (the API key
    /// list). Returns the problems; the part that reports one keeps its running state.
    std::vector<std::string> reload(const core::config& next);

    /// Stops them after the server's threads have joined, then ends provider transfers while
    /// the chat service still exists. Idempotent.
    void stop();

private:
    explicit components(const core::config& cfg);
    class cluster_status_view;
    class remote_chat_view;

    const core::config& cfg_;
    pubsub::broker broker_;
    core::stats stats_;
    aws::transport transport_;  // outbound HTTP: model providers, the Lambda authorizer
    std::unique_ptr<auth::authorizer> authz_;
    cluster::jetstream_history* jetstream_ = nullptr;  // owned by history_, cluster mode only
    std::shared_ptr<history::store> history_;
    std::unique_ptr<handlers::registry> handlers_;  // null without --namespace-code
    std::unique_ptr<api::event_api> api_;
    aws::environment aws_env_;
    std::unique_ptr<aws::credential_chain> aws_chain_;
    std::unique_ptr<chat::chat_service> chat_;
    std::unique_ptr<cluster::nats_bridge> bridge_;
    std::unique_ptr<cluster::chat_directory> chat_directory_;
    std::unique_ptr<cluster_status_view> status_view_;
    std::unique_ptr<remote_chat_view> chat_view_;
    bool stopped_ = false;
};

}  // namespace eventcast::app

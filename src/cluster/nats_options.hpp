// What every NATS connection of a node shares (the bridge's and the chat directory's): the
// servers, TLS and credentials from core::cluster_config (docs/CLUSTER.md, "TLS and
// credentials").
#pragma once

#include "core/config.hpp"

#include <nats/nats.h>
#include <string>

namespace eventcast::cluster {

/// Sets the servers, TLS (on for any tls:// URL or any --cluster-tls-* file: the CA bundle,
/// the client certificate and key) and credentials (user and password, or a .creds file) on
/// `opts`. Throws std::runtime_error naming the option and nats.c's reason (a file that does
/// not load, a bad PEM), as a start-up configuration error.
void apply_connection_options(natsOptions* opts, const core::cluster_config& cfg);

/// nats.c's text for `s`, with its last error's detail when it has one.
std::string nats_status_text(natsStatus s);

}  // namespace eventcast::cluster

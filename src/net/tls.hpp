// TLS setup: load the configured certificate, or make a self-signed one at start-up.
#pragma once

#include "core/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <memory>
#include <mutex>
#include <string>

namespace eventcast::net {

struct tls_setup {
    boost::asio::ssl::context context{boost::asio::ssl::context::tls_server};
    bool self_signed = false;
    std::string fingerprint_sha256;  // of the leaf certificate, "AB:CD:..."

    /// Certificate rotation (SIGHUP): loads `cert_file` (PEM chain) and `key_file`, checks that
    /// they belong together, and from then on every new handshake presents them; handshakes
    /// done keep theirs. Returns what is wrong (the running pair is kept), empty on success.
    /// Thread-safe. Only for a configured certificate: the self-signed one is not rotated.
    std::string reload(const std::string& cert_file, const std::string& key_file);

    struct key_pair;  // OpenSSL objects, tls.cpp
    std::mutex rotated_mutex;
    std::shared_ptr<const key_pair> rotated;  // null until the first reload
};

/// Builds the server TLS context (TLS 1.2+). Without cfg.tls_cert_file a P-256 self-signed
/// certificate for localhost, 127.0.0.1 and ::1 is generated and, if cfg.tls_self_signed_out is
/// set, written there as PEM. Throws std::runtime_error with the reason on failure (start-up).
void make_tls(const core::config& cfg, tls_setup& out);

}  // namespace eventcast::net

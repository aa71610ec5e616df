// TLS setup: load the configured certificate, or make a self-signed one at start-up.
#pragma once

#include "core/config.hpp"

#include <boost/asio/ssl/context.hpp>

#include <string>

namespace eventcast::net {

struct tls_setup {
    boost::asio::ssl::context context{boost::asio::ssl::context::tls_server};
    bool self_signed = false;
    std::string fingerprint_sha256;  // of the leaf certificate, "AB:CD:..."
};

/// Builds the server TLS context (TLS 1.2+). Without cfg.tls_cert_file a P-256 self-signed
/// certificate for localhost, 127.0.0.1 and ::1 is generated and, if cfg.tls_self_signed_out is
/// set, written there as PEM. Throws std::runtime_error with the reason on failure (start-up).
void make_tls(const core::config& cfg, tls_setup& out);

}  // namespace eventcast::net

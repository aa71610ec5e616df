// Why TLS is switched on explicitly for tls:// URLs: nats.c upgrades a connection only when
// the server asks for TLS or the options say secure, so a tls:// URL to a server that does not
// require TLS would otherwise run in the clear, and a CA given alone would check nothing.
#include "cluster/nats_options.hpp"

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace eventcast::cluster {

std::string nats_status_text(natsStatus s) {
    std::string out = natsStatus_GetText(s);
    const char* last = nats_GetLastError(nullptr);
    if (last && *last)
        out += std::string(" (") + last + ")";
    return out;
}

void apply_connection_options(natsOptions* opts, const core::cluster_config& cfg) {
    auto check = [](natsStatus s, const std::string& what) {
        if (s != NATS_OK)
            throw std::runtime_error("cluster: " + what + ": " + nats_status_text(s));
    };
    std::vector<const char*> urls;
    for (const auto& u : cfg.urls)
        urls.push_back(u.c_str());
    check(natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size())), "--cluster");
    const bool tls_url = std::any_of(cfg.urls.begin(), cfg.urls.end(), [](const std::string& u) {
        return u.rfind("tls://", 0) == 0;
    });
    if (tls_url || !cfg.tls_ca_file.empty() || !cfg.tls_cert_file.empty())
        check(natsOptions_SetSecure(opts, true), "TLS");
    if (!cfg.tls_ca_file.empty())
        check(natsOptions_LoadCATrustedCertificates(opts, cfg.tls_ca_file.c_str()),
              "--cluster-tls-ca " + cfg.tls_ca_file);
    if (!cfg.tls_cert_file.empty())
        check(
            natsOptions_LoadCertificatesChain(opts, cfg.tls_cert_file.c_str(),
                                              cfg.tls_key_file.c_str()),
            "--cluster-tls-cert " + cfg.tls_cert_file + " / --cluster-tls-key " + cfg.tls_key_file);
    if (!cfg.user.empty())
        check(natsOptions_SetUserInfo(opts, cfg.user.c_str(), cfg.password.c_str()),
              "--cluster-user");
    if (!cfg.creds_file.empty())
        check(natsOptions_SetUserCredentialsFromFiles(opts, cfg.creds_file.c_str(), nullptr),
              "--cluster-creds " + cfg.creds_file);
}

}  // namespace eventcast::cluster

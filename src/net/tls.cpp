// Certificate handling with OpenSSL 3. The self-signed certificate lives only in memory unless
// the operator asks for a copy to trust (--tls-self-signed-out).
#include "net/tls.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <fstream>
#include <memory>
#include <stdexcept>

namespace eventcast::net {

namespace {

template <class T, void (*F)(T*)>
struct openssl_deleter {
    void operator()(T* p) const noexcept { F(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, openssl_deleter<EVP_PKEY, EVP_PKEY_free>>;
using x509_ptr = std::unique_ptr<X509, openssl_deleter<X509, X509_free>>;
using bio_ptr = std::unique_ptr<BIO, openssl_deleter<BIO, BIO_free_all>>;

void check(bool ok, const char* what) {
    if (!ok)
        throw std::runtime_error(std::string("self-signed certificate: ") + what + " failed");
}

std::string bio_string(BIO* bio) {
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(len));
}

std::string fingerprint(X509* cert) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    X509_digest(cert, EVP_sha256(), md, &len);
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned i = 0; i < len; ++i) {
        if (i)
            out.push_back(':');
        out.push_back(hex[md[i] >> 4]);
        out.push_back(hex[md[i] & 0xF]);
    }
    return out;
}

void make_self_signed(std::string& cert_pem, std::string& key_pem, std::string& fp) {
    pkey_ptr key(EVP_EC_gen("P-256"));
    check(key != nullptr, "EVP_EC_gen");
    x509_ptr cert(X509_new());
    check(cert != nullptr, "X509_new");
    X509_set_version(cert.get(), 2);
    // Random serial so browsers do not confuse two generated certificates.
    ASN1_INTEGER* serial = X509_get_serialNumber(cert.get());
    BIGNUM* bn = BN_new();
    BN_rand(bn, 64, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
    BN_to_ASN1_INTEGER(bn, serial);
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), 365L * 24 * 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("eventcast"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert.get(), cert.get(), nullptr, nullptr, 0);
    const std::pair<int, const char*> exts[] = {
        {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:0:0:0:0:0:0:0:1"},
        {NID_basic_constraints, "critical,CA:TRUE"},  // lets clients trust it as its own root
        {NID_key_usage, "critical,digitalSignature,keyCertSign"},
        {NID_ext_key_usage, "serverAuth"},
    };
    for (const auto& [nid, value] : exts) {
        X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
        check(ext != nullptr, "X509V3_EXT_conf_nid");
        X509_add_ext(cert.get(), ext, -1);
        X509_EXTENSION_free(ext);
    }
    check(X509_sign(cert.get(), key.get(), EVP_sha256()) > 0, "X509_sign");

    bio_ptr cbio(BIO_new(BIO_s_mem()));
    bio_ptr kbio(BIO_new(BIO_s_mem()));
    check(PEM_write_bio_X509(cbio.get(), cert.get()) == 1, "PEM_write_bio_X509");
    check(
        PEM_write_bio_PrivateKey(kbio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
    cert_pem = bio_string(cbio.get());
    key_pem = bio_string(kbio.get());
    fp = fingerprint(cert.get());
}

std::string openssl_error() {
    const auto e = ERR_get_error();
    ERR_clear_error();
    if (e == 0)
        return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

}  // namespace

struct tls_setup::key_pair {
    x509_ptr leaf;
    pkey_ptr key;
    STACK_OF(X509) * chain = nullptr;  // intermediates, owned
    std::string fingerprint;
    ~key_pair() {
        if (chain)
            sk_X509_pop_free(chain, X509_free);
    }
};

namespace {

// Runs at every handshake: a rotated pair, once there is one, replaces the context's.
int use_rotated_pair(SSL* ssl, void* arg) {
    auto& setup = *static_cast<tls_setup*>(arg);
    std::shared_ptr<const tls_setup::key_pair> pair;
    {
        std::lock_guard lock(setup.rotated_mutex);
        pair = setup.rotated;
    }
    if (!pair)
        return 1;
    return SSL_use_cert_and_key(ssl, pair->leaf.get(), pair->key.get(), pair->chain, 1) == 1 ? 1
                                                                                             : 0;
}

}  // namespace

std::string tls_setup::reload(const std::string& cert_file, const std::string& key_file) {
    if (self_signed)
        return "the certificate is self-signed (no --tls-cert); nothing to reload";
    // Loaded into a scratch context first: OpenSSL checks the chain's PEM and that the key is
    // the certificate's, exactly as at start-up.
    boost::asio::ssl::context scratch{boost::asio::ssl::context::tls_server};
    boost::system::error_code ec;
    scratch.use_certificate_chain_file(cert_file, ec);
    if (ec)
        return "--tls-cert " + cert_file + ": " + ec.message();
    scratch.use_private_key_file(key_file, boost::asio::ssl::context::pem, ec);
    if (ec)
        return "--tls-key " + key_file + ": " + ec.message();
    SSL_CTX* raw = scratch.native_handle();
    if (SSL_CTX_check_private_key(raw) != 1)
        return "--tls-key " + key_file + " is not the key of --tls-cert " + cert_file + ": " +
               openssl_error();
    auto pair = std::make_shared<key_pair>();
    X509* leaf = SSL_CTX_get0_certificate(raw);
    EVP_PKEY* key = SSL_CTX_get0_privatekey(raw);
    STACK_OF(X509)* chain = nullptr;
    SSL_CTX_get0_chain_certs(raw, &chain);
    if (!leaf || !key)
        return "--tls-cert " + cert_file + ": no certificate or key was loaded";
    X509_up_ref(leaf);
    pair->leaf.reset(leaf);
    EVP_PKEY_up_ref(key);
    pair->key.reset(key);
    pair->chain = chain ? X509_chain_up_ref(chain) : nullptr;
    pair->fingerprint = fingerprint(leaf);
    std::lock_guard lock(rotated_mutex);
    rotated = std::move(pair);
    fingerprint_sha256 = rotated->fingerprint;
    return {};
}

void make_tls(const core::config& cfg, tls_setup& out) {
    namespace ssl = boost::asio::ssl;
    auto& ctx = out.context;
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                    ssl::context::single_dh_use);
    if (!cfg.tls_cert_file.empty()) {
        boost::system::error_code ec;
        ctx.use_certificate_chain_file(cfg.tls_cert_file, ec);
        if (ec)
            throw std::runtime_error("--tls-cert " + cfg.tls_cert_file + ": " + ec.message());
        ctx.use_private_key_file(cfg.tls_key_file, ssl::context::pem, ec);
        if (ec)
            throw std::runtime_error("--tls-key " + cfg.tls_key_file + ": " + ec.message());
        if (X509* leaf = SSL_CTX_get0_certificate(ctx.native_handle()))
            out.fingerprint_sha256 = fingerprint(leaf);
        // Set before any thread makes a connection from the context (SSL_new copies it);
        // presents the pair of the latest reload, if any.
        SSL_CTX_set_cert_cb(ctx.native_handle(), use_rotated_pair, &out);
        return;
    }
    std::string cert_pem;
    std::string key_pem;
    make_self_signed(cert_pem, key_pem, out.fingerprint_sha256);
    ctx.use_certificate_chain(boost::asio::buffer(cert_pem));
    ctx.use_private_key(boost::asio::buffer(key_pem), ssl::context::pem);
    out.self_signed = true;
    if (!cfg.tls_self_signed_out.empty()) {
        std::ofstream f(cfg.tls_self_signed_out, std::ios::trunc);
        f << cert_pem;
        if (!f)
            throw std::runtime_error("--tls-self-signed-out " + cfg.tls_self_signed_out +
                                     ": cannot write");
    }
}

}  // namespace eventcast::net

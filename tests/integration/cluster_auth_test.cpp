// Cluster mode against a nats-server with TLS and user/password authorization (issue #18, item
// 6): a CA, a server certificate (SAN IP:127.0.0.1, DNS:localhost) and a client certificate are
// made at test time with the openssl CLI in nats-server's temporary directory. Two nodes on
// tls:// with the CA, a client certificate (verify: true) and the right password deliver across;
// a wrong password and a missing CA each leave the node not ready (the password's reason is
// logged).
#include "harness.hpp"
#include "nats_server.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace eventcast::testing {
namespace {

bool run(const std::string& cmd) {
    return std::system((cmd + " >/dev/null 2>&1").c_str()) == 0;
}

// Writes ca.pem, server.pem/server.key and client.pem/client.key into `dir`; false on failure.
bool make_certificates(const std::string& dir) {
    std::ofstream(dir + "/san.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    const std::string d = "'" + dir + "'";
    return run("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=eventcast-test-ca"
               " -keyout " +
               d + "/ca.key -out " + d + "/ca.pem") &&
           run("openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout " + d +
               "/server.key -out " + d + "/server.csr") &&
           run("openssl x509 -req -in " + d + "/server.csr -CA " + d + "/ca.pem -CAkey " + d +
               "/ca.key -CAcreateserial -days 1 -extfile " + d + "/san.ext -out " + d +
               "/server.pem") &&
           run("openssl req -newkey rsa:2048 -nodes -subj /CN=eventcast-node -keyout " + d +
               "/client.key -out " + d + "/client.csr") &&
           run("openssl x509 -req -in " + d + "/client.csr -CA " + d + "/ca.pem -CAkey " + d +
               "/ca.key -CAcreateserial -days 1 -out " + d + "/client.pem");
}

std::string read_all(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

class ClusterAuthTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (nats_server_binary().empty())
            GTEST_SKIP() << "nats-server is not installed (apt-get install nats-server, or "
                            "scripts/bootstrap); cluster tests need a real one";
        // The certificates live in a directory of their own made before nats-server starts,
        // since its configuration names them.
        char tmpl[] = "/tmp/eventcast-natstls-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        certs_ = tmpl;
        ASSERT_TRUE(make_certificates(certs_)) << "openssl could not make the test certificates";
        nats_ = std::make_unique<nats_server_process>(
            "tls {\n  cert_file: \"" + certs_ + "/server.pem\"\n  key_file: \"" + certs_ +
            "/server.key\"\n  ca_file: \"" + certs_ +
            "/ca.pem\"\n  verify: true\n  timeout: 2\n}\n"
            "authorization {\n  user: eventcast\n  password: \"s3cret-pw\"\n}\n");
    }

    void TearDown() override {
        if (!certs_.empty())
            std::system(("rm -rf '" + certs_ + "'").c_str());
    }

    // A node on tls://; `with_ca` / `with_cert` leave out the CA or the client certificate.
    std::unique_ptr<server_process> node(const std::string& password, bool with_ca = true,
                                         const std::string& log_to = {}) {
        auto args = cluster_node_args(
            nats_->url("tls"), {"--cluster-tls-cert", certs_ + "/client.pem", "--cluster-tls-key",
                                certs_ + "/client.key", "--cluster-user", "eventcast",
                                "--cluster-password", password});
        if (with_ca) {
            args.push_back("--cluster-tls-ca");
            args.push_back(certs_ + "/ca.pem");
        }
        if (!log_to.empty()) {
            args.push_back("--log-level");
            args.push_back("info");
        }
        return std::make_unique<server_process>(args, "test-key", 0, log_to);
    }

    static long metric(const server_process& n, const std::string& name) {
        return metric_value(n.port(), name);
    }

    static bool becomes_ready(const server_process& n, std::chrono::milliseconds within = 10s) {
        const auto end = std::chrono::steady_clock::now() + within;
        while (std::chrono::steady_clock::now() < end) {
            if (readyz(n.port()) == 200)
                return true;
            std::this_thread::sleep_for(50ms);
        }
        return false;
    }

    // A node that must not connect: stays 503 and eventcast_cluster_connected 0 for 3 s, and
    // its log (at info) names the reason, one of `reasons`.
    void expect_refused(server_process& n, const std::string& log,
                        const std::vector<std::string>& reasons) {
        const auto end = std::chrono::steady_clock::now() + 3s;
        while (std::chrono::steady_clock::now() < end) {
            ASSERT_EQ(readyz(n.port()), 503u) << "the node stopped answering; its log:\n"
                                              << read_all(log);
            ASSERT_EQ(metric(n, "eventcast_cluster_connected"), 0);
            std::this_thread::sleep_for(200ms);
        }
        const auto text = read_all(log);
        bool named = false;
        for (const auto& r : reasons)
            named = named || text.find(r) != std::string::npos;
        EXPECT_TRUE(named) << "log does not say why:\n" << text;
        EXPECT_EQ(text.find("connected to NATS at"), std::string::npos) << text;
    }

    std::string certs_;
    std::unique_ptr<nats_server_process> nats_;
};

TEST_F(ClusterAuthTest, NodesOnTlsWithClientCertificateAndPasswordDeliverAcross) {
    auto a = node("s3cret-pw");
    auto b = node("s3cret-pw");
    ASSERT_TRUE(becomes_ready(*a));
    ASSERT_TRUE(becomes_ready(*b));
    EXPECT_EQ(metric(*a, "eventcast_cluster_connected"), 1);
    EXPECT_EQ(metric(*b, "eventcast_cluster_connected"), 1);

    ws_client sub(b->port(), b->api_key());
    sub.init();
    ASSERT_TRUE(sub.expect_type("connection_ack"));
    sub.subscribe("s1", "/default/tls");
    ASSERT_TRUE(sub.expect_type("subscribe_success"));

    ws_client pub(a->port(), a->api_key());
    pub.init();
    ASSERT_TRUE(pub.expect_type("connection_ack"));
    pub.publish("p1", "/default/tls", {R"({"over":"tls"})"});
    ASSERT_TRUE(pub.expect_type("publish_success"));

    std::string got;
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (got.empty() && std::chrono::steady_clock::now() < end)
        if (auto f = sub.read_json(200ms); f && f->at("type").as_string() == "data")
            got = std::string(f->at("event").as_string());
    EXPECT_EQ(got, R"({"over":"tls"})");
}

TEST_F(ClusterAuthTest, WrongPasswordLeavesTheNodeNotReadyAndSaysWhy) {
    const std::string log = certs_ + "/wrong-password.log";
    auto n = node("not-the-password", true, log);
    expect_refused(*n, log, {"Authorization Violation", "authorization violation"});
}

// The certificate is refused (the node never connects), but the log only says that no server
// was reachable: with retry-on-failed-connect, nats.c keeps no text for a TLS handshake failure
// (docs/CLUSTER.md, "Gaps"). The test holds the part that is true.
TEST_F(ClusterAuthTest, NodeWithoutTheCaRefusesTheServerCertificate) {
    const std::string log = certs_ + "/no-ca.log";
    auto n = node("s3cret-pw", false, log);
    expect_refused(*n, log, {"no NATS server reachable yet"});
}

}  // namespace
}  // namespace eventcast::testing

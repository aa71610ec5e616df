// nats-server for the cluster tests. The port is found by binding port 0 and closing it just
// before nats-server starts; readiness is a TCP connect that gets nats-server's INFO line.
#include "nats_server.hpp"

#include "harness.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <signal.h>
#include <stdexcept>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace eventcast::testing {

std::vector<std::string> cluster_node_args(const std::string& url, std::vector<std::string> extra) {
    std::vector<std::string> args{
        "--cluster", url, "--cluster-reconnect-wait-ms", "50", "--cluster-reconnect-max-ms", "200"};
    args.insert(args.end(), std::make_move_iterator(extra.begin()),
                std::make_move_iterator(extra.end()));
    return args;
}

std::string nats_server_binary() {
    std::vector<std::string> dirs;
    if (const char* path = std::getenv("PATH")) {
        std::string p = path;
        for (std::size_t start = 0;;) {
            const auto colon = p.find(':', start);
            dirs.push_back(p.substr(start, colon == std::string::npos ? colon : colon - start));
            if (colon == std::string::npos)
                break;
            start = colon + 1;
        }
    }
    dirs.push_back("/usr/sbin");
    dirs.push_back("/usr/local/sbin");
    for (const auto& d : dirs) {
        const auto candidate = d + "/nats-server";
        if (!d.empty() && ::access(candidate.c_str(), X_OK) == 0)
            return candidate;
    }
    return {};
}

namespace {

std::uint16_t free_port() {
    asio::io_context ioc;
    asio::ip::tcp::acceptor a(ioc, {asio::ip::make_address("127.0.0.1"), 0});
    return a.local_endpoint().port();
}

bool answers_info(std::uint16_t port) {
    try {
        asio::io_context ioc;
        asio::ip::tcp::socket s(ioc);
        s.connect({asio::ip::make_address("127.0.0.1"), port});
        std::string line;
        asio::read_until(s, asio::dynamic_buffer(line), "\r\n");
        return line.rfind("INFO ", 0) == 0;
    } catch (const std::exception&) {
        return false;
    }
}

}  // namespace

nats_server_process::nats_server_process(std::string config) {
    char tmpl[] = "/tmp/eventcast-nats-XXXXXX";
    if (!mkdtemp(tmpl))
        throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    if (!config.empty()) {
        config_ = dir_ + "/nats.conf";
        std::ofstream(config_) << config << "\n";
    }
    port_ = free_port();
    launch();
}

void nats_server_process::launch() {
    const auto bin = nats_server_binary();
    if (bin.empty())
        throw std::runtime_error("nats-server is not installed (scripts/bootstrap installs it)");
    std::vector<std::string> args = {bin,   "-a",  "127.0.0.1",     "-p", std::to_string(port_),
                                     "-js", "-sd", dir_ + "/store", "-l", dir_ + "/nats.log"};
    if (!config_.empty())
        args.insert(args.begin() + 1, {"-c", config_});
    pid_ = fork();
    if (pid_ == 0) {
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    if (!eventually([&] { return answers_info(port_); }, 15s))
        throw std::runtime_error("nats-server did not start on port " + std::to_string(port_) +
                                 " (log: " + dir_ + "/nats.log)");
}

void nats_server_process::kill_now() {
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
}

void nats_server_process::restart() {
    kill_now();
    launch();
}

nats_server_process::~nats_server_process() {
    kill_now();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

}  // namespace eventcast::testing

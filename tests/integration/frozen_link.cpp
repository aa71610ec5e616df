// The freezable proxy: one thread accepts, one thread per connection polls both sockets and
// copies bytes while not frozen. While frozen nothing is read, so the kernel buffers fill and
// both peers see a connection that is open and silent, as in a real partition.
#include "frozen_link.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace eventcast::testing {

namespace {

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

// Writes all of `n` bytes; false when the peer is gone.
bool write_all(int fd, const char* p, std::size_t n) {
    while (n > 0) {
        const auto w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

}  // namespace

frozen_link::frozen_link(std::uint16_t upstream_port) : upstream_(upstream_port) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    auto addr = loopback(0);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listener_, 64) != 0)
        throw std::runtime_error("frozen_link: cannot listen");
    socklen_t len = sizeof addr;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
}

frozen_link::~frozen_link() {
    stopping_ = true;
    acceptor_.join();
    ::close(listener_);
    std::lock_guard lock(threads_mutex_);
    for (auto& t : threads_)
        t.join();
}

void frozen_link::accept_loop() {
    while (!stopping_) {
        pollfd p{listener_, POLLIN, 0};
        if (::poll(&p, 1, 20) <= 0)
            continue;
        const int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0)
            continue;
        const int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        auto addr = loopback(upstream_);
        if (::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(upstream);
            ::close(client);
            continue;
        }
        const int one = 1;
        ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ::setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        ++accepted_;
        std::lock_guard lock(threads_mutex_);
        threads_.emplace_back([this, client, upstream] { pump(client, upstream); });
    }
}

void frozen_link::pump(int client, int upstream) {
    // open[0]: client -> upstream still forwarding; open[1]: upstream -> client.
    bool open[2] = {true, true};
    const int from[2] = {client, upstream};
    const int to[2] = {upstream, client};
    char buf[64 * 1024];
    while (!stopping_ && (open[0] || open[1])) {
        if (frozen_) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            continue;
        }
        pollfd p[2] = {{client, static_cast<short>(open[0] ? POLLIN : 0), 0},
                       {upstream, static_cast<short>(open[1] ? POLLIN : 0), 0}};
        if (::poll(p, 2, 20) <= 0)
            continue;
        bool failed = false;
        for (int i = 0; i < 2 && !failed; ++i) {
            if (!open[i] || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            const auto n = ::recv(from[i], buf, sizeof buf, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {  // end of that direction: pass the half-close on
                open[i] = false;
                ::shutdown(to[i], SHUT_WR);
                failed = n < 0;
                continue;
            }
            failed = !write_all(to[i], buf, static_cast<std::size_t>(n));
        }
        if (failed)
            break;
    }
    ::close(client);
    ::close(upstream);
}

}  // namespace eventcast::testing

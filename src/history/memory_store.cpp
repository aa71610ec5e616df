// In-memory history. Each namespace keeps one list of its entries in seq order (which is also
// arrival order, so its front is its oldest); each channel keeps iterators to its own entries.
// Count eviction takes a channel's front, age eviction a namespace's front, byte eviction the
// oldest front across namespaces; all are O(1) per evicted entry.
#include "history/memory_store.hpp"

#include <algorithm>
#include <cassert>

namespace eventcast::history {

memory_store::memory_store(const core::history_config& cfg, std::uint32_t epoch)
    : cfg_(cfg), epoch_(epoch) {}

memory_store::~memory_store() = default;

memory_store::ns_rec& memory_store::ns_for(std::string_view ns) {
    auto it = namespaces_.find(ns);
    if (it == namespaces_.end()) {
        it = namespaces_.emplace(std::string(ns), ns_rec{}).first;
        it->second.name = it->first;
        it->second.lim = cfg_.for_namespace(ns);
    }
    return it->second;
}

std::uint64_t memory_store::reserve(std::string_view ns, std::size_t n) {
    std::lock_guard lock(mutex_);
    auto& rec = ns_for(ns);
    const auto first = rec.last_seq + 1;
    rec.last_seq += n;
    return first;
}

void memory_store::evict_oldest(channel_rec& ch) {
    auto& ns = *ch.ns;
    assert(!ch.items.empty());
    const auto it = ch.items.front();
    ch.items.pop_front();
    ch.evicted_through = it->seq;
    bytes_ -= it->bytes;
    --events_;
    ++evicted_;
    ns.order.erase(it);
    if (ch.items.empty()) {
        // Forget the channel, but not that it lost events: fold that into the namespace.
        ns.dropped_through = std::max(ns.dropped_through, ch.evicted_through);
        bytes_ -= channel_overhead + ch.path.str().size();
        const std::string key = ch.path.str();  // not a reference into the erased node
        ns.channels.erase(ns.channels.find(key));
    }
}

void memory_store::expire_ns(ns_rec& ns, clock::time_point now) {
    while (!ns.order.empty() && now - ns.order.front().at >= ns.lim.age)
        evict_oldest(*ns.order.front().ch);
}

void memory_store::expire(clock::time_point now) {
    std::lock_guard lock(mutex_);
    for (auto& [name, ns] : namespaces_)
        expire_ns(ns, now);
}

void memory_store::append(const events::channel_path& path, std::uint64_t first_seq,
                          const pubsub::shared_batch& batch, clock::time_point now) {
    std::lock_guard lock(mutex_);
    auto& ns = ns_for(path.namespace_name());
    const std::uint64_t last = first_seq + batch->bodies.size() - 1;
    if (ns.lim.count == 0 || ns.lim.age.count() <= 0) {
        // History is off here: every event counts as evicted the moment it is published.
        ns.dropped_through = std::max(ns.dropped_through, last);
        return;
    }
    expire_ns(ns, now);
    auto it = ns.channels.find(path.str());
    if (it == ns.channels.end()) {
        it = ns.channels.emplace(path.str(), channel_rec{path, &ns, {}, 0}).first;
        bytes_ += channel_overhead + path.str().size();
    }
    auto& ch = it->second;
    // The batch stays in memory while any of its events is retained, so the newest of them,
    // which is evicted last, carries the bodies of all: the count is what is really held.
    std::size_t body_bytes = 0;
    for (const auto& body : batch->bodies)
        body_bytes += body.size();
    const auto n = static_cast<std::uint32_t>(batch->bodies.size());
    for (std::uint32_t i = 0; i < n; ++i) {
        const auto bytes = event_overhead + (i + 1 == n ? body_bytes : 0);
        ns.order.push_back(entry{first_seq + i, now, batch, i, &ch, bytes});
        ch.items.push_back(std::prev(ns.order.end()));
        bytes_ += bytes;
        ++events_;
    }
    // The channel keeps at least one entry after this, so `ch` stays valid.
    while (ch.items.size() > ns.lim.count)
        evict_oldest(ch);
    while (bytes_ > cfg_.max_bytes && events_ > 0) {
        ns_rec* oldest = nullptr;
        for (auto& [name, other] : namespaces_)
            if (!other.order.empty() &&
                (!oldest || other.order.front().at < oldest->order.front().at))
                oldest = &other;
        evict_oldest(*oldest->order.front().ch);
    }
}

events::result<std::vector<stored_event>> memory_store::since(
    const events::channel_pattern& pattern, const events::position& after, clock::time_point now) {
    const auto shown = [&](std::uint64_t seq) {
        return "'" + events::format_position({epoch_, seq}) + "'";
    };
    if (after.epoch != epoch_)
        return events::protocol_error{
            events::error_kind::resume_too_old,
            "position '" + events::format_position(after) +
                "' is from another run of the server (this one's positions start with '" +
                events::format_position({epoch_, 0}).substr(0, 8) +
                "'); its history is gone. Subscribe without 'resume' and fetch the current state"};
    std::lock_guard lock(mutex_);
    auto& ns = ns_for(pattern.namespace_name());
    if (after.seq > ns.last_seq)
        return events::protocol_error::invalid(
            "position " + shown(after.seq) + " is ahead of the newest in namespace '" + ns.name +
            "' (" + shown(ns.last_seq) + "); resume from a position a data frame carried");
    expire_ns(ns, now);
    std::uint64_t floor = ns.dropped_through;
    std::vector<stored_event> out;
    if (!pattern.wildcard()) {
        auto it = ns.channels.find(pattern.prefix().str());
        if (it != ns.channels.end()) {
            const auto& items = it->second.items;
            floor = std::max(floor, it->second.evicted_through);
            auto first = std::partition_point(items.begin(), items.end(),
                                              [&](const auto& e) { return e->seq <= after.seq; });
            for (; first != items.end(); ++first)
                out.push_back({(*first)->seq, (*first)->batch, (*first)->index});
        }
    } else {
        for (const auto& [name, ch] : ns.channels)
            if (pattern.matches(ch.path))
                floor = std::max(floor, ch.evicted_through);
        for (auto it = ns.order.rbegin(); it != ns.order.rend() && it->seq > after.seq; ++it)
            if (pattern.matches(it->ch->path))
                out.push_back({it->seq, it->batch, it->index});
        std::reverse(out.begin(), out.end());
    }
    if (after.seq < floor) {
        const auto& lim = ns.lim;
        return events::protocol_error{
            events::error_kind::resume_too_old,
            "events after position " + shown(after.seq) + " on /" + pattern.str() +
                " are no longer retained (retained: after " + shown(floor) + "; namespace '" +
                ns.name + "' keeps " + std::to_string(lim.count) + " events per channel for " +
                core::format_duration(lim.age) +
                "). Subscribe without 'resume' and fetch the current state"};
    }
    return out;
}

events::position memory_store::newest(std::string_view ns) const {
    std::lock_guard lock(mutex_);
    auto it = namespaces_.find(ns);
    return {epoch_, it == namespaces_.end() ? 0 : it->second.last_seq};
}

store::usage memory_store::stats() const {
    std::lock_guard lock(mutex_);
    return {events_, bytes_, evicted_};
}

}  // namespace eventcast::history

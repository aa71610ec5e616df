// JetStream-backed history (see the header). The replay reads the stream with direct gets
// ("next message at or after seq on this subject filter"), one request per replayed event,
// bounded by the namespace's count; simple and exact, not the fastest way to read many events.
#include "cluster/jetstream_history.hpp"

#include "cluster/batch_codec.hpp"
#include "cluster/subjects.hpp"
#include "core/log.hpp"
#include "events/message.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>

namespace eventcast::cluster {

namespace {

std::uint32_t fnv1a(std::string_view s) {
    std::uint32_t h = 2166136261u;
    for (const char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619u;
    }
    return h;
}

std::uint64_t header_u64(natsMsg* msg, const char* key) {
    const char* v = nullptr;
    if (natsMsgHeader_Get(msg, key, &v) != NATS_OK || !v)
        return 0;
    return parse_sequence(v).value_or(0);
}

events::protocol_error too_old(std::string message) {
    return {events::error_kind::resume_too_old, std::move(message)};
}

}  // namespace

jetstream_history::jetstream_history(const core::config& cfg) : cfg_(cfg) {
    const auto& prefix = cfg.cluster.subject_prefix;
    for (const auto& ns : cfg.namespaces) {
        const auto& lim = cfg.history.for_namespace(ns);
        if (lim.count == 0 || lim.age.count() <= 0)
            continue;  // history off: the bridge keeps plain NATS delivery for it
        ns_state st;
        st.stream = stream_name(prefix, ns);
        st.subjects[0] = prefix + "." + encode_token(ns);
        st.subjects[1] = st.subjects[0] + ".>";
        st.live = prefix + "-live." + encode_token(ns);
        st.lim = lim;
        ns_.emplace(ns, std::move(st));
    }
}

std::string jetstream_history::stream_name(std::string_view prefix, std::string_view ns) {
    std::string out;
    for (const char c : std::string(prefix) + "_" + std::string(ns))
        out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
    return out;
}

void jetstream_history::set_context(jsCtx* js) {
    std::unique_lock io(io_);
    js_ = js;
    std::lock_guard lock(mutex_);
    for (auto& [name, st] : ns_)
        st.ready = false;  // a new connection may be to another NATS: ask again
}

void jetstream_history::connected() {
    std::shared_lock io(io_);
    for (auto& [ns, st] : ns_) {
        // Checked again even when known: maybe another NATS server, or one that lost its
        // store. Meanwhile publishes keep going through the stream believed to be there.
        std::uint64_t first = 0, last = 0;
        const bool ok = ensure(st, true) && bounds(st, first, last);
        std::lock_guard lock(mutex_);
        if (ok && st.interest)
            st.through = std::max(st.through, last);
    }
    caught_up_.notify_all();
}

bool jetstream_history::has_stream(std::string_view ns) const {
    return ns_.find(ns) != ns_.end();  // fixed after construction
}

bool jetstream_history::ready(std::string_view ns) const {
    auto it = ns_.find(ns);
    if (it == ns_.end())
        return false;
    std::lock_guard lock(mutex_);
    return it->second.ready;
}

std::string jetstream_history::live_subject(std::string_view ns) const {
    auto it = ns_.find(ns);
    return it == ns_.end() ? std::string() : it->second.live;
}

bool jetstream_history::ensure(ns_state& st, bool force) {
    if (!force) {
        std::lock_guard lock(mutex_);
        if (st.ready)
            return true;
    }
    if (!js_)
        return false;
    // Creating a file-backed stream can take a while on a loaded NATS server, and a node that
    // does not know its stream exists publishes locally only: wait longer here than for reads
    // (this runs once per namespace per connection).
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = std::max<int64_t>(5000, cfg_.cluster.subscribe_timeout.count());

    const char* subjects[2] = {st.subjects[0].c_str(), st.subjects[1].c_str()};
    const std::string live = st.live + ".>";
    jsRePublish rp;
    jsRePublish_Init(&rp);
    rp.Source = ">";
    rp.Destination = live.c_str();
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = st.stream.c_str();
    sc.Subjects = subjects;
    sc.SubjectsLen = 2;
    sc.Retention = js_LimitsPolicy;
    sc.Discard = js_DiscardOld;
    sc.Storage = js_FileStorage;
    sc.MaxMsgs = static_cast<int64_t>(st.lim.count);
    sc.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(st.lim.age).count();
    sc.MaxBytes = static_cast<int64_t>(cfg_.history.max_bytes);
    sc.AllowDirect = true;
    sc.RePublish = &rp;
    sc.Replicas = 1;

    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    // Keep the replica count an operator set on an existing stream (`nats stream edit`).
    if (js_GetStreamInfo(&si, js_, sc.Name, &jo, &jerr) == NATS_OK && si) {
        if (si->Config)
            sc.Replicas = std::max<int64_t>(1, si->Config->Replicas);
        jsStreamInfo_Destroy(si);
        si = nullptr;
        jerr = static_cast<jsErrCode>(0);
        if (const auto s = js_UpdateStream(&si, js_, &sc, &jo, &jerr); s != NATS_OK) {
            log::warn("cluster: cannot update JetStream stream {}: {} (error {})", st.stream,
                      natsStatus_GetText(s), static_cast<int>(jerr));
            return false;
        }
    } else if (const auto s = js_AddStream(&si, js_, &sc, &jo, &jerr); s != NATS_OK) {
        log::warn("cluster: cannot create JetStream stream {}: {} (error {})", st.stream,
                  natsStatus_GetText(s), static_cast<int>(jerr));
        return false;
    }
    const auto epoch = fnv1a(st.stream + ":" + std::to_string(si ? si->Created : 0));
    jsStreamInfo_Destroy(si);
    std::lock_guard lock(mutex_);
    if (st.epoch != 0 && st.epoch != (epoch ? epoch : 1)) {
        log::warn("cluster: JetStream stream {} was recreated; positions start over", st.stream);
        st.through = 0;
    }
    st.epoch = epoch ? epoch : 1;
    st.ready = true;
    log::debug("cluster: JetStream stream {} ready (epoch {:08x})", st.stream, st.epoch);
    return true;
}

bool jetstream_history::bounds(const ns_state& st, std::uint64_t& first, std::uint64_t& last) {
    if (!js_)
        return false;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = cfg_.cluster.subscribe_timeout.count();
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js_, st.stream.c_str(), &jo, nullptr) != NATS_OK || !si)
        return false;
    first = si->State.FirstSeq;
    last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    return true;
}

std::uint32_t jetstream_history::epoch_of(std::string_view ns) {
    auto it = ns_.find(ns);
    if (it == ns_.end())
        return 0;
    {
        std::lock_guard lock(mutex_);
        if (it->second.ready)
            return it->second.epoch;
    }
    std::shared_lock io(io_);
    if (!ensure(it->second))
        return 0;
    std::lock_guard lock(mutex_);
    return it->second.epoch;
}

void jetstream_history::interest_started(std::string_view ns, bool connected) {
    auto it = ns_.find(ns);
    if (it == ns_.end())
        return;
    if (!connected) {
        std::lock_guard lock(mutex_);
        it->second.interest = true;
        return;
    }
    std::shared_lock io(io_);
    std::uint64_t first = 0, last = 0;
    const bool ok = ensure(it->second) && bounds(it->second, first, last);
    std::lock_guard lock(mutex_);
    it->second.interest = true;
    if (ok)
        it->second.through = std::max(it->second.through, last);
    else
        log::warn(
            "cluster: JetStream did not answer for namespace {}; its history may miss "
            "events until it does",
            ns);
    caught_up_.notify_all();
}

void jetstream_history::interest_stopped(std::string_view ns) {
    auto it = ns_.find(ns);
    if (it == ns_.end())
        return;
    std::lock_guard lock(mutex_);
    it->second.interest = false;
}

std::uint64_t jetstream_history::live_through(std::string_view ns, bool& interest) const {
    auto it = ns_.find(ns);
    interest = false;
    if (it == ns_.end())
        return 0;
    std::lock_guard lock(mutex_);
    interest = it->second.interest && it->second.ready;
    return it->second.through;
}

bool jetstream_history::fetch(std::string_view ns, std::uint64_t seq, std::string& subject,
                              std::string& payload, std::string* origin) {
    auto it = ns_.find(ns);
    if (it == ns_.end())
        return false;
    std::shared_lock io(io_);
    if (!js_)
        return false;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = cfg_.cluster.subscribe_timeout.count();
    jsDirectGetMsgOptions dg;
    jsDirectGetMsgOptions_Init(&dg);
    dg.Sequence = seq;
    natsMsg* msg = nullptr;
    if (js_DirectGetMsg(&msg, js_, it->second.stream.c_str(), &jo, &dg) != NATS_OK)
        return false;
    const char* original = nullptr;
    const bool ok = natsMsgHeader_Get(msg, "Nats-Subject", &original) == NATS_OK && original &&
                    header_u64(msg, "Nats-Sequence") == seq;
    if (ok) {
        subject = original;
        payload.assign(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
        const char* o = nullptr;
        if (origin)
            *origin = natsMsgHeader_Get(msg, "Eventcast-Origin", &o) == NATS_OK && o ? o : "";
    }
    natsMsg_Destroy(msg);
    return ok;
}

bool jetstream_history::take_live(std::string_view ns, const events::position& p) {
    auto it = ns_.find(ns);
    if (it == ns_.end())
        return true;
    std::lock_guard lock(mutex_);
    auto& st = it->second;
    if (p.epoch == st.epoch && p.seq <= st.through)
        return false;  // replayed to a resume already, or stored before this node's interest
    if (p.epoch == st.epoch)
        st.through = p.seq;
    caught_up_.notify_all();
    return true;
}

events::result<void> jetstream_history::prepare_resume(std::string_view ns,
                                                       const events::position& after) {
    auto it = ns_.find(ns);
    if (it == ns_.end())
        return {};  // since() answers
    // A client may have seen, on another node, an event this node has not delivered yet (in
    // flight). Wait for it, bounded, so the replay and the live stream meet exactly there.
    std::unique_lock lock(mutex_);
    auto& st = it->second;
    if (st.interest && st.ready && after.epoch == st.epoch && after.seq > st.through)
        caught_up_.wait_for(lock, cfg_.cluster.subscribe_timeout,
                            [&] { return !st.interest || after.seq <= st.through; });
    return {};
}

events::result<std::vector<history::stored_event>> jetstream_history::since(
    const events::channel_pattern& pattern, const events::position& after,
    history::clock::time_point) {
    auto it = ns_.find(pattern.namespace_name());
    if (it == ns_.end())
        return too_old("namespace '" + std::string(pattern.namespace_name()) +
                       "' keeps no history");
    auto& st = it->second;
    std::shared_lock io(io_);
    std::uint64_t first = 0, last = 0;
    if (!ensure(st) || !bounds(st, first, last))
        return too_old(
            "history is unavailable (NATS JetStream does not answer); subscribe "
            "without resume");
    std::uint32_t epoch = 0;
    std::uint64_t through = 0;
    {
        std::lock_guard lock(mutex_);
        epoch = st.epoch;
        through = st.through;
    }
    if (after.epoch != epoch)
        return too_old("position " + events::format_position(after) +
                       " is from another history (the stream was recreated, or another "
                       "deployment); subscribe without resume");
    if (after.seq > last)
        return events::protocol_error::invalid("'resume.after' " + events::format_position(after) +
                                               " is ahead of the newest position " +
                                               events::format_position({epoch, last}));
    if (after.seq + 1 < first)
        return too_old("events after " + events::format_position(after) +
                       " are no longer retained (oldest retained: " +
                       events::format_position({epoch, first}) + ")");
    // Up to what this node has delivered live: everything later arrives live (take_live).
    const auto upto = std::min(through, last);
    if (after.seq < through && through > last)
        log::warn("cluster: stream {} reports last {} below delivered {}", st.stream, last,
                  through);

    std::vector<history::stored_event> out;
    const auto filter = pattern_subject(cfg_.cluster.subject_prefix, pattern);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = cfg_.cluster.subscribe_timeout.count();
    std::uint64_t seq = after.seq + 1;
    while (seq <= upto) {
        jsDirectGetMsgOptions dg;
        jsDirectGetMsgOptions_Init(&dg);
        dg.Sequence = seq;
        dg.NextBySubject = filter.c_str();
        natsMsg* msg = nullptr;
        const auto s = js_DirectGetMsg(&msg, js_, st.stream.c_str(), &jo, &dg);
        if (s == NATS_NOT_FOUND)
            break;
        if (s != NATS_OK)
            return too_old(std::string("history is unavailable (reading the stream failed: ") +
                           natsStatus_GetText(s) + "); subscribe without resume");
        const auto found = header_u64(msg, "Nats-Sequence");
        if (found == 0 || found > upto) {
            natsMsg_Destroy(msg);
            break;
        }
        auto batch = decode_batch(std::string_view(
            natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg))));
        natsMsg_Destroy(msg);
        if (batch) {
            auto b = std::make_shared<pubsub::event_batch>(std::move(*batch));
            b->bytes = 0;
            for (auto& body : b->bodies) {
                events::data_body_close(body, {epoch, found});
                b->bytes += body.size();
            }
            pubsub::shared_batch shared = std::move(b);
            for (std::uint32_t i = 0; i < shared->bodies.size(); ++i)
                out.push_back({found, shared, i});
        }  // else: not ours (someone else published there); the live path drops it too
        seq = found + 1;
    }
    // Events may have expired while we read: then the answer could have a hole.
    if (!bounds(st, first, last))
        return too_old(
            "history is unavailable (NATS JetStream does not answer); subscribe "
            "without resume");
    if (after.seq + 1 < first)
        return too_old("events after " + events::format_position(after) +
                       " are no longer retained (oldest retained: " +
                       events::format_position({epoch, first}) + ")");
    std::lock_guard lock(mutex_);
    served_ += out.size();
    return out;
}

events::position jetstream_history::newest(std::string_view ns) const {
    auto it = ns_.find(ns);
    if (it == ns_.end())
        return {};
    std::lock_guard lock(mutex_);
    return {it->second.epoch, it->second.through};
}

history::store::usage jetstream_history::stats() const {
    return {};  // kept by NATS: `nats stream info`
}

}  // namespace eventcast::cluster

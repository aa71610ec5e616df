// Trie of channel segments. A node holds the exact subscriptions for its path and the wildcard
// subscriptions for "its path/*". Publishing to a/b/c visits root->a->b->c, collecting the
// wildcard lists of a and b (deeper than their prefix) and the exact list of c.
#include "pubsub/broker.hpp"

#include <cassert>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

namespace eventcast::pubsub {

namespace {
struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
        return std::hash<std::string_view>{}(s);
    }
};
}  // namespace

struct broker::node {
    node* parent = nullptr;
    std::string name;
    std::unordered_map<std::string, std::unique_ptr<node>, string_hash, std::equal_to<>> children;
    std::vector<subscription*> exact;
    std::vector<subscription*> wild;
    bool empty() const noexcept { return children.empty() && exact.empty() && wild.empty(); }
};

class subscription {
public:
    subscriber* target = nullptr;  // alive until unsubscribe (the subscriber's contract)
    shared_bytes prefix;
    broker::node* owner = nullptr;  // NOLINT: the broker's node type, reached only by the broker
    bool wild = false;
    std::size_t pos = 0;  // index in owner's exact/wild vector, for O(1) removal
};

broker::broker() : root_(std::make_unique<node>()) {}

broker::~broker() {
    // Live subscriptions are owned by the broker between subscribe() and unsubscribe(), so they
    // go with it; the trie's nodes free themselves.
    std::vector<node*> pending{root_.get()};
    while (!pending.empty()) {
        node* n = pending.back();
        pending.pop_back();
        for (subscription* s : n->exact)
            delete s;
        for (subscription* s : n->wild)
            delete s;
        for (auto& [name, child] : n->children)
            pending.push_back(child.get());
    }
}

std::size_t broker::node_count() const {
    std::shared_lock lock(mutex_);
    std::size_t count = 0;
    std::vector<const node*> pending{root_.get()};
    while (!pending.empty()) {
        const node* n = pending.back();
        pending.pop_back();
        count += n->children.size();
        for (const auto& [name, child] : n->children)
            pending.push_back(child.get());
    }
    return count;
}

std::vector<broker::namespace_count> broker::namespace_counts() const {
    std::vector<namespace_count> out;
    std::shared_lock lock(mutex_);
    out.reserve(root_->children.size());
    for (const auto& [name, top] : root_->children) {
        namespace_count c{name, 0, 0};
        std::unordered_set<const subscriber*> seen;
        std::vector<const node*> pending{top.get()};
        while (!pending.empty()) {
            const node* n = pending.back();
            pending.pop_back();
            for (const auto* list : {&n->exact, &n->wild})
                for (const subscription* s : *list) {
                    ++c.subscriptions;
                    if (s->target)
                        seen.insert(s->target);
                }
            for (const auto& [child_name, child] : n->children)
                pending.push_back(child.get());
        }
        c.subscribers = seen.size();
        out.push_back(std::move(c));
    }
    return out;
}

subscription_handle broker::subscribe(const events::channel_pattern& pattern,
                                      std::weak_ptr<subscriber> target, shared_bytes prefix) {
    auto sub = std::make_unique<subscription>();
    sub->target = target.lock().get();
    sub->prefix = std::move(prefix);
    sub->wild = pattern.wildcard();
    std::unique_lock lock(mutex_);
    node* n = root_.get();
    const auto& p = pattern.prefix();
    for (std::size_t i = 0; i < p.size(); ++i) {
        const auto seg = p.segment(i);
        auto it = n->children.find(seg);
        if (it == n->children.end()) {
            auto child = std::make_unique<node>();
            child->parent = n;
            child->name = std::string(seg);
            it = n->children.emplace(child->name, std::move(child)).first;
            if (i == 0 && namespace_listener_)
                namespace_listener_(seg, true);
        }
        n = it->second.get();
    }
    auto& list = sub->wild ? n->wild : n->exact;
    sub->owner = n;
    sub->pos = list.size();
    list.push_back(sub.get());
    subscriptions_.fetch_add(1, std::memory_order_relaxed);
    return sub.release();
}

void broker::unsubscribe(subscription_handle h) {
    if (!h)
        return;
    std::unique_ptr<subscription> sub(h);
    std::unique_lock lock(mutex_);
    node* n = sub->owner;
    auto& list = sub->wild ? n->wild : n->exact;
    assert(list[sub->pos] == sub.get() && "subscription knows its slot");
    list[sub->pos] = list.back();
    list[sub->pos]->pos = sub->pos;
    list.pop_back();
    subscriptions_.fetch_sub(1, std::memory_order_relaxed);
    prune(n);
}

void broker::prune(node* n) {
    while (n != root_.get() && n->empty()) {
        node* parent = n->parent;
        if (parent == root_.get() && namespace_listener_)
            namespace_listener_(n->name, false);
        parent->children.erase(n->name);  // destroys n
        n = parent;
    }
}

void broker::set_namespace_listener(namespace_listener listener) {
    std::unique_lock lock(mutex_);
    namespace_listener_ = std::move(listener);
    if (namespace_listener_)
        for (const auto& [name, child] : root_->children)
            namespace_listener_(name, true);
}

std::size_t broker::publish(const events::channel_path& path, const shared_batch& batch) {
    std::size_t reached = 0;
    auto deliver_all = [&](const std::vector<subscription*>& list) {
        for (const subscription* s : list) {
            if (s->target) {
                s->target->deliver(s->prefix, batch);
                ++reached;
            }
        }
    };
    std::shared_lock lock(mutex_);
    const node* n = root_.get();
    for (std::size_t i = 0; i < path.size(); ++i) {
        auto it = n->children.find(path.segment(i));
        if (it == n->children.end())
            return reached;
        n = it->second.get();
        if (i + 1 < path.size())
            deliver_all(n->wild);  // "prefix/*" matches anything strictly below the prefix
    }
    deliver_all(n->exact);
    return reached;
}

}  // namespace eventcast::pubsub

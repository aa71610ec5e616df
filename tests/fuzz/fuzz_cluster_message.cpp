// libFuzzer target: what a NATS message brings in cluster mode, the subject (up to the first
// '\n') and the payload (the rest), through cluster::subject_channel and cluster::decode_batch.
// Invariants: a decoded subject maps back to itself; a decoded batch re-encodes to the same
// bytes, and each body after a data-frame prefix is one valid JSON object, as a local publish
// would have made it.
#include "cluster/batch_codec.hpp"
#include "cluster/subjects.hpp"
#include "events/message.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace eventcast;
    using fuzz::check;
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const auto nl = input.find('\n');
    const auto subject = input.substr(0, nl);
    const auto payload = nl == std::string_view::npos ? std::string_view{} : input.substr(nl + 1);

    if (auto path = cluster::subject_channel("eventcast", subject)) {
        check(cluster::channel_subject("eventcast", *path) == subject,
              "a subject that decodes maps back to itself");
    } else {
        check(!path.error().message.empty(), "subject errors say what is wrong");
    }
    for (std::size_t i = 0, start = 0; i <= subject.size(); ++i) {
        if (i < subject.size() && subject[i] != '.')
            continue;
        const auto token = subject.substr(start, i - start);
        if (auto seg = cluster::decode_token(token))
            check(cluster::encode_token(*seg) == token, "a token that decodes re-encodes alike");
        start = i + 1;
    }

    // The subject line doubles as a Nats-Sequence header value.
    if (auto seq = cluster::parse_sequence(subject))
        check(*seq > 0 && std::to_string(*seq) == subject, "a sequence is its canonical digits");

    auto batch = cluster::decode_batch(payload);
    if (!batch) {
        check(!batch.error().message.empty(), "payload errors say what is wrong");
        return 0;
    }
    check(cluster::encode_batch(*batch) == payload, "a decoded batch re-encodes to its bytes");
    // Bodies travel open; the receiving node closes each with its position (deliver_local).
    for (auto body : batch->bodies) {
        events::data_body_close(body, {1, 1});
        check(events::is_json_text(events::data_prefix("s1") + body),
              "prefix + closed body is one JSON text");
    }
    return 0;
}

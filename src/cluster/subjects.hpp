// Channel paths and subscribe patterns as NATS subjects, both ways. A channel /ns/a/b is the
// subject <prefix>.ns.a.b: one token per segment. Segments allowed by the AppSync grammar
// ([A-Za-z0-9-], case-sensitive) are already safe NATS tokens and map to themselves; any other
// byte (what NATS treats specially: '.', '*', '>', whitespace; and everything else the grammar
// refuses) is written as '_' and two upper-case hex digits, '_' included, so the mapping is
// reversible for any byte string, not only for valid channels.
#pragma once

#include "events/channel.hpp"
#include "events/error.hpp"

#include <string>
#include <string_view>

namespace eventcast::cluster {

/// True for a usable subject prefix: one or more '.'-separated tokens of [A-Za-z0-9_-]
/// (no wildcards, no whitespace, no empty token). The default is "eventcast".
bool valid_subject_prefix(std::string_view prefix) noexcept;

/// Encodes one segment as one subject token (see the file comment). Never empty for a
/// non-empty segment; never contains '.', '*', '>' or whitespace.
std::string encode_token(std::string_view segment);
/// Reverses encode_token. Fails on an empty token, a malformed escape, or an escape that
/// encode_token would not have written (so each segment has exactly one token).
events::result<std::string> decode_token(std::string_view token);

/// <prefix>.seg1.seg2...
std::string channel_subject(std::string_view prefix, const events::channel_path& path);

/// The subject filter matching exactly the channels `pattern` matches: "ns/a" -> <prefix>.ns.a,
/// "ns/a/*" (any depth below ns/a, never ns/a itself, spec §7.3) -> <prefix>.ns.a.>
std::string pattern_subject(std::string_view prefix, const events::channel_pattern& pattern);

/// The channel a subject names, validated by the channel grammar. Fails when the subject is not
/// under `prefix` or names no valid channel (a message some other publisher put there).
events::result<events::channel_path> subject_channel(std::string_view prefix,
                                                     std::string_view subject);

/// NATS subject matching ('*' one token, '>' one or more trailing tokens), for a literal
/// `subject` against a `filter`. What nats-server does; kept here so tests can check the
/// wildcard mapping against channel_pattern::matches without a server.
bool subject_matches(std::string_view filter, std::string_view subject) noexcept;

}  // namespace eventcast::cluster

// Tests src/events/message.cpp: parsing every client message type and every refusal, and the
// server frames (spec/appsync-events.md §3-§8).
#include "events/message.hpp"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <variant>

namespace eventcast::events {
namespace {

namespace json = boost::json;

const core::limits default_limits{};

boost::system::result<client_message, message_error> parse(std::string_view text) {
    return parse_client_message(text, default_limits);
}

// The refusal of a message that must fail; fails the test if it parsed.
message_error refusal(std::string_view text, const core::limits& limits = default_limits) {
    auto r = parse_client_message(text, limits);
    EXPECT_FALSE(r.has_value()) << "parsed: " << text;
    if (r.has_value())
        return {};
    return r.error();
}

bool contains(std::string_view haystack, std::string_view needle) {
    return haystack.find(needle) != std::string_view::npos;
}

json::object parse_object(std::string_view frame) {
    json::error_code ec;
    auto v = json::parse(json::string_view(frame.data(), frame.size()), ec);
    EXPECT_FALSE(ec) << frame << ": " << ec.message();
    EXPECT_TRUE(v.is_object()) << frame;
    return v.is_object() ? v.as_object() : json::object{};
}

std::string publish_with_events(std::string_view events_json) {
    return std::string(R"({"type":"publish","id":"p1","channel":"/default/a","events":)") +
           std::string(events_json) + "}";
}

// ---- connection_init ----------------------------------------------------------------------------

TEST(ParseClientMessageTest, ParsesConnectionInit) {
    auto r = parse(R"({"type":"connection_init"})");
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(std::holds_alternative<connection_init_msg>(*r));
}

TEST(ParseClientMessageTest, ParsesConnectionInitWithGraphqlEraPayload) {
    auto r = parse(R"({"type":"connection_init","payload":{}})");
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(std::holds_alternative<connection_init_msg>(*r));
}

// ---- subscribe ----------------------------------------------------------------------------------

TEST(ParseClientMessageTest, ParsesSubscribeWithAuthorization) {
    auto r = parse(R"({"type":"subscribe","id":"sub-1","channel":"default/chat",)"
                   R"("authorization":{"x-api-key":"k1","host":"localhost:8443"}})");
    ASSERT_TRUE(r.has_value());
    const auto* m = std::get_if<subscribe_msg>(&*r);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->id, "sub-1");
    EXPECT_EQ(m->channel.str(), "default/chat");
    EXPECT_FALSE(m->channel.wildcard());
    EXPECT_EQ(m->raw_channel, "default/chat");
    ASSERT_TRUE(m->authorization.has_value());
    ASSERT_NE(m->authorization->find("x-api-key"), nullptr);
    EXPECT_EQ(*m->authorization->find("x-api-key"), "k1");
    EXPECT_EQ(*m->authorization->find("host"), "localhost:8443");
}

TEST(ParseClientMessageTest, ParsesSubscribeToAWildcardAndKeepsTheRawChannel) {
    auto r = parse(R"({"type":"subscribe","id":"s","channel":"/default/*/"})");
    ASSERT_TRUE(r.has_value());
    const auto& m = std::get<subscribe_msg>(*r);
    EXPECT_TRUE(m.channel.wildcard());
    EXPECT_EQ(m.channel.str(), "default/*");
    EXPECT_EQ(m.raw_channel, "/default/*/");
    EXPECT_FALSE(m.authorization.has_value());
}

TEST(ParseClientMessageTest, TreatsNullAuthorizationAsAbsent) {
    auto r = parse(R"({"type":"subscribe","id":"s","channel":"ns/a","authorization":null})");
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(std::get<subscribe_msg>(*r).authorization.has_value());
}

TEST(ParseClientMessageTest, AuthorizationKeysAreLowerCasedAndNonStringValuesIgnored) {
    auto r = parse(R"({"type":"subscribe","id":"s","channel":"ns/a","authorization":)"
                   R"({"X-Api-Key":"K","Authorization":"tok","n":1,"o":{"a":"b"}}})");
    ASSERT_TRUE(r.has_value());
    const auto& auth = *std::get<subscribe_msg>(*r).authorization;
    ASSERT_NE(auth.find("x-api-key"), nullptr);
    EXPECT_EQ(*auth.find("x-api-key"), "K");
    EXPECT_EQ(*auth.find("authorization"), "tok");
    EXPECT_EQ(auth.find("n"), nullptr);
    EXPECT_EQ(auth.find("o"), nullptr);
}

TEST(ParseClientMessageTest, IgnoresUnknownFields) {
    // What Amplify adds to every subscribe (spec §10.2).
    auto r = parse(R"({"type":"subscribe","id":"0f7c","channel":"default/a","query":"",)"
                   R"("variables":{},"payload":{"extensions":{"authorization":{}}},"x":[1,2]})");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(std::get<subscribe_msg>(*r).id, "0f7c");
}

// ---- subscribe: the resume extension ------------------------------------------------------------

TEST(ParseClientMessageTest, SubscribeWithoutResumeHasNone) {
    auto r = parse(R"({"type":"subscribe","id":"s","channel":"ns/a"})");
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(std::get<subscribe_msg>(*r).resume_after.has_value());
}

TEST(ParseClientMessageTest, ParsesResumeAfter) {
    auto r =
        parse(R"({"type":"subscribe","id":"s","channel":"ns/*","resume":{"after":"5f3a0c1e-42"}})");
    ASSERT_TRUE(r.has_value()) << r.error().error.message;
    const auto& m = std::get<subscribe_msg>(*r);
    ASSERT_TRUE(m.resume_after.has_value());
    EXPECT_EQ(m.resume_after->epoch, 0x5f3a0c1eu);
    EXPECT_EQ(m.resume_after->seq, 42u);
}

TEST(ParseClientMessageTest, ResumeNullIsAbsentAndUnknownResumeFieldsAreIgnored) {
    auto a = parse(R"({"type":"subscribe","id":"s","channel":"ns/a","resume":null})");
    ASSERT_TRUE(a.has_value());
    EXPECT_FALSE(std::get<subscribe_msg>(*a).resume_after.has_value());
    auto b = parse(
        R"({"type":"subscribe","id":"s","channel":"ns/a","resume":{"after":"00000001-0","x":1}})");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(std::get<subscribe_msg>(*b).resume_after->seq, 0u);
}

TEST(ParseClientMessageTest, MalformedResumeIsASubscribeErrorSayingWhatIsExpected) {
    const std::pair<std::string, std::string> cases[] = {
        {R"("5f3a0c1e-42")", "'resume' is a string; expected an object like"},
        {R"({})", "'resume.after' is missing"},
        {R"({"after":42})", "'resume.after' is a number; expected a position string"},
        {R"({"after":"42"})", "'resume.after': position '42' is not <8 hex digits>-<number>"},
        {R"({"after":"5F3A0C1E-42"})", "does not start with 8 lowercase hex digits"},
        {R"({"after":"5f3a0c1e-042"})", "has a malformed number"},
        {R"({"after":"5f3a0c1e-4x"})", "has a malformed number"},
        {R"({"after":"5f3a0c1e--1"})", "has a malformed number"},
        {R"({"after":"5f3a0c1e-18446744073709551616"})", "does not fit 64 bits"},
    };
    for (const auto& [resume, expected] : cases) {
        const auto e =
            refusal(R"({"type":"subscribe","id":"s1","channel":"ns/a","resume":)" + resume + "}");
        EXPECT_EQ(e.type, "subscribe") << resume;
        EXPECT_EQ(e.id, "s1") << resume;
        EXPECT_EQ(e.error.kind, error_kind::invalid_input) << resume;
        EXPECT_TRUE(contains(e.error.message, expected)) << resume << ": " << e.error.message;
        // The reply is valid JSON whatever the client sent.
        parse_object(error_reply(e));
    }
}

// ---- unsubscribe --------------------------------------------------------------------------------

TEST(ParseClientMessageTest, ParsesUnsubscribe) {
    auto r = parse(R"({"type":"unsubscribe","id":"sub-1"})");
    ASSERT_TRUE(r.has_value());
    const auto* m = std::get_if<unsubscribe_msg>(&*r);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->id, "sub-1");
}

TEST(ParseClientMessageTest, UnsubscribeNeedsNoChannel) {
    EXPECT_TRUE(parse(R"({"id":"x","type":"unsubscribe","channel":5})").has_value());
}

// ---- publish ------------------------------------------------------------------------------------

TEST(ParseClientMessageTest, ParsesPublish) {
    auto r = parse(R"({"type":"publish","id":"op-1","channel":"/default/a",)"
                   R"("events":["{\"msg\":\"hi\"}","42"],"authorization":{"x-api-key":"k"}})");
    ASSERT_TRUE(r.has_value());
    const auto* m = std::get_if<publish_msg>(&*r);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->id, "op-1");
    EXPECT_EQ(m->channel.str(), "default/a");
    EXPECT_EQ(m->raw_channel, "/default/a");
    ASSERT_EQ(m->events.size(), 2u);
    EXPECT_EQ(m->events[0], R"({"msg":"hi"})");
    EXPECT_EQ(m->events[1], "42");
    ASSERT_TRUE(m->authorization.has_value());
}

TEST(ParseClientMessageTest, PublishAcceptsEveryKindOfJsonValue) {
    auto r = parse(publish_with_events(R"(["{}","[1,\"a\"]","\"text\"","true","null"])"));
    ASSERT_TRUE(r.has_value()) << r.error().error.message;
    EXPECT_EQ(std::get<publish_msg>(*r).events.size(), 5u);
}

TEST(ParseClientMessageTest, PublishKeepsEventTextByteForByte) {
    // Whitespace, escapes and key order survive: events are forwarded as sent (spec §5.3).
    const std::string event = R"( { "b" : 1 , "a" : "\u00e9\n" } )";
    json::array events;
    events.emplace_back(event);
    json::object msg{{"type", "publish"}, {"id", "p"}, {"channel", "ns/a"}};
    msg["events"] = events;
    auto r = parse(json::serialize(msg));
    ASSERT_TRUE(r.has_value()) << r.error().error.message;
    EXPECT_EQ(std::get<publish_msg>(*r).events.at(0), event);
}

TEST(ParseClientMessageTest, PublishAcceptsAnEventOfExactlyTheSizeLimit) {
    core::limits limits;
    limits.max_event_bytes = 10;
    auto r = parse_client_message(publish_with_events(R"(["\"12345678\""])"), limits);
    ASSERT_TRUE(r.has_value()) << r.error().error.message;
}

// ---- refusals that get the generic error frame --------------------------------------------------

TEST(ParseClientMessageTest, RefusesInvalidJson) {
    for (std::string_view text :
         {"", "{", "not json", R"({"type":"publish",})", "{}x", "\xff\xfe"}) {
        const auto e = refusal(text);
        EXPECT_EQ(e.error.kind, error_kind::invalid_input) << text;
        EXPECT_TRUE(contains(e.error.message, "message is not valid JSON")) << e.error.message;
        EXPECT_TRUE(e.type.empty());
        EXPECT_TRUE(e.id.empty());
    }
}

TEST(ParseClientMessageTest, RefusesNestingDeeperThanTheLimit) {
    const std::string deep =
        R"({"type":"ka","x":)" + std::string(100, '[') + std::string(100, ']') + "}";
    const auto e = refusal(deep);
    EXPECT_TRUE(contains(e.error.message, "not valid JSON")) << e.error.message;
}

TEST(ParseClientMessageTest, RefusesNonObjects) {
    struct bad_case {
        std::string_view text;
        std::string_view kind;
    };
    for (const auto& c : {bad_case{"[]", "an array"}, bad_case{"42", "a number"},
                          bad_case{R"("publish")", "a string"}, bad_case{"null", "null"},
                          bad_case{"true", "a boolean"}}) {
        const auto e = refusal(c.text);
        EXPECT_EQ(e.error.message,
                  "message is " + std::string(c.kind) + "; expected a JSON object with a 'type'");
        EXPECT_TRUE(e.id.empty());
    }
}

TEST(ParseClientMessageTest, RefusesMissingType) {
    const auto e = refusal(R"({"id":"abc"})");
    EXPECT_EQ(e.error.kind, error_kind::invalid_input);
    EXPECT_TRUE(contains(e.error.message, "'type' is missing")) << e.error.message;
    EXPECT_TRUE(e.type.empty());
    EXPECT_EQ(e.id, "abc") << "a valid id is echoed in the generic error (spec §8)";
}

TEST(ParseClientMessageTest, RefusesNonStringType) {
    const auto e = refusal(R"({"type":7,"id":"abc"})");
    EXPECT_TRUE(contains(e.error.message, "'type' is a number")) << e.error.message;
    EXPECT_TRUE(e.type.empty());
    EXPECT_EQ(e.id, "abc");
}

TEST(ParseClientMessageTest, RefusesUnknownTypeAsUnsupportedOperation) {
    const auto e = refusal(R"({"type":"start","id":"abc"})");
    EXPECT_EQ(e.error.kind, error_kind::unsupported);
    EXPECT_STREQ(e.error.ws_error_type(), "UnsupportedOperation");
    EXPECT_TRUE(contains(e.error.message, "message type 'start' is not supported"))
        << e.error.message;
    EXPECT_TRUE(e.type.empty());
    EXPECT_EQ(e.id, "abc");
}

TEST(ParseClientMessageTest, UnknownTypeIsEchoedWithoutControlBytesAndCapped) {
    const auto e = refusal(R"({"type":"a\nb)" + std::string(100, 'z') + R"("})");
    EXPECT_FALSE(contains(e.error.message, "\n")) << e.error.message;
    EXPECT_TRUE(contains(e.error.message, "'a?b")) << e.error.message;
    EXPECT_LT(e.error.message.size(), 200u);
}

TEST(ParseClientMessageTest, CappedEchoOfTheTypeNeverSplitsAUtf8Character) {
    for (std::size_t pad = 30; pad < 44; ++pad) {
        const auto e = refusal(R"({"type":")" + std::string(pad, 'x') + "\xe2\x82\xac\xe2\x82\xac" +
                               std::string(10, 'y') + R"("})");
        // The reply frame must stay valid UTF-8 (a WebSocket text frame) and valid JSON.
        parse_object(error_reply(e));
    }
}

TEST(ParseClientMessageTest, ErrorRepliesForLongNonAsciiChannelsAreValidJson) {
    for (std::size_t pad = 50; pad < 64; ++pad) {
        std::string channel = "ns/" + std::string(pad, 'a');
        for (int i = 0; i < 10; ++i)
            channel += "\xc3\xa9";
        const auto e = refusal(R"({"type":"subscribe","id":"s1","channel":")" + channel + R"("})");
        const auto obj = parse_object(error_reply(e));
        EXPECT_EQ(obj.at("type"), "subscribe_error") << "pad " << pad;
    }
}

TEST(ParseClientMessageTest, TypeIsCaseSensitive) {
    EXPECT_EQ(refusal(R"({"type":"Subscribe","id":"a","channel":"ns/a"})").error.kind,
              error_kind::unsupported);
}

TEST(ParseClientMessageTest, RefusesMissingIdForEveryOperation) {
    for (std::string_view type : {"subscribe", "unsubscribe", "publish"}) {
        const auto e =
            refusal(R"({"type":")" + std::string(type) + R"(","channel":"ns/a","events":["1"]})");
        EXPECT_EQ(e.error.kind, error_kind::invalid_input);
        EXPECT_EQ(e.error.message, std::string(type) +
                                       " needs an 'id': 1 to 128 characters of "
                                       "A-Z a-z 0-9 _ + -");
        EXPECT_TRUE(e.type.empty()) << "no id: the reply is the generic error frame";
        EXPECT_TRUE(e.id.empty());
    }
}

TEST(ParseClientMessageTest, RefusesNonStringId) {
    const auto e = refusal(R"({"type":"subscribe","id":12,"channel":"ns/a"})");
    EXPECT_TRUE(contains(e.error.message, "subscribe 'id' is a number")) << e.error.message;
    EXPECT_TRUE(e.type.empty());
    EXPECT_TRUE(e.id.empty());
}

TEST(ParseClientMessageTest, RefusesEmptyId) {
    const auto e = refusal(R"({"type":"publish","id":"","channel":"ns/a","events":["1"]})");
    EXPECT_TRUE(contains(e.error.message, "publish 'id' is not valid")) << e.error.message;
    EXPECT_TRUE(e.id.empty());
}

TEST(ParseClientMessageTest, AcceptsIdOf128Characters) {
    const std::string id(128, 'a');
    auto r = parse(R"({"type":"unsubscribe","id":")" + id + R"("})");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(std::get<unsubscribe_msg>(*r).id, id);
}

TEST(ParseClientMessageTest, RefusesIdOf129Characters) {
    const auto e =
        refusal(R"({"type":"subscribe","id":")" + std::string(129, 'a') + R"(","channel":"ns/a"})");
    EXPECT_TRUE(contains(e.error.message, "subscribe 'id' is not valid; expected 1 to 128"))
        << e.error.message;
    EXPECT_TRUE(e.type.empty());
    EXPECT_TRUE(e.id.empty()) << "an invalid id is never echoed";
}

TEST(ParseClientMessageTest, RefusesIdsWithCharactersOutsideTheAlphabet) {
    for (std::string_view id : {"a b", "a/b", "a.b", "a\\\"b", "a=b", "caf\u00e9", "a\\u0000"}) {
        const auto e = refusal(R"({"type":"unsubscribe","id":")" + std::string(id) + R"("})");
        EXPECT_TRUE(contains(e.error.message, "'id' is not valid"))
            << id << ": " << e.error.message;
        EXPECT_TRUE(e.id.empty()) << id;
    }
}

TEST(ParseClientMessageTest, AcceptsIdsWithEveryAllowedCharacter) {
    for (std::string_view id :
         {"abcXYZ019", "a_b", "a+b", "a-b", "0f7c8d9e-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
          "0F7C8D9E-1A2B-4C3D-8E9F-0A1B2C3D4E5F", "+", "_", "-"}) {
        auto r = parse(R"({"type":"unsubscribe","id":")" + std::string(id) + R"("})");
        ASSERT_TRUE(r.has_value()) << id;
        EXPECT_EQ(std::get<unsubscribe_msg>(*r).id, id);
    }
}

TEST(ParseClientMessageTest, IdLimitComesFromTheLimits) {
    core::limits limits;
    limits.max_id_chars = 4;
    EXPECT_TRUE(parse_client_message(R"({"type":"unsubscribe","id":"abcd"})", limits).has_value());
    EXPECT_FALSE(
        parse_client_message(R"({"type":"unsubscribe","id":"abcde"})", limits).has_value());
}

// ---- refusals that get subscribe_error / publish_error (id and type carried) --------------------

TEST(ParseClientMessageTest, RefusesMissingChannelWithTheOperationsId) {
    for (std::string_view type : {"subscribe", "publish"}) {
        const auto e =
            refusal(R"({"type":")" + std::string(type) + R"(","id":"op9","events":["1"]})");
        EXPECT_EQ(e.error.kind, error_kind::invalid_input);
        EXPECT_TRUE(contains(e.error.message, "'channel' is missing")) << e.error.message;
        EXPECT_EQ(e.type, type);
        EXPECT_EQ(e.id, "op9");
    }
}

TEST(ParseClientMessageTest, RefusesNonStringChannel) {
    for (std::string_view channel : {"5", "null", "[\"ns/a\"]", "{}"}) {
        const auto e =
            refusal(R"({"type":"subscribe","id":"s1","channel":)" + std::string(channel) + "}");
        EXPECT_TRUE(contains(e.error.message, "'channel' is ")) << e.error.message;
        EXPECT_TRUE(contains(e.error.message, "expected a string")) << e.error.message;
        EXPECT_EQ(e.type, "subscribe");
        EXPECT_EQ(e.id, "s1");
    }
}

TEST(ParseClientMessageTest, RefusesInvalidSubscribeChannel) {
    const auto e = refusal(R"({"type":"subscribe","id":"s1","channel":"default/1/2/3/4/5"})");
    EXPECT_EQ(e.error.kind, error_kind::invalid_input);
    EXPECT_TRUE(contains(e.error.message, "more than 5 segments")) << e.error.message;
    EXPECT_EQ(e.type, "subscribe");
    EXPECT_EQ(e.id, "s1");
}

TEST(ParseClientMessageTest, RefusesSubscribeToMidPathWildcard) {
    const auto e = refusal(R"({"type":"subscribe","id":"s1","channel":"ns/*/a"})");
    EXPECT_TRUE(contains(e.error.message, "'*' is allowed only")) << e.error.message;
    EXPECT_EQ(e.type, "subscribe");
}

TEST(ParseClientMessageTest, RefusesPublishToAWildcard) {
    const auto e = refusal(R"({"type":"publish","id":"p1","channel":"ns/*","events":["1"]})");
    EXPECT_TRUE(contains(e.error.message, "wildcard")) << e.error.message;
    EXPECT_EQ(e.type, "publish");
    EXPECT_EQ(e.id, "p1");
}

TEST(ParseClientMessageTest, RefusesAuthorizationThatIsNotAnObject) {
    for (std::string_view auth : {R"("k")", "[]", "1", "true"}) {
        const auto e = refusal(R"({"type":"publish","id":"p","channel":"ns/a","events":["1"],)"
                               R"("authorization":)" +
                               std::string(auth) + "}");
        EXPECT_TRUE(contains(e.error.message, "'authorization' is ")) << e.error.message;
        EXPECT_TRUE(contains(e.error.message, "expected an object")) << e.error.message;
        EXPECT_EQ(e.type, "publish");
        EXPECT_EQ(e.id, "p");
    }
}

TEST(ParseClientMessageTest, RefusesMissingEvents) {
    const auto e = refusal(R"({"type":"publish","id":"p1","channel":"ns/a"})");
    EXPECT_TRUE(contains(e.error.message, "'events' is missing")) << e.error.message;
    EXPECT_EQ(e.type, "publish");
    EXPECT_EQ(e.id, "p1");
}

TEST(ParseClientMessageTest, RefusesEventsThatAreNotAnArray) {
    for (std::string_view events : {R"("{}")", "{}", "1", "null"}) {
        const auto e = refusal(publish_with_events(events));
        EXPECT_TRUE(contains(e.error.message, "'events' is ")) << e.error.message;
        EXPECT_TRUE(contains(e.error.message, "expected an array of 1 to 5 strings"))
            << e.error.message;
        EXPECT_EQ(e.type, "publish");
    }
}

TEST(ParseClientMessageTest, RefusesEmptyEvents) {
    const auto e = refusal(publish_with_events("[]"));
    EXPECT_TRUE(contains(e.error.message, "'events' is empty")) << e.error.message;
    EXPECT_EQ(e.id, "p1");
}

TEST(ParseClientMessageTest, AcceptsFiveEvents) {
    auto r = parse(publish_with_events(R"(["1","2","3","4","5"])"));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(std::get<publish_msg>(*r).events.size(), 5u);
}

TEST(ParseClientMessageTest, RefusesSixEventsWithTheAwsMessage) {
    const auto e = refusal(publish_with_events(R"(["1","2","3","4","5","6"])"));
    EXPECT_EQ(e.error.kind, error_kind::invalid_input);
    EXPECT_STREQ(e.error.ws_error_type(), "InvalidInputError");
    EXPECT_EQ(e.error.message, "input exceeded 5 event limit");
    EXPECT_EQ(e.type, "publish");
    EXPECT_EQ(e.id, "p1");
}

TEST(ParseClientMessageTest, EventCountLimitComesFromTheLimits) {
    core::limits limits;
    limits.max_events_per_publish = 2;
    const auto e = refusal(publish_with_events(R"(["1","2","3"])"), limits);
    EXPECT_EQ(e.error.message, "input exceeded 2 event limit");
}

TEST(ParseClientMessageTest, RefusesNonStringEvents) {
    for (std::string_view events : {R"([{"a":1}])", "[1]", R"(["1",null])", "[[]]"}) {
        const auto e = refusal(publish_with_events(events));
        EXPECT_TRUE(contains(e.error.message, "each event must be a string holding JSON text"))
            << e.error.message;
        EXPECT_EQ(e.type, "publish");
        EXPECT_EQ(e.id, "p1");
    }
    EXPECT_TRUE(
        contains(refusal(publish_with_events(R"(["1",null])")).error.message, "event 1 is null"));
}

TEST(ParseClientMessageTest, RefusesOversizeEvent) {
    core::limits limits;
    limits.max_event_bytes = 10;
    const auto e = refusal(publish_with_events(R"(["\"123456789\""])"), limits);
    EXPECT_EQ(e.error.message, "event 0 is 11 bytes; the limit is 10");
    EXPECT_EQ(e.type, "publish");
    EXPECT_EQ(e.id, "p1");
}

TEST(ParseClientMessageTest, RefusesEventThatIsNotValidJsonText) {
    for (std::string_view events :
         {R"(["{"])", R"(["hello"])", R"([""])", R"(["1 2"])", R"(["{} x"])", R"(["[1,]"])",
          R"(["{\"a\":1}{\"b\":2}"])", R"(["'single'"])", R"(["NaN"])"}) {
        const auto e = refusal(publish_with_events(events));
        EXPECT_TRUE(contains(e.error.message, "event 0 is not valid JSON text"))
            << events << ": " << e.error.message;
        EXPECT_TRUE(contains(e.error.message, "send JSON.stringify(value)")) << e.error.message;
        EXPECT_EQ(e.type, "publish");
        EXPECT_EQ(e.id, "p1");
    }
}

TEST(ParseClientMessageTest, NamesTheIndexOfTheBadEvent) {
    const auto e = refusal(publish_with_events(R"(["1","2","{"])"));
    EXPECT_TRUE(contains(e.error.message, "event 2 is not valid JSON text")) << e.error.message;
}

// ---- parse_http_publish -------------------------------------------------------------------------

TEST(ParseHttpPublishTest, ParsesChannelAndEvents) {
    auto r = parse_http_publish(R"({"channel":"/default/channel","events":["{\"a\":1}"]})",
                                default_limits);
    ASSERT_TRUE(r.has_value()) << r.error().message;
    EXPECT_EQ(r->channel.str(), "default/channel");
    EXPECT_EQ(r->raw_channel, "/default/channel");
    ASSERT_EQ(r->events.size(), 1u);
    EXPECT_EQ(r->events[0], R"({"a":1})");
}

TEST(ParseHttpPublishTest, RefusesEachBadBodyWithAClearMessage) {
    struct bad_case {
        std::string_view body;
        std::string_view expected;
    };
    const bad_case cases[] = {
        {"", "request body is not valid JSON"},
        {"[]", "request body is an array"},
        {R"({"events":["1"]})", "'channel' is missing"},
        {R"({"channel":1,"events":["1"]})", "'channel' is a number"},
        {R"({"channel":"default/1/2/3/4/5","events":["1"]})", "more than 5 segments"},
        {R"({"channel":"default/*","events":["1"]})", "wildcard"},
        {R"({"channel":"default/a"})", "'events' is missing"},
        {R"({"channel":"default/a","events":["1","2","3","4","5","6"]})",
         "input exceeded 5 event limit"},
        {R"({"channel":"default/a","events":["{"]})", "event 0 is not valid JSON text"},
    };
    for (const auto& c : cases) {
        auto r = parse_http_publish(c.body, default_limits);
        ASSERT_FALSE(r.has_value()) << c.body;
        EXPECT_EQ(r.error().kind, error_kind::invalid_input);
        EXPECT_TRUE(contains(r.error().message, c.expected)) << c.body << ": " << r.error().message;
    }
}

// ---- validation helpers -------------------------------------------------------------------------

TEST(ValidIdTest, FollowsTheIdRule) {
    EXPECT_TRUE(valid_id("a"));
    EXPECT_TRUE(valid_id(std::string(128, '9')));
    EXPECT_FALSE(valid_id(std::string(129, '9')));
    EXPECT_FALSE(valid_id(""));
    EXPECT_FALSE(valid_id("a b"));
    EXPECT_FALSE(valid_id("a\"b"));
    EXPECT_TRUE(valid_id("abc", 3));
    EXPECT_FALSE(valid_id("abcd", 3));
}

TEST(IsJsonTextTest, AcceptsOneJsonTextWithSurroundingWhitespace) {
    for (std::string_view text : {"{}", "[]", "0", "-1.5e3", "\"s\"", "true", "false", "null",
                                  " {} ", "\n[1,2]\t", R"({"a":{"b":[null]}})"}) {
        std::string why;
        EXPECT_TRUE(is_json_text(text, &why)) << "'" << text << "': " << why;
    }
}

TEST(IsJsonTextTest, RejectsEverythingElseAndSaysWhere) {
    for (std::string_view text : {"", " ", "{", "}", "1 2", "{}{}", "tru", "[1,]", "{'a':1}",
                                  "\"unterminated", "01", "/* c */ 1", "1 // c"}) {
        std::string why;
        EXPECT_FALSE(is_json_text(text, &why)) << "'" << text << "'";
        EXPECT_TRUE(contains(why, "at offset")) << "'" << text << "': " << why;
    }
}

TEST(IsJsonTextTest, RejectsInvalidUtf8InsideStrings) {
    EXPECT_FALSE(is_json_text("\"\xff\""));
    EXPECT_FALSE(is_json_text("\"\xc3\""));
    EXPECT_TRUE(is_json_text("\"\xc3\xa9\""));
}

TEST(IsJsonTextTest, RejectsNestingDeeperThan64) {
    EXPECT_TRUE(is_json_text(std::string(64, '[') + std::string(64, ']')));
    EXPECT_FALSE(is_json_text(std::string(65, '[') + std::string(65, ']')));
    EXPECT_FALSE(is_json_text(std::string(100000, '[')));
}

TEST(IsJsonTextTest, TheDepthIsTheCallersLimit) {
    const auto nested = [](std::size_t n) { return std::string(n, '[') + std::string(n, ']'); };
    EXPECT_TRUE(is_json_text(nested(100), nullptr, 100));
    EXPECT_FALSE(is_json_text(nested(101), nullptr, 100));
    EXPECT_FALSE(is_json_text(nested(3), nullptr, 2));
}

TEST(IsJsonTextTest, AcceptsLoneSurrogateEscapesButNotTheirUtf8Bytes) {
    // What JSON.stringify gives for half a surrogate pair: valid JSON grammar (RFC 8259 §8.2).
    for (const char* text : {R"("\ud800")", R"("\uDFFF")", R"(["a\udc00b",1])",
                             R"({"k":"\ud83d"})", R"("\ud83d\ude00")"})
        EXPECT_TRUE(is_json_text(text)) << text;
    EXPECT_FALSE(is_json_text("\"\xed\xa0\x80\""));  // a surrogate as UTF-8: not UTF-8
    EXPECT_FALSE(is_json_text(R"("\ud80")"));          // still a bad escape
    EXPECT_FALSE(is_json_text(R"("\\ud800)"));        // unterminated, whatever it escapes
}

TEST(ParseCredentialsJsonTest, ReadsStringValuesWithLowerCasedNames) {
    auto r = parse_credentials_json(R"({"X-Api-Key":"k","host":"h:1","n":2})");
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r->find("x-api-key"), "k");
    EXPECT_EQ(*r->find("host"), "h:1");
    EXPECT_EQ(r->find("n"), nullptr);
}

TEST(ParseCredentialsJsonTest, RefusesNonObjectsAndBadJson) {
    auto arr = parse_credentials_json("[]");
    ASSERT_FALSE(arr.has_value());
    EXPECT_TRUE(contains(arr.error().message, "is an array; expected a JSON object"));
    auto bad = parse_credentials_json("{");
    ASSERT_FALSE(bad.has_value());
    EXPECT_TRUE(contains(bad.error().message, "is not JSON"));
}

TEST(CredentialsTest, FindsTheFirstEntryCaseInsensitively) {
    credentials c;
    EXPECT_TRUE(c.empty());
    c.add("X-API-KEY", "first");
    c.add("x-api-key", "second");
    EXPECT_FALSE(c.empty());
    ASSERT_NE(c.find("x-api-key"), nullptr);
    EXPECT_EQ(*c.find("x-api-key"), "first");
    EXPECT_EQ(c.find("authorization"), nullptr);
}

// ---- server -> client frames --------------------------------------------------------------------

TEST(ServerFrameTest, ConnectionAckCarriesTimeoutAtTopLevel) {
    EXPECT_EQ(connection_ack(300000), R"({"type":"connection_ack","connectionTimeoutMs":300000})");
}

TEST(ServerFrameTest, KeepAlive) {
    EXPECT_EQ(ka(), R"({"type":"ka"})");
}

TEST(ServerFrameTest, ConnectionErrorHasErrorsAtTopLevel) {
    EXPECT_EQ(connection_error(protocol_error::unauthorized()),
              R"({"type":"connection_error","errors":[{"errorType":"UnauthorizedException",)"
              R"("message":"You are not authorized to make this call."}]})");
}

TEST(ServerFrameTest, SubscribeAndUnsubscribeSuccessEchoTheId) {
    EXPECT_EQ(subscribe_success("s-1"), R"({"type":"subscribe_success","id":"s-1"})");
    EXPECT_EQ(unsubscribe_success("s-1"), R"({"type":"unsubscribe_success","id":"s-1"})");
}

TEST(ServerFrameTest, ErrorReplyIsOperationErrorWhenTypeAndIdAreKnown) {
    message_error e{protocol_error::invalid("input exceeded 5 event limit"), "publish", "p1"};
    EXPECT_EQ(error_reply(e), R"({"type":"publish_error","id":"p1","errors":[{"errorType":)"
                              R"("InvalidInputError","message":"input exceeded 5 event limit"}]})");
    e.type = "subscribe";
    EXPECT_EQ(parse_object(error_reply(e)).at("type"), "subscribe_error");
    e.type = "unsubscribe";
    EXPECT_EQ(parse_object(error_reply(e)).at("type"), "unsubscribe_error");
}

TEST(ServerFrameTest, ErrorReplyIsGenericErrorWithIdWhenOnlyTheIdIsKnown) {
    message_error e{{error_kind::unsupported, "nope"}, "", "abc"};
    EXPECT_EQ(error_reply(e), R"({"type":"error","id":"abc","errors":[{"errorType":)"
                              R"("UnsupportedOperation","message":"nope"}]})");
}

TEST(ServerFrameTest, ErrorReplyIsGenericErrorWithoutIdWhenNoIdIsKnown) {
    message_error e{protocol_error::invalid("bad"), "publish", ""};
    EXPECT_EQ(error_reply(e),
              R"({"type":"error","errors":[{"errorType":"InvalidInputError","message":"bad"}]})");
}

TEST(ServerFrameTest, ErrorReplyOmitsAnEmptyMessage) {
    message_error e{protocol_error::unauthorized(""), "publish", "p"};
    EXPECT_EQ(
        error_reply(e),
        R"({"type":"publish_error","id":"p","errors":[{"errorType":"UnauthorizedException"}]})");
}

TEST(ServerFrameTest, ErrorMessagesAreEscaped) {
    message_error e{protocol_error::invalid("say \"hi\"\n\\"), "", ""};
    const auto obj = parse_object(error_reply(e));
    EXPECT_EQ(obj.at("errors").as_array().at(0).as_object().at("message"), "say \"hi\"\n\\");
}

TEST(ServerFrameTest, ParseErrorsBecomeTheMatchingReplyFrame) {
    auto sub = parse(R"({"type":"subscribe","id":"s1","channel":"ns/a_b"})");
    ASSERT_FALSE(sub.has_value());
    auto obj = parse_object(error_reply(sub.error()));
    EXPECT_EQ(obj.at("type"), "subscribe_error");
    EXPECT_EQ(obj.at("id"), "s1");

    auto pub = parse(publish_with_events(R"(["1","2","3","4","5","6"])"));
    ASSERT_FALSE(pub.has_value());
    obj = parse_object(error_reply(pub.error()));
    EXPECT_EQ(obj.at("type"), "publish_error");
    EXPECT_EQ(obj.at("id"), "p1");
    EXPECT_EQ(obj.at("errors").as_array().at(0).as_object().at("errorType"), "InvalidInputError");

    auto bad = parse("nonsense");
    ASSERT_FALSE(bad.has_value());
    obj = parse_object(error_reply(bad.error()));
    EXPECT_EQ(obj.at("type"), "error");
    EXPECT_FALSE(obj.contains("id"));
}

TEST(ServerFrameTest, PublishSuccessListsEveryIdentifierWithItsIndex) {
    publish_outcome outcome;
    outcome.identifiers = {"u0", "u1"};
    EXPECT_EQ(publish_success("p1", outcome),
              R"({"type":"publish_success","id":"p1","successful":[{"identifier":"u0","index":0},)"
              R"({"identifier":"u1","index":1}],"failed":[]})");
}

const position pos42{0x5f3a0c1e, 42};

TEST(ServerFrameTest, DataFrameIsPrefixPlusBody) {
    EXPECT_EQ(data_prefix("X") + data_body(R"({"a":1})", pos42),
              R"({"type":"data","id":"X","event":"{\"a\":1}","position":"5f3a0c1e-42"})");
}

TEST(ServerFrameTest, DataBodyInTwoStepsIsTheSame) {
    auto body = data_body_open("[1]");
    EXPECT_EQ(body, R"("[1]")");
    data_body_close(body, {0, 0});
    EXPECT_EQ(body, R"("[1]","position":"00000000-0"})");
    EXPECT_EQ(body, data_body("[1]", {0, 0}));
}

// The `event` field must give back the published text byte for byte (spec §5.3).
TEST(ServerFrameTest, DataFrameEventRoundTripsThroughAJsonParser) {
    const std::string samples[] = {
        R"({"a":1})",
        "42",
        R"("quoted \"string\" with \\ backslash")",
        R"({"html":"</script><script>alert(1)</script>"})",
        "{\"ctl\":\"\\u0000\\u001f\"}",
        std::string("\"raw\x01\x02\x1f\x7f bytes\""),
        "\"tab\there\nnewline\r\f\b\"",
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8\"",  // é € 😀 U+2028
        std::string("\"nul\0inside\"", 12),
        " { \"spaced\" : [ 1 , 2 ] } ",
        "",
    };
    for (const auto& event : samples) {
        const auto frame = data_prefix("sub-1") + data_body(event, pos42);
        const auto obj = parse_object(frame);
        ASSERT_EQ(obj.size(), 4u) << frame;
        EXPECT_EQ(obj.at("position"), "5f3a0c1e-42");
        EXPECT_EQ(obj.at("type"), "data");
        EXPECT_EQ(obj.at("id"), "sub-1");
        ASSERT_TRUE(obj.at("event").is_string()) << frame;
        const auto& got = obj.at("event").get_string();
        EXPECT_EQ(std::string_view(got.data(), got.size()), event) << frame;
    }
}

TEST(ServerFrameTest, DataBodyEscapesLikeJsonStringify) {
    EXPECT_EQ(data_body_open("\"\\\b\f\n\r\t\x01\x1f/"), R"("\"\\\b\f\n\r\t\u0001\u001f/")");
    EXPECT_EQ(data_body_open("</script>"), R"("</script>")");
    EXPECT_EQ(data_body_open("\xc3\xa9\x7f"), "\"\xc3\xa9\x7f\"");
}

TEST(ServerFrameTest, DataBodyRoundTripsEveryByteValue) {
    std::string event;
    for (int c = 0; c < 0x80; ++c)
        event.push_back(static_cast<char>(c));
    const auto obj = parse_object(data_prefix("i") + data_body(event, pos42));
    const auto& got = obj.at("event").get_string();
    EXPECT_EQ(std::string_view(got.data(), got.size()), event);
}

TEST(AppendJsonStringTest, AppendsAQuotedEscapedString) {
    std::string out = "x=";
    append_json_string(out, "a\"b");
    EXPECT_EQ(out, R"(x="a\"b")");
}

}  // namespace
}  // namespace eventcast::events

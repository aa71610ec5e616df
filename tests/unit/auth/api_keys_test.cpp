// Tests src/auth/api_keys.cpp: API key checks against configured keys, with expiry.
#include "auth/api_keys.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace eventcast::auth {
namespace {

using std::chrono::hours;
using std::chrono::seconds;
using std::chrono::system_clock;

const system_clock::time_point now = system_clock::time_point(seconds(1'750'000'000));

events::credentials with_key(const std::string& key, const std::string& header = "x-api-key") {
    events::credentials c;
    c.add("host", "localhost:8443");
    c.add(header, key);
    return c;
}

void expect_unauthorized(const events::result<void>& r) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().kind, events::error_kind::unauthorized);
    EXPECT_STREQ(r.error().ws_error_type(), "UnauthorizedException");
    EXPECT_EQ(r.error().message, "You are not authorized to make this call.");
}

TEST(ApiKeyStoreTest, AcceptsAMatchingKey) {
    api_key_store store({{"da2-secret", std::nullopt}});
    EXPECT_TRUE(store.check(with_key("da2-secret"), now).has_value());
}

TEST(ApiKeyStoreTest, RefusesAMismatchedKey) {
    api_key_store store({{"da2-secret", std::nullopt}});
    expect_unauthorized(store.check(with_key("da2-secreT"), now));
    expect_unauthorized(store.check(with_key("wrong"), now));
}

TEST(ApiKeyStoreTest, RefusesPrefixesAndExtensionsOfTheKey) {
    api_key_store store({{"da2-secret", std::nullopt}});
    expect_unauthorized(store.check(with_key("da2-secre"), now));
    expect_unauthorized(store.check(with_key("da2-secret2"), now));
    expect_unauthorized(store.check(with_key(""), now));
    expect_unauthorized(store.check(with_key(std::string("da2-secret\0", 11)), now));
}

TEST(ApiKeyStoreTest, RefusesMissingKey) {
    api_key_store store({{"da2-secret", std::nullopt}});
    expect_unauthorized(store.check(events::credentials{}, now));
    events::credentials only_host;
    only_host.add("host", "h");
    expect_unauthorized(store.check(only_host, now));
    expect_unauthorized(store.check(with_key("da2-secret", "authorization"), now));
}

TEST(ApiKeyStoreTest, RefusesAnExpiredKey) {
    api_key_store store({{"old", now - seconds(1)}});
    expect_unauthorized(store.check(with_key("old"), now));
}

TEST(ApiKeyStoreTest, KeyExpiresAtItsExpiryInstant) {
    api_key_store store({{"k", now}});
    expect_unauthorized(store.check(with_key("k"), now));
    EXPECT_TRUE(store.check(with_key("k"), now - seconds(1)).has_value());
}

TEST(ApiKeyStoreTest, AcceptsAKeyBeforeItsExpiry) {
    api_key_store store({{"k", now + hours(1)}});
    EXPECT_TRUE(store.check(with_key("k"), now).has_value());
}

TEST(ApiKeyStoreTest, DefaultNowIsTheSystemClock) {
    api_key_store store(
        {{"live", system_clock::now() + hours(1)}, {"dead", system_clock::now() - hours(1)}});
    EXPECT_TRUE(store.check(with_key("live")).has_value());
    expect_unauthorized(store.check(with_key("dead")));
}

TEST(ApiKeyStoreTest, AcceptsAnyOfSeveralKeys) {
    api_key_store store(
        {{"first", std::nullopt}, {"second-longer", std::nullopt}, {"3", now + hours(1)}});
    EXPECT_TRUE(store.check(with_key("first"), now).has_value());
    EXPECT_TRUE(store.check(with_key("second-longer"), now).has_value());
    EXPECT_TRUE(store.check(with_key("3"), now).has_value());
    expect_unauthorized(store.check(with_key("fourth"), now));
}

TEST(ApiKeyStoreTest, ExpiredKeyDoesNotHideALiveOneWithTheSameValue) {
    api_key_store store({{"rotated", now - hours(1)}, {"rotated", now + hours(1)}});
    EXPECT_TRUE(store.check(with_key("rotated"), now).has_value());
}

TEST(ApiKeyStoreTest, OnlyTheExpiredOneOfSeveralKeysIsRefused) {
    api_key_store store({{"old", now - hours(1)}, {"new", std::nullopt}});
    expect_unauthorized(store.check(with_key("old"), now));
    EXPECT_TRUE(store.check(with_key("new"), now).has_value());
}

TEST(ApiKeyStoreTest, NoConfiguredKeysRefusesEverything) {
    api_key_store store({});
    expect_unauthorized(store.check(with_key("anything"), now));
}

TEST(ApiKeyStoreTest, HeaderNameIsCaseInsensitiveThroughCredentials) {
    api_key_store store({{"da2-secret", std::nullopt}});
    for (const char* name : {"X-Api-Key", "X-API-KEY", "x-api-key", "x-Api-kEy"})
        EXPECT_TRUE(store.check(with_key("da2-secret", name), now).has_value()) << name;
}

TEST(ApiKeyStoreTest, KeyValueIsCaseSensitive) {
    api_key_store store({{"da2-secret", std::nullopt}});
    expect_unauthorized(store.check(with_key("DA2-SECRET"), now));
}

}  // namespace
}  // namespace eventcast::auth

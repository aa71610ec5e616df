// Credential and region resolution from the environment and the shared files.
#include "aws/aws_credentials.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace eventcast::aws {
namespace {

struct fake_env {
    std::map<std::string, std::string> vars;
    environment get() const {
        environment e;
        e.get = [vars = vars](const char* name) -> std::optional<std::string> {
            auto it = vars.find(name);
            if (it == vars.end())
                return std::nullopt;
            return it->second;
        };
        return e;
    }
};

class temp_home {
public:
    temp_home() {
        char tmpl[] = "/tmp/eventcast-aws-XXXXXX";
        dir_ = mkdtemp(tmpl);
        std::filesystem::create_directories(dir_ + "/.aws");
    }
    ~temp_home() { std::filesystem::remove_all(dir_); }
    void write(const std::string& rel, const std::string& text) const {
        std::ofstream(dir_ + "/" + rel) << text;
    }
    const std::string& path() const { return dir_; }

private:
    std::string dir_;
};

TEST(IniTest, ReadsSectionsKeysCommentsAndSkipsSubProperties) {
    auto ini = parse_ini(
        "# comment\n[default]\naws_access_key_id = AKID1\n; other\naws_secret_access_key=SECRET1\n"
        "s3 =\n  max_concurrent_requests = 20\n[profile dev]\nregion = eu-west-1\r\n");
    EXPECT_EQ(ini["default"]["aws_access_key_id"], "AKID1");
    EXPECT_EQ(ini["default"]["aws_secret_access_key"], "SECRET1");
    EXPECT_EQ(ini["default"].count("max_concurrent_requests"), 0u);
    EXPECT_EQ(ini["profile dev"]["region"], "eu-west-1");
}

TEST(CredentialChainTest, EnvironmentNeedsBothKeys) {
    fake_env env{{{"AWS_ACCESS_KEY_ID", "AKID"}}};
    EXPECT_FALSE(from_environment(env.get()));
    env.vars["AWS_SECRET_ACCESS_KEY"] = "SECRET";
    env.vars["AWS_SESSION_TOKEN"] = "TOKEN";
    auto r = from_environment(env.get());
    ASSERT_TRUE(r);
    EXPECT_EQ(r->credentials.access_key_id, "AKID");
    EXPECT_EQ(r->credentials.session_token, "TOKEN");
    EXPECT_EQ(r->source, "environment");
}

TEST(CredentialChainTest, SharedCredentialsFileWinsOverConfigForTheProfile) {
    temp_home home;
    home.write(".aws/credentials",
               "[default]\naws_access_key_id=DEF\naws_secret_access_key=S\n"
               "[dev]\naws_access_key_id=DEV\naws_secret_access_key=S2\n");
    home.write(".aws/config",
               "[profile dev]\naws_access_key_id=CFG\naws_secret_access_key=S3\n"
               "region = ap-south-1\n[profile ops]\naws_access_key_id=OPS\n"
               "aws_secret_access_key=S4\n");
    fake_env env{{{"HOME", home.path()}}};
    EXPECT_EQ(from_shared_files(env.get())->credentials.access_key_id, "DEF");
    env.vars["AWS_PROFILE"] = "dev";
    EXPECT_EQ(from_shared_files(env.get())->credentials.access_key_id, "DEV");
    EXPECT_EQ(resolve_region(env.get(), false), "ap-south-1");
    env.vars["AWS_PROFILE"] = "ops";
    auto ops = from_shared_files(env.get());
    ASSERT_TRUE(ops);
    EXPECT_EQ(ops->credentials.access_key_id, "OPS");
    EXPECT_EQ(ops->source, "shared-config-file");
    env.vars["AWS_PROFILE"] = "missing";
    EXPECT_FALSE(from_shared_files(env.get()));
}

TEST(CredentialChainTest, FileLocationsComeFromTheEnvironment) {
    temp_home home;
    home.write("creds", "[default]\naws_access_key_id=ELSEWHERE\naws_secret_access_key=S\n");
    fake_env env{
        {{"HOME", "/nonexistent"}, {"AWS_SHARED_CREDENTIALS_FILE", home.path() + "/creds"}}};
    EXPECT_EQ(from_shared_files(env.get())->credentials.access_key_id, "ELSEWHERE");
}

TEST(CredentialChainTest, EnvironmentComesBeforeFiles) {
    temp_home home;
    home.write(".aws/credentials", "[default]\naws_access_key_id=FILE\naws_secret_access_key=S\n");
    fake_env env{{{"HOME", home.path()},
                  {"AWS_ACCESS_KEY_ID", "ENV"},
                  {"AWS_SECRET_ACCESS_KEY", "S"},
                  {"AWS_EC2_METADATA_DISABLED", "true"}}};
    credential_chain chain(env.get());
    auto r = chain.get();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->credentials.access_key_id, "ENV");
    EXPECT_TRUE(chain.has_local_credentials());
}

TEST(CredentialChainTest, SaysWhereItLookedWhenThereAreNoCredentials) {
    temp_home home;
    fake_env env{
        {{"HOME", home.path()}, {"AWS_EC2_METADATA_DISABLED", "true"}, {"AWS_PROFILE", "nobody"}}};
    credential_chain chain(env.get());
    EXPECT_FALSE(chain.has_local_credentials());
    auto r = chain.get();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().find(".aws/credentials"), std::string::npos) << r.error();
    EXPECT_NE(r.error().find("profile nobody"), std::string::npos) << r.error();
}

TEST(RegionTest, EnvironmentOrderIsAwsRegionThenDefaultRegionThenProfile) {
    temp_home home;
    home.write(".aws/config", "[default]\nregion = eu-central-1\n");
    fake_env env{{{"HOME", home.path()}}};
    EXPECT_EQ(resolve_region(env.get(), false), "eu-central-1");
    env.vars["AWS_DEFAULT_REGION"] = "us-west-2";
    EXPECT_EQ(resolve_region(env.get(), false), "us-west-2");
    env.vars["AWS_REGION"] = "us-east-2";
    EXPECT_EQ(resolve_region(env.get(), false), "us-east-2");
    fake_env none{{{"HOME", "/nonexistent"}}};
    EXPECT_FALSE(resolve_region(none.get(), false));
}

}  // namespace
}  // namespace eventcast::aws

// Credential chain. Network providers use curl's easy interface synchronously: they run once per
// credential lifetime (hours), not per request.
#include "aws/aws_credentials.hpp"

#include "aws/curl_handles.hpp"
#include "core/log.hpp"
#include "core/strings.hpp"

#include <boost/json.hpp>

#include <ctime>
#include <fstream>
#include <iomanip>
#include <sstream>

namespace eventcast::aws {

namespace {

// An owned copy: the results outlive the text they were cut from.
std::string trimmed(std::string_view s) {
    return std::string(core::trim(s));
}

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream f(path);
    if (!f)
        return std::nullopt;
    std::ostringstream out;
    out << f.rdbuf();
    return out.str();
}

std::string home(const environment& env) {
    return env.var("HOME");
}

std::string credentials_path(const environment& env) {
    auto p = env.var("AWS_SHARED_CREDENTIALS_FILE");
    return p.empty() ? home(env) + "/.aws/credentials" : p;
}

std::string config_path(const environment& env) {
    auto p = env.var("AWS_CONFIG_FILE");
    return p.empty() ? home(env) + "/.aws/config" : p;
}

std::optional<std::chrono::system_clock::time_point> parse_iso8601(const std::string& s) {
    std::tm tm{};
    std::istringstream in(s);
    in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
    if (in.fail())
        return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// The JSON that container and IMDS endpoints return.
std::optional<resolved_credentials> from_credentials_json(const std::string& body,
                                                          const char* source) {
    boost::json::error_code ec;
    auto v = boost::json::parse(body, ec);
    if (ec || !v.is_object())
        return std::nullopt;
    const auto& o = v.as_object();
    auto str = [&](const char* k) -> std::string {
        const auto* p = o.if_contains(k);
        return p && p->is_string() ? std::string(p->as_string()) : std::string();
    };
    resolved_credentials r;
    r.credentials.access_key_id = str("AccessKeyId");
    r.credentials.secret_access_key = str("SecretAccessKey");
    r.credentials.session_token = str("Token");
    if (r.credentials.access_key_id.empty() || r.credentials.secret_access_key.empty())
        return std::nullopt;
    if (auto exp = str("Expiration"); !exp.empty())
        r.expires = parse_iso8601(exp);
    r.source = source;
    return r;
}

size_t collect(char* data, size_t size, size_t count, void* user) noexcept {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
}

}  // namespace

ini_file parse_ini(std::string_view text) {
    ini_file out;
    std::string section;
    std::istringstream in{std::string(text)};
    std::string raw;
    while (std::getline(in, raw)) {
        if (!raw.empty() && (raw[0] == ' ' || raw[0] == '\t'))
            continue;  // sub-property of a nested block (e.g. "s3 =")
        auto line = trimmed(raw);
        if (line.empty() || line[0] == '#' || line[0] == ';')
            continue;
        if (line.front() == '[') {
            const auto close = line.find(']');
            section = trimmed(std::string_view(line).substr(
                1, close == std::string::npos ? std::string::npos : close - 1));
            out[section];
            continue;
        }
        const auto eq = line.find('=');
        if (eq == std::string::npos || section.empty())
            continue;
        out[section][trimmed(std::string_view(line).substr(0, eq))] =
            trimmed(std::string_view(line).substr(eq + 1));
    }
    return out;
}

std::string profile_name(const environment& env) {
    auto p = env.var("AWS_PROFILE");
    return p.empty() ? "default" : p;
}

std::optional<resolved_credentials> from_environment(const environment& env) {
    resolved_credentials r;
    r.credentials.access_key_id = env.var("AWS_ACCESS_KEY_ID");
    r.credentials.secret_access_key = env.var("AWS_SECRET_ACCESS_KEY");
    r.credentials.session_token = env.var("AWS_SESSION_TOKEN");
    if (r.credentials.access_key_id.empty() || r.credentials.secret_access_key.empty())
        return std::nullopt;
    r.source = "environment";
    return r;
}

std::optional<resolved_credentials> from_shared_files(const environment& env) {
    const auto profile = profile_name(env);
    auto pick = [&](const ini_file& ini, const std::string& section,
                    const char* source) -> std::optional<resolved_credentials> {
        auto it = ini.find(section);
        if (it == ini.end())
            return std::nullopt;
        auto get = [&](const char* k) {
            auto kv = it->second.find(k);
            return kv == it->second.end() ? std::string() : kv->second;
        };
        resolved_credentials r;
        r.credentials.access_key_id = get("aws_access_key_id");
        r.credentials.secret_access_key = get("aws_secret_access_key");
        r.credentials.session_token = get("aws_session_token");
        if (r.credentials.access_key_id.empty() || r.credentials.secret_access_key.empty())
            return std::nullopt;
        r.source = source;
        return r;
    };
    if (auto text = read_file(credentials_path(env)))
        if (auto r = pick(parse_ini(*text), profile, "shared-credentials-file"))
            return r;
    if (auto text = read_file(config_path(env)))
        if (auto r = pick(parse_ini(*text), profile == "default" ? "default" : "profile " + profile,
                          "shared-config-file"))
            return r;
    return std::nullopt;
}

std::optional<simple_response> simple_http(const std::string& method, const std::string& url,
                                           const std::vector<std::string>& headers,
                                           std::chrono::milliseconds timeout) {
    curl_easy_ptr easy(curl_easy_init());
    if (!easy)
        return std::nullopt;
    CURL* e = easy.get();
    simple_response out;
    curl_slist_ptr list;
    for (const auto& h : headers)
        list.reset(curl_slist_append(list.release(), h.c_str()));
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (method == "PUT") {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, list.get());
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &out.body);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    const CURLcode code = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &out.status);
    if (code != CURLE_OK)
        return std::nullopt;
    return out;
}

std::optional<resolved_credentials> from_container(const environment& env) {
    std::string url;
    if (auto rel = env.var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); !rel.empty())
        url = "http://169.254.170.2" + rel;
    else
        url = env.var("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    if (url.empty())
        return std::nullopt;
    std::vector<std::string> headers;
    std::string token = env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    if (auto file = env.var("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"); !file.empty())
        token = trimmed(read_file(file).value_or(""));
    if (!token.empty())
        headers.push_back("Authorization: " + token);
    auto res = simple_http("GET", url, headers, std::chrono::milliseconds(2000));
    if (!res || res->status != 200) {
        log::warn("aws: container credentials endpoint answered {}",
                  res ? std::to_string(res->status) : std::string("nothing"));
        return std::nullopt;
    }
    return from_credentials_json(res->body, "container");
}

namespace {
std::string imds_base(const environment& env) {
    auto e = env.var("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (!e.empty()) {
        while (!e.empty() && e.back() == '/')
            e.pop_back();
        return e;
    }
    return "http://169.254.169.254";
}

std::optional<std::string> imds_token(const environment& env) {
    if (env.var("AWS_EC2_METADATA_DISABLED") == "true")
        return std::nullopt;
    auto res = simple_http("PUT", imds_base(env) + "/latest/api/token",
                           {"X-aws-ec2-metadata-token-ttl-seconds: 21600"},
                           std::chrono::milliseconds(1000));
    if (!res || res->status != 200)
        return std::nullopt;
    return res->body;
}
}  // namespace

std::optional<resolved_credentials> from_imds(const environment& env) {
    auto token = imds_token(env);
    if (!token)
        return std::nullopt;
    const std::vector<std::string> h = {"X-aws-ec2-metadata-token: " + *token};
    const auto base = imds_base(env) + "/latest/meta-data/iam/security-credentials/";
    auto role = simple_http("GET", base, h, std::chrono::milliseconds(1000));
    if (!role || role->status != 200 || role->body.empty())
        return std::nullopt;
    auto name = trimmed(role->body.substr(0, role->body.find('\n')));
    auto creds = simple_http("GET", base + name, h, std::chrono::milliseconds(1000));
    if (!creds || creds->status != 200)
        return std::nullopt;
    return from_credentials_json(creds->body, "imds");
}

std::optional<std::string> resolve_region(const environment& env, bool allow_imds) {
    if (auto r = env.var("AWS_REGION"); !r.empty())
        return r;
    if (auto r = env.var("AWS_DEFAULT_REGION"); !r.empty())
        return r;
    if (auto text = read_file(config_path(env))) {
        const auto profile = profile_name(env);
        auto ini = parse_ini(*text);
        auto it = ini.find(profile == "default" ? "default" : "profile " + profile);
        if (it != ini.end()) {
            auto kv = it->second.find("region");
            if (kv != it->second.end() && !kv->second.empty())
                return kv->second;
        }
    }
    if (allow_imds) {
        if (auto token = imds_token(env)) {
            auto res = simple_http("GET", imds_base(env) + "/latest/meta-data/placement/region",
                                   {"X-aws-ec2-metadata-token: " + *token},
                                   std::chrono::milliseconds(1000));
            if (res && res->status == 200 && !res->body.empty())
                return trimmed(res->body);
        }
    }
    return std::nullopt;
}

bool credential_chain::has_local_credentials() const {
    return from_environment(env_).has_value() || from_shared_files(env_).has_value();
}

boost::system::result<resolved_credentials, std::string> credential_chain::get() {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::system_clock::now();
    if (cached_ && (!cached_->expires || *cached_->expires - now > std::chrono::minutes(5)))
        return *cached_;
    for (auto* provider : {&from_environment, &from_shared_files, &from_container, &from_imds}) {
        if (auto r = (*provider)(env_)) {
            if (!cached_ || cached_->source != r->source)
                log::info("aws: using credentials from {}", r->source);
            cached_ = std::move(r);
            return *cached_;
        }
    }
    return {boost::system::in_place_error,
            std::string("no AWS credentials found: looked at AWS_ACCESS_KEY_ID/"
                        "AWS_SECRET_ACCESS_KEY, ") +
                credentials_path(env_) + " and " + config_path(env_) + " (profile " +
                profile_name(env_) + "), container credentials, EC2 instance metadata"};
}

}  // namespace eventcast::aws

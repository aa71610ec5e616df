// SigV4 verification: parse the Authorization header, check scope, date and skew, then sign the
// same request again with the stored secret and compare. The signer is aws/sigv4 (tested against
// the AWS SigV4 suite), so the verifier cannot drift from what clients compute.
#include "auth/iam.hpp"

#include "aws/sigv4.hpp"
#include "core/strings.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <sstream>

namespace eventcast::auth {

namespace {

constexpr std::string_view algorithm = "AWS4-HMAC-SHA256";

using core::trim;

bool all_digits(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool lower_hex(std::string_view s) {
    return std::all_of(s.begin(), s.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// "YYYYMMDDTHHMMSSZ" -> seconds since 1970; nullopt when malformed. Seconds, not a
// system_clock time point: year 9999 in nanoseconds overflows.
std::optional<std::time_t> parse_amz_date(std::string_view s) {
    if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z' || !all_digits(s.substr(0, 8)) ||
        !all_digits(s.substr(9, 6)))
        return std::nullopt;
    auto num = [&](std::size_t pos, std::size_t len) {
        int v = 0;
        for (std::size_t i = 0; i < len; ++i)
            v = v * 10 + (s[pos + i] - '0');
        return v;
    };
    std::tm tm{};
    tm.tm_year = num(0, 4) - 1900;
    tm.tm_mon = num(4, 2) - 1;
    tm.tm_mday = num(6, 2);
    tm.tm_hour = num(9, 2);
    tm.tm_min = num(11, 2);
    tm.tm_sec = num(13, 2);
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return std::nullopt;
    const std::time_t t = timegm(&tm);
    if (t == -1)
        return std::nullopt;
    return t;
}

}  // namespace

boost::system::result<sigv4_authorization, std::string> parse_sigv4_authorization(
    std::string_view header) {
    header = trim(header);
    if (header.size() > 4096)
        return std::string("the Authorization header is longer than 4096 bytes");
    if (header.substr(0, algorithm.size()) != algorithm ||
        (header.size() > algorithm.size() && header[algorithm.size()] != ' '))
        return std::string("the Authorization header must start with AWS4-HMAC-SHA256");
    std::string_view rest = header.substr(algorithm.size());
    sigv4_authorization out;
    bool have_credential = false, have_signed = false, have_signature = false;
    while (!rest.empty()) {
        const auto comma = rest.find(',');
        const auto part = trim(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
        if (part.empty())
            continue;
        const auto eq = part.find('=');
        if (eq == std::string_view::npos)
            return "'" + std::string(part.substr(0, 40)) +
                   "' is not Name=value; expected Credential=, SignedHeaders=, Signature=";
        const auto name = part.substr(0, eq);
        const auto value = part.substr(eq + 1);
        if (name == "Credential") {
            // AKID/yyyymmdd/region/service/aws4_request
            std::vector<std::string_view> f;
            std::size_t start = 0;
            while (true) {
                const auto slash = value.find('/', start);
                f.push_back(value.substr(start, slash - start));
                if (slash == std::string_view::npos)
                    break;
                start = slash + 1;
            }
            if (f.size() != 5 || f[4] != "aws4_request" || f[0].empty() || f[1].size() != 8 ||
                !all_digits(f[1]) || f[2].empty() || f[3].empty())
                return std::string(
                    "Credential must be ACCESS_KEY_ID/yyyymmdd/region/service/aws4_request");
            out.access_key_id = f[0];
            out.date = f[1];
            out.region = f[2];
            out.service = f[3];
            have_credential = true;
        } else if (name == "SignedHeaders") {
            std::size_t start = 0;
            while (start <= value.size()) {
                const auto semi = value.find(';', start);
                const auto h = value.substr(start, semi - start);
                if (h.empty())
                    return std::string("SignedHeaders has an empty name");
                for (char c : h)
                    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                          c == '_' || c == '.'))
                        return std::string(
                            "SignedHeaders must be lower-case header names separated by ';'");
                out.signed_headers.emplace_back(h);
                if (semi == std::string_view::npos)
                    break;
                start = semi + 1;
            }
            if (out.signed_headers.size() > 64)
                return std::string("SignedHeaders names more than 64 headers");
            have_signed = true;
        } else if (name == "Signature") {
            if (value.size() != 64 || !lower_hex(value))
                return std::string("Signature must be 64 lower-case hex digits");
            out.signature = value;
            have_signature = true;
        } else {
            return "unknown parameter '" + std::string(name.substr(0, 40)) +
                   "'; expected Credential, SignedHeaders, Signature";
        }
    }
    if (!have_credential || !have_signed || !have_signature)
        return std::string(
            "the Authorization header needs Credential=, SignedHeaders= and "
            "Signature=");
    return out;
}

boost::system::result<iam_key_store, std::string> iam_key_store::parse(std::string_view text) {
    iam_key_store store;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        if (const auto hash = line.find('#'); hash != std::string_view::npos)
            line = line.substr(0, hash);
        std::vector<std::string_view> fields;
        std::size_t i = 0;
        while (i < line.size()) {
            while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i])))
                ++i;
            const auto start = i;
            while (i < line.size() && !std::isspace(static_cast<unsigned char>(line[i])))
                ++i;
            if (i > start)
                fields.push_back(line.substr(start, i - start));
        }
        if (fields.empty())
            continue;
        if (fields.size() < 2 || fields.size() > 3)
            return "line " + std::to_string(line_no) +
                   ": expected 'ACCESS_KEY_ID SECRET_ACCESS_KEY [principal]'";
        iam_key key{std::string(fields[1]),
                    std::string(fields.size() == 3 ? fields[2] : fields[0])};
        if (!store.keys_.emplace(std::string(fields[0]), std::move(key)).second)
            return "line " + std::to_string(line_no) + ": access key id " + std::string(fields[0]) +
                   " is listed twice";
    }
    return store;
}

boost::system::result<iam_key_store, std::string> iam_key_store::load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return "cannot read " + path;
    std::stringstream ss;
    ss << in.rdbuf();
    auto r = parse(ss.str());
    if (!r)
        return path + ": " + r.error();
    return r;
}

const iam_key* iam_key_store::find(std::string_view access_key_id) const {
    auto it = keys_.find(std::string(access_key_id));
    return it == keys_.end() ? nullptr : &it->second;
}

boost::system::result<iam_caller, std::string> verify_sigv4(
    const signed_request& req, const iam_key_store& keys, const iam_policy& policy,
    std::chrono::system_clock::time_point now) {
    const std::string* header = req.headers.find("authorization");
    if (!header)
        return std::string("AWS_IAM needs an 'authorization' entry with a SigV4 signature");
    auto auth = parse_sigv4_authorization(*header);
    if (!auth)
        return auth.error();
    if (auth->service != "appsync")
        return "the signature's service is '" + auth->service.substr(0, 40) +
               "'; sign for service 'appsync'";
    if (!policy.region.empty() && auth->region != policy.region)
        return "the signature's region is '" + auth->region.substr(0, 40) +
               "'; this server accepts '" + policy.region + "'";
    const std::string* date_text = req.headers.find("x-amz-date");
    if (!date_text)
        return std::string("AWS_IAM needs an 'x-amz-date' entry (YYYYMMDDTHHMMSSZ)");
    const auto when = parse_amz_date(*date_text);
    if (!when)
        return std::string("x-amz-date must be YYYYMMDDTHHMMSSZ");
    if (date_text->substr(0, 8) != auth->date)
        return std::string("the credential scope's date is not x-amz-date's date");
    const std::int64_t now_s = std::chrono::system_clock::to_time_t(now);
    const std::int64_t skew = *when > now_s ? *when - now_s : now_s - *when;
    if (skew > policy.clock_skew.count())
        return "x-amz-date is " + std::to_string(skew) +
               " s away from the server's clock; at most " +
               std::to_string(policy.clock_skew.count()) + " s is accepted";
    bool signs_host = false, signs_date = false, signs_token = false;
    std::vector<aws::http_header> headers;
    for (const auto& name : auth->signed_headers) {
        if (name == "x-amz-date") {
            signs_date = true;
            continue;
        }
        if (name == "x-amz-security-token") {
            signs_token = true;
            continue;
        }
        if (name == "authorization")
            return std::string("SignedHeaders must not include authorization");
        signs_host |= name == "host";
        const std::string* value = req.headers.find(name);
        if (!value)
            return "signed header '" + name + "' is missing from the request";
        headers.push_back({name, *value});
    }
    if (!signs_host || !signs_date)
        return std::string("SignedHeaders must include host and x-amz-date");
    const iam_key* key = keys.find(auth->access_key_id);
    if (!key)
        return "access key id " + auth->access_key_id.substr(0, 128) +
               " is not known to this server";
    aws::aws_credentials creds{auth->access_key_id, key->secret_access_key, {}};
    aws::sigv4_options options;
    if (const std::string* token = req.headers.find("x-amz-security-token")) {
        creds.session_token = *token;  // opaque here: no STS to ask (spec §9.3)
        options.omit_session_token = !signs_token;
    } else if (signs_token) {
        return std::string("signed header 'x-amz-security-token' is missing from the request");
    }
    aws::sigv4_request request{req.method, req.path, req.query, headers, req.body};
    auto sig = aws::sign_request(
        request, creds,
        {auth->region, auth->service, std::chrono::system_clock::from_time_t(*when)}, options);
    if (!sig)
        return "cannot check the signature: " + sig.error().message;
    // Both lists are sorted by SigV4's rules, so equal sets give equal strings.
    std::string given_signed;
    {
        auto sorted = auth->signed_headers;
        std::sort(sorted.begin(), sorted.end());
        for (const auto& h : sorted) {
            if (!given_signed.empty())
                given_signed += ';';
            given_signed += h;
        }
    }
    const bool same_headers = given_signed == sig->signed_headers;
    const bool same_sig = CRYPTO_memcmp(sig->signature.data(), auth->signature.data(), 64) == 0;
    if (!same_headers || !same_sig)
        return std::string(
            "the signature does not match; check the secret, the signed headers and the body");
    iam_caller caller;
    caller.access_key_id = auth->access_key_id;
    caller.principal = key->principal;
    return caller;
}

std::string synthetic_body() {
    return "{}";
}

std::string synthetic_body(std::string_view channel) {
    std::string out = R"({"channel":)";
    events::append_json_string(out, channel);
    out += '}';
    return out;
}

std::string synthetic_body(std::string_view channel, const std::vector<std::string>& evs) {
    std::string out = R"({"channel":)";
    events::append_json_string(out, channel);
    out += R"(,"events":[)";
    for (std::size_t i = 0; i < evs.size(); ++i) {
        if (i)
            out += ',';
        events::append_json_string(out, evs[i]);
    }
    out += "]}";
    return out;
}

}  // namespace eventcast::auth

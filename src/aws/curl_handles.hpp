// Owning handles for libcurl objects: the one place that calls curl_easy_cleanup and
// curl_slist_free_all (STYLE.md §6). Header-only; include <curl/curl.h> comes with it.
#pragma once

#include <curl/curl.h>

#include <memory>

namespace eventcast::aws {

struct curl_easy_deleter {  // nothing else calls curl_easy_cleanup
    void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
using curl_easy_ptr = std::unique_ptr<CURL, curl_easy_deleter>;

struct curl_slist_deleter {
    void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using curl_slist_ptr = std::unique_ptr<curl_slist, curl_slist_deleter>;

}  // namespace eventcast::aws

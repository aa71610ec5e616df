// The error every transport-free LLM wire-format piece returns: what was wrong and where, for a
// log line or a chat error event. Parsers keep it sticky; the stream cannot be resynchronised.
#pragma once

#include <boost/system/result.hpp>

#include <string>

namespace eventcast::llm {

/// A protocol or input error (malformed frame, bad signing input). `message` says what was
/// wrong, where, and what was expected, e.g. "Prelude checksum mismatch: frame says 0x1234abcd,
/// computed 0x0badf00d (message at stream offset 4096)".
struct wire_error {
    std::string message;
};

template <class T>
using result = boost::system::result<T, wire_error>;

/// Lets boost::system::result<T, wire_error>::value() throw (std::runtime_error with message).
[[noreturn]] void throw_exception_from_error(const wire_error& e,
                                             const boost::source_location& loc);

}  // namespace eventcast::llm

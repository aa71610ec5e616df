// eventcast-bench fake-openai: a local OpenAI-compatible streaming endpoint
// (POST /v1/chat/completions with "stream": true, answered as SSE) whose every content chunk
// starts with a marker "~T<ns>~K<index>~N<count>~" stamped just before the chunk is written to
// the socket, so the chat scenario can measure provider write -> subscriber receive.
#pragma once

#include <cstdint>
#include <string>

namespace eventcast::bench {

struct fake_openai_options {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;
    std::string port_file;         // written (temp + rename) once listening
    std::size_t chunks = 40;       // content chunks per answer
    double interval_ms = 50;       // between chunks (20 chunks/s)
    double first_delay_ms = 0;     // before the first chunk
    std::size_t chunk_bytes = 24;  // content bytes per chunk (marker + padding)
    double max_seconds = 900;      // exits by itself after this long
};

/// Serves until SIGINT/SIGTERM or max_seconds; returns the process exit code.
int run_fake_openai(const fake_openai_options& opt);

}  // namespace eventcast::bench

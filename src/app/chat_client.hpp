// `eventcast chat "prompt"`: a terminal client that subscribes to its chat channel, posts the
// prompt to /chat and prints the answer as it streams.
#pragma once

namespace eventcast::app {

/// argv[0] is "chat". Returns the process exit code.
int run_chat_client(int argc, const char* const* argv);

}  // namespace eventcast::app

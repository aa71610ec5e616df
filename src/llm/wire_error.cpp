// wire_error's hook for boost::system::result::value().
#include "llm/wire_error.hpp"

#include <stdexcept>

namespace eventcast::llm {

void throw_exception_from_error(const wire_error& e, const boost::source_location&) {
    throw std::runtime_error(e.message);
}

}  // namespace eventcast::llm

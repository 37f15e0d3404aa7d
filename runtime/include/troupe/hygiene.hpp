// Handlers every troupe actor installs, so nothing fails silently.
//
// CAF's defaults print an unexpected message to stdout and drop it, and print
// an exception and kill the actor. troupe actors instead count and log an
// unexpected message (a request still gets an `unexpected_message` error back,
// so its sender never waits for nothing), and turn an exception into an exit
// reason their supervisor records. Custom service actors should call these in
// their behavior factory too.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include <caf/fwd.hpp>

namespace troupe {

// Counts (when `counter` is set) and logs unexpected messages to stderr; the
// first ten per actor are logged with their content.
void install_default_handler(caf::scheduled_actor* self, std::string who,
                             std::atomic<uint64_t>* counter = nullptr);

// Turns an exception escaping a handler into troupe.stage_failed with the
// actor's name and the exception's message: the supervisor's restart reason.
void install_exception_handler(caf::scheduled_actor* self, std::string who);

} // namespace troupe

// A fixture for the embeddable supervisor on CAF's test coordinator (one
// thread, virtual time): an actor system, children that crash on request and
// record when they end, and helpers to ask for a child and to let time pass.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "troupe/hygiene.hpp"
#include "troupe/supervisor.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/units.hpp"

namespace troupe_test {

// Function actors here take an unused int: CAF 0.17 dereferences a null
// argument tuple when a function actor takes no arguments (UBSan reports it).
// This is the form the README shows.
constexpr int no_args = 0;

struct supervisor_fixture {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::map<std::string, int> starts;
  std::vector<std::string> stopped; // children, in the order they ended

  supervisor_fixture() {
    cfg.set("scheduler.policy", caf::atom("testing"));
    troupe::add_message_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
  }

  ~supervisor_fixture() {
    sched->run();
  }

  // A child that throws when sent "crash" and records when it ends;
  // `ignore_exit`: slow to stop, only a kill ends it.
  static caf::behavior worker(caf::event_based_actor* self, std::string name,
                              std::vector<std::string>* stopped,
                              bool ignore_exit) {
    troupe::install_exception_handler(self, name);
    self->attach_functor([stopped, name] { stopped->push_back(name); });
    if (ignore_exit)
      self->set_exit_handler([](caf::exit_msg&) {});
    return {[](const std::string& cmd) {
      if (cmd == "crash")
        throw std::runtime_error("asked to crash");
    }};
  }

  troupe::child_spec child(std::string name,
                           troupe::restart_type restart
                           = troupe::restart_type::permanent,
                           bool ignore_exit = false) {
    return {name, restart, [this, name, ignore_exit](caf::local_actor& p) {
              ++starts[name];
              return p.spawn(worker, name, &stopped, ignore_exit);
            }};
  }

  // The child's current incarnation, asked over the supervisor's protocol.
  caf::actor get(const troupe::supervisor_actor& sup, const std::string& name) {
    caf::actor result;
    auto* out = &result; // the init closure is gone when the reply comes
    sys->spawn([out, sup, name](caf::event_based_actor* self, int) {
      self->request(sup, std::chrono::seconds(1), troupe::get_atom_v, name)
        .then([out](const caf::actor& h) { *out = h; });
    }, no_args);
    sched->run();
    return result;
  }

  // Runs all ready work while `total` of virtual time passes in 10 ms steps.
  void settle(troupe::duration total = std::chrono::seconds(1)) {
    for (troupe::duration t{0}; t < total; t += std::chrono::milliseconds(10)) {
      sched->run();
      sched->advance_time(std::chrono::milliseconds(10));
    }
    sched->run();
  }
};

} // namespace troupe_test

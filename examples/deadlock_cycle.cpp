// Three services that deadlock the way real code does, and troupe's deadlock
// detector finding and resolving it.
//
// orders, pricing and inventory answer (get, hops): with hops 0 from their
// own figure; otherwise they ask the next service (orders → pricing →
// inventory → orders) for hops - 1, wait for it with .await and add their
// own. get(2) at orders is fine (orders → pricing → inventory). get(3) comes
// back to orders while orders waits: a request cycle. An actor in .await
// handles nothing else (not even an exit message) until its reply comes, so
// without the detector the caller would see a timeout after 30 s.
//
// Part 1, policy fail: the caller gets a `deadlock` error within about two
//   probe intervals (100 ms here); the members are free again.
// Part 2, policy restart: the detector has one member restarted by its
//   supervisor (troupe::spawn_supervisor); a normal request works after.
// It checks itself and exits 1 when a part does not behave (it is a test).
#include <caf/actor_cast.hpp>
#include <caf/after.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "troupe/ask.hpp"
#include "troupe/deadlock_detector.hpp"
#include "troupe/errors.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "troupe/supervisor.hpp"

using namespace std::chrono_literals;

namespace {

constexpr auto probe_interval = 100ms;

// One service. It finds `next` through the supervisor on every request: a
// restart replaces the actor behind a name.
caf::behavior service(caf::event_based_actor* self,
                      troupe::supervisor_actor sup, std::string next,
                      int64_t own) {
  return {
    [=](troupe::get_atom, int64_t hops) -> caf::result<int64_t> {
      if (hops == 0)
        return own;
      auto rp = self->make_response_promise<int64_t>();
      troupe::ask(self, sup, 1s, troupe::get_atom_v, next)
        .await(
          [=](caf::actor& to) mutable {
            if (!to) {
              rp.deliver(troupe::make_error(troupe::errc::unavailable,
                                            next + " is restarting"));
              return;
            }
            troupe::ask(self, to, 30s, troupe::get_atom_v, hops - 1)
              .await([=](int64_t v) mutable { rp.deliver(own + v); },
                     [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
          },
          [=](caf::error& e) mutable { rp.deliver(std::move(e)); });
      return rp;
    },
  };
}

troupe::child_spec service_child(std::string name, std::string next,
                                 int64_t own) {
  return {name, troupe::restart_type::permanent,
          [next, own](caf::local_actor& sup) {
            return sup.spawn(service,
                             caf::actor_cast<troupe::supervisor_actor>(&sup),
                             next, own);
          }};
}

struct answer {
  bool ok = false;
  int64_t value = 0;
  std::string error;
  std::chrono::milliseconds took{0};
};

// The actor behind `name` now (invalid while it restarts).
caf::actor lookup(caf::actor_system& sys, const troupe::supervisor_actor& sup,
                  const std::string& name) {
  caf::scoped_actor self{sys};
  caf::actor out;
  troupe::ask(self.ptr(), sup, 1s, troupe::get_atom_v, name)
    .receive([&](caf::actor& a) { out = a; }, [](caf::error&) {});
  return out;
}

// The caller: asks orders for get(hops), finding orders through the
// supervisor (retrying while a service restarts).
answer request(caf::actor_system& sys, const troupe::supervisor_actor& sup,
               int64_t hops) {
  caf::scoped_actor self{sys};
  answer out;
  for (int attempt = 0; attempt < 50; ++attempt) {
    auto orders = lookup(sys, sup, "orders");
    if (!orders) {
      std::this_thread::sleep_for(100ms);
      continue;
    }
    auto t0 = std::chrono::steady_clock::now();
    out = answer{};
    troupe::ask(self.ptr(), orders, 30s, troupe::get_atom_v, hops)
      .receive(
        [&](int64_t v) {
          out.ok = true;
          out.value = v;
        },
        [&](caf::error& e) { out.error = troupe::render(e); });
    out.took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - t0);
    if (out.ok || out.error.find("restarting") == std::string::npos)
      return out;
    std::this_thread::sleep_for(100ms);
  }
  return out;
}

// Runs the three services on a runtime with `policy`; true when it behaved.
bool part(const char* title, troupe::deadlock_policy policy) {
  std::cout << "== " << title << '\n';
  troupe::runtime_options opts;
  opts.deadlock.probe_interval = probe_interval;
  opts.deadlock.policy = policy;
  troupe::runtime rt{troupe::registry{}, opts};
  auto& sys = rt.system();

  troupe::supervisor_config cfg;
  cfg.name = "shop";
  cfg.children.push_back(service_child("orders", "pricing", 1));
  cfg.children.push_back(service_child("pricing", "inventory", 10));
  cfg.children.push_back(service_child("inventory", "orders", 100));
  auto sup = troupe::spawn_supervisor(sys, cfg);

  // The detector's findings come to this actor as (deadlock, notice).
  caf::scoped_actor watcher{sys};
  caf::anon_send(rt.deadlock_detector(), troupe::subscribe_atom_v,
                 caf::actor_cast<caf::actor>(watcher));

  bool good = true;
  auto check = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::cout << "FAILED: " << what << '\n';
      good = false;
    }
  };

  std::vector<caf::actor_id> ids_before;
  for (auto name : {"orders", "pricing", "inventory"})
    if (auto a = lookup(sys, sup, name))
      ids_before.push_back(a.id());
  check(ids_before.size() == 3, "the three services are up");
  if (!good) {
    caf::anon_send(sup, troupe::stop_atom_v);
    return false;
  }

  auto fine = request(sys, sup, 2);
  std::cout << "get(2): " << (fine.ok ? std::to_string(fine.value) : fine.error)
            << '\n';
  check(fine.ok && fine.value == 111, "get(2) answers 111");

  auto stuck = request(sys, sup, 3);
  std::cout << "get(3): after " << stuck.took.count() << " ms: "
            << (stuck.ok ? std::to_string(stuck.value) : stuck.error) << '\n';
  check(!stuck.ok && stuck.error.find("deadlock") != std::string::npos,
        "get(3) fails with a deadlock error");
  check(stuck.took < 3s, "the error comes within seconds, not after 30 s");

  troupe::deadlock_notice notice;
  watcher->receive(
    [&](troupe::deadlock_atom, troupe::deadlock_notice& n) { notice = n; },
    caf::after(std::chrono::seconds(5)) >> [] {});
  std::cout << "notice: " << notice.text << " -> " << notice.resolution
            << '\n';
  check(notice.kind == "cycle" && notice.members.size() == 3,
        "a cycle of the three services is reported");
  auto expected = policy == troupe::deadlock_policy::restart ? "restarted "
                                                             : "failed ";
  check(notice.resolution.rfind(expected, 0) == 0,
        std::string{"the resolution starts with '"} + expected + "'");

  // Under restart its supervisor starts a new actor for the member after
  // its backoff: wait for it, then ask again.
  const char* names[] = {"orders", "pricing", "inventory"};
  auto renewed = [&] {
    std::vector<std::string> out;
    for (size_t i = 0; i < 3; ++i)
      if (auto a = lookup(sys, sup, names[i]); a && a.id() != ids_before[i])
        out.push_back(names[i]);
    return out;
  };
  size_t want = policy == troupe::deadlock_policy::restart ? 1 : 0;
  for (int i = 0; i < 50 && renewed().size() < want; ++i)
    std::this_thread::sleep_for(100ms);
  for (auto& name : renewed())
    std::cout << name << " is a new actor now\n";
  check(renewed().size() == want,
        std::to_string(want) + " member(s) restarted");

  auto after = request(sys, sup, 2);
  std::cout << "get(2) after: "
            << (after.ok ? std::to_string(after.value) : after.error) << '\n';
  check(after.ok && after.value == 111, "get(2) works after the deadlock");

  // Every member is free again, so the supervisor can stop them.
  caf::anon_send(sup, troupe::stop_atom_v);
  return good;
}

} // namespace

int main() {
  bool ok = part("policy fail: the waiting requests get a deadlock error",
                 troupe::deadlock_policy::fail);
  ok = part("policy restart: the supervisor restarts one member",
            troupe::deadlock_policy::restart)
       && ok;
  std::cout << (ok ? "ok" : "FAILED") << '\n';
  return ok ? 0 : 1;
}

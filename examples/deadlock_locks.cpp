// Legacy code with two mutexes, made checkable by swapping std::mutex for
// troupe::deadlock::tracked_mutex:
// - transfer() takes accounts, then audit; nightly_report() takes audit, then
//   accounts. Run at the same time they can deadlock. Here they run one after
//   the other, so nothing hangs, and the inversion is reported all the same:
//   before it ever deadlocks.
// - lock_for() gives up on a lock held too long and names the holder.
// The reports print on stderr (the default reporter); a listener, as the
// deadlock detector would add, collects them so the example checks itself:
// it exits non-zero when a report is missing (it is a test).
#include <chrono>
#include <functional>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "troupe/deadlock.hpp"

using troupe::deadlock::lock_report;
using troupe::deadlock::tracked_mutex;

namespace {

// The legacy part: plain lock_guard code, only the mutex type changed.
struct bank {
  tracked_mutex accounts_m{"accounts"};
  tracked_mutex audit_m{"audit log"};
  std::map<std::string, long> accounts{{"alice", 100}, {"bob", 20}};
  std::vector<std::string> audit;

  void transfer(const std::string& from, const std::string& to, long amount) {
    std::lock_guard<tracked_mutex> a{accounts_m};
    std::lock_guard<tracked_mutex> l{audit_m}; // accounts → audit log
    accounts[from] -= amount;
    accounts[to] += amount;
    audit.push_back(from + " -> " + to + ": " + std::to_string(amount));
  }

  std::size_t nightly_report() {
    std::lock_guard<tracked_mutex> l{audit_m};
    std::lock_guard<tracked_mutex> a{accounts_m}; // audit log → accounts: inverted
    return audit.size() + accounts.size();
  }
};

void run_as(const char* thread_name, const std::function<void()>& work) {
  std::thread t{[&] {
    troupe::deadlock::set_thread_name(thread_name);
    work();
  }};
  t.join();
}

} // namespace

int main() {
  std::mutex seen_m;
  std::vector<lock_report> seen;
  auto token = troupe::deadlock::add_lock_listener([&](const lock_report& r) {
    std::lock_guard<std::mutex> g{seen_m};
    seen.push_back(r);
  });

  bank b;
  run_as("transfer", [&] { b.transfer("alice", "bob", 30); });
  run_as("nightly-report", [&] { b.nightly_report(); }); // reported here

  // A batch job holds the accounts; a teller waits 50 ms at most.
  std::promise<void> holding, done;
  auto finished = done.get_future();
  std::thread batch{[&] {
    troupe::deadlock::set_thread_name("batch");
    std::lock_guard<tracked_mutex> a{b.accounts_m};
    holding.set_value();
    finished.wait();
  }};
  holding.get_future().wait();
  bool got = true;
  run_as("teller", [&] { got = b.accounts_m.lock_for(std::chrono::milliseconds(50)); });
  done.set_value();
  batch.join();
  troupe::deadlock::remove_lock_listener(token);

  bool inversion = false, timeout = false;
  for (auto& r : seen) {
    inversion |= r.what == lock_report::kind::inversion && r.first == "accounts" &&
                 r.second == "audit log" && r.other_thread_name == "transfer";
    timeout |= r.what == lock_report::kind::timeout && r.other_thread_name == "batch";
  }
  std::cout << seen.size() << " lock reports; inversion " << (inversion ? "seen" : "MISSING")
            << ", timeout naming the holder " << (timeout ? "seen" : "MISSING")
            << (got ? "; the teller got the lock?!" : "") << '\n';
  return inversion && timeout && !got && seen.size() == 2 ? 0 : 1;
}

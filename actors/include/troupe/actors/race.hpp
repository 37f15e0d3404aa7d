// race: ask several actors, the first success wins (select!, the seed's
// fetch_from_fastest). From inside any actor, non-blocking like gather.hpp.
//
//   race<T>(self, items, deadline, won, all_failed):
//   - every request goes out at once, each under `deadline`;
//   - the first reply of type T wins: `won(T&, size_t index)` runs, on self;
//   - the others are losers: each still outstanding and marked
//     `cancellable` gets (cancel_atom, request_id) so it can stop its work
//     (request_id: see below); every loser's late reply (or error) is
//     ignored and counted in race_stats::late;
//   - when every request failed (a timeout is errc::timeout), no one won:
//     `all_failed(std::vector<caf::error>&)` runs with each error, in
//     request order.
// Exactly one of won and all_failed runs, once.
//
// The cancel message, for callees that want to stop losing work: handle
// (troupe::cancel_atom, uint64_t id), where id is the request's
// `current_message_id().request_id().integer_value()` as the callee saw it
// when the request came (it may then answer that request with
// errc::cancelled, or not at all). Mark such a callee's item cancellable:
// `auto it = make_ask(h, ...); it.cancellable = true;`. Items not marked
// never get a message they do not understand.
//
// Example (the fastest of three mirrors, by typed handle):
//   troupe::race<std::string>(self,
//     {troupe::make_ask(m1, fetch_atom_v, url), troupe::make_ask(m2, fetch_atom_v, url)},
//     2s,
//     [rp](std::string& body, size_t who) mutable { rp.deliver(body); },
//     [rp](std::vector<caf::error>& errs) mutable { rp.deliver(errs.front()); });
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/message_id.hpp>

#include "troupe/actors/gather.hpp"
#include "troupe/actors/type_ids.hpp"

namespace troupe {

// What a race did, readable after it (shared with the caller).
struct race_stats {
  bool decided = false;    // won or all failed
  size_t winner = 0;       // index of the winner, when won
  bool won = false;
  size_t cancelled = 0;    // cancel messages sent to losers
  size_t late = 0;         // replies or errors that came after the decision
};

template <class T, class Self, class Won, class AllFailed>
std::shared_ptr<race_stats> race(Self* self, std::vector<ask_item> items,
                                 duration deadline, Won won,
                                 AllFailed all_failed) {
  detail::check_deadline("race", deadline);
  struct state {
    race_stats stats;
    std::vector<caf::error> errors;
    std::vector<ask_item> items;
    std::vector<uint64_t> request_ids;
    std::vector<bool> answered;
    size_t failed = 0;
    Won won;
    AllFailed all_failed;
  };
  auto stats = std::make_shared<race_stats>();
  auto st = std::make_shared<state>(
    state{race_stats{}, std::vector<caf::error>(items.size()), {}, {},
          std::vector<bool>(items.size(), false), 0, std::move(won),
          std::move(all_failed)});
  st->items = std::move(items);
  auto n = st->items.size();
  if (n == 0) {
    stats->decided = true;
    st->all_failed(st->errors);
    return stats;
  }
  auto publish = [st, stats] { *stats = st->stats; };
  st->request_ids.resize(n);
  for (size_t i = 0; i < n; ++i) {
    auto h = ask(self, st->items[i].to, deadline, st->items[i].msg);
    st->request_ids[i] = h.id().request_id().integer_value();
    h.then(
      [self, st, i, publish](T& v) {
        st->answered[i] = true;
        if (st->stats.decided) {
          ++st->stats.late;
          publish();
          return;
        }
        st->stats.decided = st->stats.won = true;
        st->stats.winner = i;
        for (size_t k = 0; k < st->items.size(); ++k)
          if (!st->answered[k] && st->items[k].cancellable) {
            self->send(st->items[k].to, cancel_atom_v, st->request_ids[k]);
            ++st->stats.cancelled;
          }
        publish();
        st->won(v, i);
      },
      [st, i, deadline, publish](caf::error& e) {
        st->answered[i] = true;
        if (st->stats.decided) {
          ++st->stats.late;
          publish();
          return;
        }
        st->errors[i] = detail::gather_error("race", i, deadline, std::move(e));
        if (++st->failed < st->items.size())
          return;
        st->stats.decided = true;
        publish();
        st->all_failed(st->errors);
      });
  }
  return stats;
}

} // namespace troupe

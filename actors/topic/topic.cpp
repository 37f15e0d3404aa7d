// topic: publish/subscribe as an actor (the seed's CopyOnWriteList of
// listeners). The actor serialises subscribe, unsubscribe and publish, so a
// publish always sees one whole subscriber list; credit per subscriber keeps
// a slow one from growing memory. Protocol: troupe/actors/topic.hpp.
// Also the `topic` sink node, which publishes the records it gets.
#include "troupe/actors/topic.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/system_messages.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/ask.hpp"
#include "troupe/call_context.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/service.hpp"
#include "troupe/service_stats.hpp"

#include "../queue/forwarding_sink.hpp"

namespace troupe {

namespace {

struct subscriber {
  topic_subscriber_actor handle;
  uint64_t pending = 0; // deliveries not answered yet
};

struct topic_state {
  static inline const char* name = "troupe.topic";
  topic_config cfg;
  std::vector<subscriber> subs;
  topic_stats stats;

  subscriber* find(const caf::actor_addr& a) {
    auto i = std::find_if(subs.begin(), subs.end(),
                          [&](auto& s) { return s.handle.address() == a; });
    return i == subs.end() ? nullptr : &*i;
  }
  bool erase(const caf::actor_addr& a) {
    auto n = subs.size();
    subs.erase(std::remove_if(subs.begin(), subs.end(),
                              [&](auto& s) { return s.handle.address() == a; }),
               subs.end());
    return subs.size() != n;
  }
};

using topic_pointer = topic_actor::stateful_pointer<topic_state>;

uint64_t publish(topic_pointer self, const record_batch& batch) {
  auto& st = self->state;
  ++st.stats.published;
  uint64_t sent = 0;
  for (auto& s : st.subs) {
    if (s.pending >= st.cfg.max_pending) {
      ++st.stats.dropped;
      continue;
    }
    ++s.pending;
    ++sent;
    auto addr = s.handle.address();
    // The credit comes back with the answer (or the timeout), to whoever is
    // still subscribed under that address.
    auto back = [self, addr] {
      if (auto* x = self->state.find(addr); x && x->pending > 0)
        --x->pending;
    };
    ask(self, s.handle, self->state.cfg.deliver_timeout, topic_deliver_atom_v,
        st.cfg.name, batch)
      .then([back] { back(); },
            [self, back](caf::error& e) {
              if (e == caf::sec::request_timeout)
                ++self->state.stats.timed_out;
              back();
            });
  }
  st.stats.delivered += sent;
  return sent;
}

topic_actor::behavior_type topic_fn(topic_pointer self, topic_config cfg) {
  self->state.cfg = std::move(cfg);
  install_exception_handler(self, "topic");
  install_default_handler(self, "topic");
  self->set_down_handler([self](caf::down_msg& dm) {
    if (self->state.erase(dm.source))
      ++self->state.stats.removed_dead;
  });
  return {
    [=](topic_subscribe_atom,
        topic_subscriber_actor& s) -> caf::result<uint64_t> {
      auto& st = self->state;
      if (!s)
        return make_error(errc::refused, "topic: subscribe of a null actor");
      if (!st.find(s.address())) {
        if (st.subs.size() >= st.cfg.max_subscribers)
          return make_error(errc::refused,
                            "topic: " + std::to_string(st.subs.size())
                              + " subscribers already (max_subscribers)");
        self->monitor(s);
        st.subs.push_back(subscriber{s, 0});
      }
      return static_cast<uint64_t>(st.subs.size());
    },
    [=](topic_unsubscribe_atom, topic_subscriber_actor& s) {
      auto& st = self->state;
      if (s && st.erase(s.address()))
        self->demonitor(s.address());
      return static_cast<uint64_t>(st.subs.size());
    },
    [=](topic_publish_atom, record_batch& b) { return publish(self, b); },
    [=](stats_atom) {
      auto s = self->state.stats;
      s.subscribers = self->state.subs.size();
      return s;
    },
  };
}

class topic_client_impl final : public topic_client {
public:
  topic_client_impl(topic_actor h, call_context& ctx)
    : h_(std::move(h)), ctx_(ctx) {
  }
  void publish(record_batch batch, completion<uint64_t> done) override {
    using result = call_result<uint64_t>;
    typed_call<uint64_t>(
      ctx_, h_, ctx_.timeout(),
      [done](uint64_t& n, emitter& out) { done(result::success(n), out); },
      [done](call_status s, const std::string& why, emitter& out) {
        done(result::failure(s, why), out);
      },
      topic_publish_atom_v, std::move(batch));
  }

private:
  topic_actor h_;
  call_context& ctx_;
};

} // namespace

topic_actor spawn_topic(caf::actor_system& sys, const topic_config& cfg) {
  if (cfg.max_pending == 0)
    throw std::invalid_argument("topic: max_pending must be at least 1");
  return sys.spawn(topic_fn, cfg);
}

namespace actors {

actor_type topic_service_type() {
  actor_type t;
  t.name = "topic";
  t.kind = actor_kind::service;
  t.protocol = "topic";
  t.doc
    = "Publish/subscribe of record batches (CopyOnWriteList). Protocol "
      "topic_actor (troupe/actors/topic.hpp): subscribe(subscriber) -> "
      "subscribers, unsubscribe(subscriber) -> subscribers, publish(batch) -> "
      "subscribers it went to, stats -> topic_stats. A subscriber gets "
      "deliver(topic, batch) as a request and answers it when done: at most "
      "`max_pending` unanswered per subscriber, later publishes skip a "
      "subscriber without credit and count it as dropped (a slow subscriber "
      "never grows memory or holds the publisher back). A publish goes to the "
      "subscribers of that moment; dead subscribers are dropped (monitors). "
      "The `topic` sink (`topic: NAME`) publishes what it gets.";
  t.params = {
    {"max_pending", param_type::integer, false, "16",
     "deliveries a subscriber may leave unanswered; beyond, it misses "
     "batches (counted as dropped)", {}, 0, 1 << 20},
    {"max_subscribers", param_type::integer, false, "4096",
     "subscribers at most; more subscribe requests are refused", {}, 1,
     1 << 20},
    {"deliver_timeout", param_type::time_span, false, "30s",
     "a delivery not answered within this is given up and its credit "
     "returns", {}, 0},
  };
  t.service = typed_client<topic_actor>(
    typed_service<topic_actor>([](caf::actor_system& sys,
                                  const resource_spec& r) {
      topic_config cfg;
      cfg.name = r.name;
      cfg.max_pending = static_cast<uint64_t>(r.params.integer("max_pending"));
      cfg.max_subscribers
        = static_cast<uint64_t>(r.params.integer("max_subscribers"));
      cfg.deliver_timeout = r.params.dur("deliver_timeout");
      return spawn_topic(sys, cfg);
    }),
    [](const topic_actor& h, call_context& ctx) {
      return std::make_unique<topic_client_impl>(h, ctx);
    });
  t.validate_resource = [](const resource_spec& r, const registry&,
                           std::vector<diagnostic>& errors) {
    if (r.params.integer("max_pending") == 0)
      errors.push_back({r.value_at("max_pending"),
                        "'max_pending' must be at least 1: with no credit a "
                        "subscriber would never get a batch"});
    if (r.params.dur("deliver_timeout") <= duration{0})
      errors.push_back({r.value_at("deliver_timeout"),
                        "'deliver_timeout' must be positive (every delivery "
                        "waits a finite, positive time)"});
  };
  t.service.read_stats = stats_reader<topic_actor, topic_stats>(
    stats_atom_v, [](const topic_stats& s) {
      return std::vector<service_sample>{
          {"topic_published_total", "Batches published.", true, static_cast<double>(s.published)},
          {"topic_delivered_total", "Deliveries sent (batch x subscriber).", true, static_cast<double>(s.delivered)},
          {"topic_dropped_total", "Deliveries skipped: the subscriber had no credit.", true, static_cast<double>(s.dropped)},
          {"topic_timed_out_total", "Deliveries unanswered within deliver_timeout.", true, static_cast<double>(s.timed_out)},
          {"topic_subscribers", "Subscribers now.", false, static_cast<double>(s.subscribers)}};
    });
  return t;
}

actor_type topic_sink_type() {
  actor_type t;
  t.name = "topic";
  t.kind = actor_kind::sink;
  t.slots = {"topic"};
  t.doc = "Publishes the records it gets to a topic resource (`topic: NAME`), "
          "one publish per input batch; a record counts as written once the "
          "topic took the publish (whoever subscribed then gets it).";
  t.make_node = [](const node_context& ctx) -> std::unique_ptr<node_logic> {
    auto* c = ctx.calls ? ctx.calls->client<topic_client>("topic") : nullptr;
    if (c == nullptr)
      throw unrecoverable_error("node '" + ctx.spec.name
                                + "': its 'topic' slot names no topic resource");
    return std::make_unique<forwarding_sink>(
      "topic sink", [c](record_batch b, completion<uint64_t> done) {
        c->publish(std::move(b), std::move(done));
      });
  };
  t.validate = [](const node_spec& n, const graph_spec&, const registry&,
                  std::vector<diagnostic>& errors) {
    if (!n.resources.count("topic"))
      errors.push_back({n.at("type"), "node '" + n.name + "' of type 'topic' "
                                      "needs 'topic: NAME' naming a topic "
                                      "resource"});
  };
  return t;
}

} // namespace actors

} // namespace troupe

// Services that ask other services (issue 10, static check in lint): a
// service type lists the slots it calls through (actor_type::calls), its
// resources name other resources in them, the validator checks those slots
// like a node's and rejects a request cycle at the slot that closes it, and
// the runtime spawns the called services first and hands their handles to
// the caller's spawn. No built-in service calls another yet, so the test
// defines its own: `relay`, which forwards a question to its `next` relay
// and answers what came back (or answers itself when it has none).
//
// The YAML cases are real files under tests/request_cycles/ loaded with
// load_graph_file (real positions), each stating its expectation in its
// leading comments like tests/bad_configs/. Actors run on CAF's test
// coordinator: deterministic, no sleeps.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>
#include <caf/replies_to.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <caf/typed_response_promise.hpp>

#include "troupe/ask.hpp"
#include "troupe/call_context.hpp"
#include "troupe/service.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/validate.hpp"
#include "troupe/waiting.hpp"

#include "graph_harness.hpp"

using namespace troupe_test;

namespace {

// -- the relay service -----------------------------------------------------

using relay_actor = caf::typed_actor<
  caf::replies_to<get_atom, std::string>::with<std::string>>;

struct relay_state {
  static inline const char* name = "test.relay";
};

// "q" -> "q from b" at the end of the chain, "q from b via a" through a.
relay_actor::behavior_type
relay_fn(relay_actor::stateful_pointer<relay_state> self, std::string name,
         relay_actor next) {
  return {
    [=](get_atom, std::string& text) -> caf::result<std::string> {
      if (!next)
        return text + " from " + name;
      auto rp = self->make_response_promise<std::string>();
      troupe::ask(self, next, std::chrono::seconds(1), get_atom_v,
                  std::move(text))
        .then([=](std::string& answer) mutable {
                rp.deliver(answer + " via " + name);
              },
              [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
  };
}

// Its CAF-free client, as a node's logic sees it.
class relay_client : public slot_client {
public:
  virtual void ask(std::string text, completion<std::string> done) = 0;
};

class relay_client_impl : public relay_client {
public:
  relay_client_impl(relay_actor h, call_context& ctx)
    : h_(std::move(h)), ctx_(ctx) {
  }
  void ask(std::string text, completion<std::string> done) override {
    using result = call_result<std::string>;
    typed_call<std::string>(
      ctx_, h_, ctx_.timeout(),
      [done](std::string& v, emitter& out) {
        done(result::success(std::move(v)), out);
      },
      [done](call_status s, const std::string& why, emitter& out) {
        done(result::failure(s, why), out);
      },
      get_atom_v, std::move(text));
  }

private:
  relay_actor h_;
  call_context& ctx_;
};

// A stage asking the relay in its `relay` slot for each record's body and
// passing on the answer (failures to errors), in input order.
class ask_relay_stage : public waiting_stage {
public:
  explicit ask_relay_stage(const node_context& ctx)
    : waiting_stage(true, 8),
      client_(ctx.calls->client<relay_client>("relay")) {
    REQUIRE(client_ != nullptr);
  }

protected:
  void start(emitter&) override {
    while (auto t = pending_.next_to_start()) {
      client_->ask(pending_.at(*t).body,
                   [this, t = *t](call_result<std::string> v, emitter& out) {
                     if (v.ok()) {
                       pending_.at(t).body = v.value();
                       pending_.complete(t, pending_records::outcome::emit);
                     } else {
                       pending_.fail(t, v.error());
                     }
                     pending_.flush(out);
                     start(out);
                   });
    }
  }

private:
  relay_client* client_;
};

// The relay types on `reg`: the `relay` service (calls `next`) and the
// `ask_relay` stage (asks through `relay`); `spawned` logs the order the
// runtime spawned relays in.
void register_relay(registry& reg,
                    std::shared_ptr<std::vector<std::string>> spawned = {}) {
  actor_type relay;
  relay.name = "relay";
  relay.kind = actor_kind::service;
  relay.protocol = "relay";
  relay.doc = "answers get(text) itself or through the relay in `next`";
  relay.calls = {"next"};
  relay.service = typed_client<relay_actor>(
    typed_service<relay_actor>(
      [spawned](caf::actor_system& sys, const resource_spec& r) {
        if (spawned)
          spawned->push_back(r.name);
        relay_actor next;
        if (r.resources.count("next"))
          next = slot_handle<relay_actor>(r, "next");
        return sys.spawn(relay_fn, r.name, next);
      }),
    [](const relay_actor& h, call_context& ctx) {
      return std::make_unique<relay_client_impl>(h, ctx);
    });
  reg.add(relay);
  reg.add_resource_slot("next", "relay", "the relay this one forwards to");
  reg.add_resource_slot("relay", "relay", "the relay a node asks");
  actor_type st;
  st.name = "ask_relay";
  st.kind = actor_kind::stage;
  st.slots = {"relay"};
  st.make_node = [](const node_context& ctx) {
    return std::make_unique<ask_relay_stage>(ctx);
  };
  reg.add(st);
}

std::shared_ptr<registry> relay_registry() {
  auto reg = std::make_shared<registry>();
  register_builtins(*reg);
  register_relay(*reg);
  return reg;
}

std::string text_of(const std::vector<diagnostic>& ds) {
  std::string s;
  for (auto& d : ds)
    s += d.str() + "\n";
  return s;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// The errors of a graph with these `resources:` lines and one node asking
// `asked` (none when empty).
std::vector<diagnostic> lint(const std::string& resources,
                             const std::string& asked = "") {
  auto reg = relay_registry();
  auto yaml = "version: 1\nresources:\n" + resources
              + "nodes:\n  src: { type: generate, count: 1 }\n"
              + (asked.empty()
                   ? std::string{"  out: { type: null, inputs: [src] }\n"}
                   : "  ask: { type: ask_relay, relay: " + asked
                       + ", inputs: [src] }\n"
                         "  out: { type: null, inputs: [ask] }\n");
  return load_graph_text(yaml, "t.yaml", *reg).errors;
}

std::string at(const diagnostic& d) {
  return std::to_string(d.where.line) + ":" + std::to_string(d.where.column);
}

const char* const arrow = "\u2192";

} // namespace

TEST_CASE("registry: `calls` is for services, each slot once") {
  registry reg;
  actor_type st;
  st.name = "s";
  st.kind = actor_kind::stage;
  st.make_node = [](const node_context&) -> std::unique_ptr<node_logic> {
    return nullptr;
  };
  st.calls = {"next"};
  CHECK_THROWS_WITH_AS(reg.add(st),
                       doctest::Contains("lists 'calls' but is a stage"),
                       std::invalid_argument);
  register_relay(reg);
  actor_type twice = *reg.find("relay", actor_kind::service);
  twice.calls = {"next", "next"};
  CHECK_THROWS_WITH_AS(reg.add(twice),
                       doctest::Contains("lists slot 'next' twice"),
                       std::invalid_argument);
}

TEST_CASE("lint: a 3-cycle of services is one error at the closing slot") {
  auto errs = lint("  a: { type: relay, next: b }\n"
                   "  b: { type: relay, next: c }\n"
                   "  c: { type: relay, next: a }\n",
                   "a");
  REQUIRE_MESSAGE(errs.size() == 1, text_of(errs));
  CHECK(at(errs[0]) == "5:27"); // c's `next: a`
  CHECK(errs[0].message
        == std::string{"request cycle a "} + arrow + " b " + arrow + " c "
             + arrow + " a (each asks the next and waits for its reply)");
}

TEST_CASE("lint: a service naming itself is a request cycle") {
  auto errs = lint("  a: { type: relay, next: a }\n");
  REQUIRE_MESSAGE(errs.size() == 1, text_of(errs));
  CHECK(at(errs[0]) == "3:27");
  CHECK(contains(errs[0].message,
                 std::string{"request cycle a "} + arrow + " a"));
}

TEST_CASE("lint: two disjoint cycles are two errors, each once") {
  auto errs = lint("  a: { type: relay, next: b }\n"
                   "  b: { type: relay, next: a }\n"
                   "  x: { type: relay, next: y }\n"
                   "  y: { type: relay, next: z }\n"
                   "  z: { type: relay, next: x }\n",
                   "x");
  REQUIRE_MESSAGE(errs.size() == 2, text_of(errs));
  CHECK(at(errs[0]) == "4:27");
  CHECK(contains(errs[0].message, std::string{"cycle a "} + arrow + " b "
                                    + arrow + " a ("));
  CHECK(at(errs[1]) == "7:27");
  CHECK(contains(errs[1].message, std::string{"cycle x "} + arrow + " y "
                                    + arrow + " z " + arrow + " x ("));
}

TEST_CASE("lint: an acyclic chain and a shared callee pass") {
  // Two relays ask one: a diamond's shape for services with one slot each.
  CHECK(text_of(lint("  a: { type: relay, next: c }\n"
                     "  b: { type: relay, next: c }\n"
                     "  c: { type: relay, next: d }\n"
                     "  d: { type: relay }\n",
                     "a"))
        == "");
  // A long chain, declared callers first: no error, no deep recursion.
  std::string chain;
  for (int i = 0; i < 2000; ++i)
    chain += "  r" + std::to_string(i) + ": { type: relay, next: r"
             + std::to_string(i + 1) + " }\n";
  CHECK(text_of(lint(chain + "  r2000: { type: relay }\n", "r0")) == "");
  auto closed = lint(chain + "  r2000: { type: relay, next: r0 }\n", "r0");
  REQUIRE_MESSAGE(closed.size() == 1, text_of(closed));
  CHECK(at(closed[0]) == "2003:31");
  CHECK(contains(closed[0].message, std::string{"request cycle r0 "} + arrow
                                      + " r1 " + arrow + " r2 "));
  CHECK(contains(closed[0].message, std::string{"r2000 "} + arrow + " r0 ("));
}

TEST_CASE("validate: resources are put into spawn order, callees first") {
  auto reg = relay_registry();
  auto res = load_graph_text("version: 1\n"
                             "resources:\n"
                             "  a: { type: relay, next: b }\n"
                             "  seen: { type: counter }\n"
                             "  b: { type: relay, next: c }\n"
                             "  c: { type: relay }\n"
                             "nodes:\n"
                             "  src: { type: generate, count: 1 }\n"
                             "  out: { type: null, inputs: [src] }\n",
                             "t.yaml", *reg);
  REQUIRE_MESSAGE(res.ok(), text_of(res.errors));
  std::vector<std::string> order;
  for (auto& r : res.graph->resources)
    order.push_back(r.name);
  CHECK(order == std::vector<std::string>{"c", "b", "a", "seen"});
  CHECK(res.graph->resources[2].resources.at("next") == "b");
}

TEST_CASE("lint: resource slots are checked like a node's") {
  SUBCASE("an unknown resource, with a guess") {
    auto errs = lint("  alpha: { type: relay, next: bta }\n"
                     "  beta: { type: relay }\n");
    REQUIRE_MESSAGE(errs.size() == 1, text_of(errs));
    CHECK(at(errs[0]) == "3:31");
    CHECK(errs[0].message
          == "'next' refers to unknown resource 'bta' (did you mean "
             "'beta'?)");
  }
  SUBCASE("a resource speaking another protocol") {
    auto errs = lint("  a: { type: relay, next: seen }\n"
                     "  seen: { type: counter }\n");
    REQUIRE_MESSAGE(errs.size() == 1, text_of(errs));
    CHECK(at(errs[0]) == "3:27");
    CHECK(errs[0].message
          == "'next' needs a resource speaking 'relay', but 'seen' is a "
             "counter (protocol 'counter')");
  }
  SUBCASE("a slot the type does not call through") {
    auto errs = lint("  a: { type: relay, cache: memo, next: b }\n"
                     "  b: { type: relay }\n"
                     "  memo: { type: cache }\n"
                     "  seen: { type: counter, next: a }\n");
    REQUIRE_MESSAGE(errs.size() == 2, text_of(errs));
    CHECK(at(errs[0]) == "3:28");
    CHECK(errs[0].message
          == "'cache' does nothing on a relay (it calls through next)");
    CHECK(at(errs[1]) == "6:32");
    CHECK(errs[1].message
          == "'next' does nothing on a counter (it calls no other service)");
  }
  SUBCASE("a misspelt slot is an unknown field with a guess") {
    auto errs = lint("  a: { type: relay, nxt: b }\n"
                     "  b: { type: relay }\n");
    REQUIRE_MESSAGE(errs.size() == 1, text_of(errs));
    CHECK(at(errs[0]) == "3:21");
    CHECK(contains(errs[0].message, "unknown field 'nxt' for type 'relay' "
                                    "(did you mean 'next'?)"));
  }
}

TEST_CASE("lint: a type calling through an unregistered slot is reported") {
  auto reg = relay_registry();
  auto t = *reg->find("relay", actor_kind::service);
  t.calls = {"next", "upstream"};
  reg->add(t);
  auto errs = load_graph_text("version: 1\n"
                              "resources:\n"
                              "  a: { type: relay }\n"
                              "nodes:\n"
                              "  src: { type: generate, count: 1 }\n"
                              "  out: { type: null, inputs: [src] }\n",
                              "t.yaml", *reg)
                .errors;
  REQUIRE_MESSAGE(errs.size() == 1, text_of(errs));
  CHECK(at(errs[0]) == "3:14");
  CHECK(errs[0].message
        == "type 'relay' calls through slot 'upstream', which is not "
           "registered (registry::add_resource_slot)");
}

TEST_CASE("lint: a service parameter named like a slot stays a parameter") {
  // `relay` has no parameter `cache`; a type that has one keeps it.
  auto reg = relay_registry();
  auto t = *reg->find("relay", actor_kind::service);
  t.params = {{"cache", param_type::string, false, "", "a parameter", {}, 0}};
  reg->add(t);
  auto res = load_graph_text("version: 1\n"
                             "resources:\n"
                             "  a: { type: relay, cache: on }\n"
                             "nodes:\n"
                             "  src: { type: generate, count: 1 }\n"
                             "  out: { type: null, inputs: [src] }\n",
                             "t.yaml", *reg);
  REQUIRE_MESSAGE(res.ok(), text_of(res.errors));
  CHECK(res.graph->resources[0].resources.empty());
  CHECK(res.graph->resources[0].params.str("cache") == "on");
}

TEST_CASE("lint: the YAML files under tests/request_cycles say where") {
  // Each file's leading `# expect: LINE:COL: TEXT` lines (and an optional
  // `# expect-count: N`) are what loading it must say; a file without them
  // must load.
  namespace fs = std::filesystem;
  auto reg = relay_registry();
  // `# expect: L:C: TEXT` / `# expect-count: N` (std::regex is avoided:
  // GCC 12's sanitizer builds warn inside <regex>).
  auto after = [](const std::string& line, const std::string& tag)
    -> std::optional<std::string> {
    auto i = line.find(tag);
    if (i == std::string::npos)
      return std::nullopt;
    auto rest = line.substr(i + tag.size());
    auto b = rest.find_first_not_of(' ');
    auto e = rest.find_last_not_of(" \r");
    return b == std::string::npos ? std::string{} : rest.substr(b, e - b + 1);
  };
  std::vector<fs::path> files;
  for (auto& e :
       fs::directory_iterator{fs::path{TROUPE_SOURCE_DIR} / "tests"
                              / "request_cycles"})
    if (e.path().extension() == ".yaml")
      files.push_back(e.path());
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 6);
  for (auto& file : files) {
    CAPTURE(file.filename().string());
    std::ifstream in{file};
    std::string line;
    std::vector<std::tuple<int, int, std::string>> wanted;
    int wanted_count = -1;
    while (std::getline(in, line) && line.rfind("#", 0) == 0) {
      if (auto e = after(line, "expect:")) {
        auto c1 = e->find(':');
        auto c2 = e->find(':', c1 + 1);
        REQUIRE(c2 != std::string::npos);
        auto text = e->substr(c2 + 1);
        if (!text.empty() && text[0] == ' ')
          text.erase(0, 1);
        wanted.emplace_back(std::stoi(e->substr(0, c1)),
                            std::stoi(e->substr(c1 + 1, c2 - c1 - 1)), text);
      } else if (auto n = after(line, "expect-count:")) {
        wanted_count = std::stoi(*n);
      }
    }
    auto res = load_graph_file(file.string(), *reg);
    auto got = text_of(res.errors);
    CAPTURE(got);
    if (wanted.empty()) {
      CHECK(res.ok());
      continue;
    }
    CHECK_FALSE(res.ok());
    for (auto& [l, c, text] : wanted) {
      auto found = std::any_of(
        res.errors.begin(), res.errors.end(), [&](const diagnostic& d) {
          return d.where.file == file.string() && d.where.line == l
                 && d.where.column == c && contains(d.message, text);
        });
      CHECK_MESSAGE(found, "expected " << l << ":" << c << ": " << text);
    }
    if (wanted_count >= 0)
      CHECK(res.errors.size() == static_cast<size_t>(wanted_count));
  }
}

TEST_CASE("code-built: start() refuses a request cycle, naming the resource") {
  auto reg = relay_registry();
  runtime rt{std::shared_ptr<const registry>(reg), runtime_options{1, true}};
  graph_spec g;
  g.name = "loop";
  resource_spec a;
  a.name = "a";
  a.type = "relay";
  a.resources["next"] = "b";
  auto b = a;
  b.name = "b";
  b.resources["next"] = "a";
  g.resources = {a, b};
  node_spec src;
  src.name = "src";
  src.type = "generate";
  node_spec out;
  out.name = "out";
  out.type = "null";
  out.inputs.push_back({"src", "", {}});
  g.nodes = {src, out};
  std::string why;
  try {
    rt.start(g);
  } catch (const std::invalid_argument& e) {
    why = e.what();
  }
  CHECK(why
        == std::string{"<graph>:1:1: error: resource 'b': request cycle a "}
             + arrow + " b " + arrow
             + " a (each asks the next and waits for its reply)");
}

TEST_CASE("code-built: add_resource checks its slots against what runs") {
  auto reg = relay_registry();
  runtime rt{std::shared_ptr<const registry>(reg), runtime_options{1, true}};
  auto relay = [](std::string name, std::string next) {
    resource_spec r;
    r.name = std::move(name);
    r.type = "relay";
    if (!next.empty())
      r.resources["next"] = std::move(next);
    return r;
  };
  auto refusal = [&](resource_spec r) -> std::string {
    try {
      rt.add_resource(std::move(r));
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(added)";
  };
  CHECK(refusal(relay("a", "a"))
        == std::string{"<resource>:1:1: error: resource 'a': request cycle "
                       "a "}
             + arrow + " a (each asks the next and waits for its reply)");
  CHECK(refusal(relay("a", "zzzz"))
        == "<resource>:1:1: error: resource 'a': 'next' refers to unknown "
           "resource 'zzzz'");
  CHECK(refusal(relay("b", "")) == "(added)");
  CHECK(refusal(relay("a", "b")) == "(added)"); // names a running one
  auto seen = resource_spec{};
  seen.name = "seen";
  seen.type = "counter";
  CHECK(refusal(seen) == "(added)");
  CHECK(contains(refusal(relay("c", "seen")),
                 "'next' needs a resource speaking 'relay', but 'seen' is a "
                 "counter"));
}

namespace {

// The harness with the relay types; `spawned` logs the relays' spawn order.
struct relay_harness : harness {
  std::shared_ptr<std::vector<std::string>> spawned
    = std::make_shared<std::vector<std::string>>();
  relay_harness() {
    register_relay(reg, spawned);
  }
};

} // namespace

TEST_CASE("run: a node asking a gets b's answer through a") {
  relay_harness h;
  auto run = h.start("version: 1\n"
                     "resources:\n"
                     "  a: { type: relay, next: b }\n" // declared first
                     "  b: { type: relay }\n"
                     "nodes:\n"
                     "  src: { type: generate, count: 3, template: 'q{i}' }\n"
                     "  ask: { type: ask_relay, relay: a, inputs: [src] }\n"
                     "  out: { type: collect, inputs: [ask] }\n"
                     "  bad: { type: collect, inputs: [ask.errors] }\n");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  CHECK(*h.spawned == std::vector<std::string>{"b", "a"}); // callee first
  CHECK(h.sinks["bad"].records.empty());
  REQUIRE(h.sinks["out"].records.size() == 3);
  CHECK(h.sinks["out"].records[0].body == "q0 from b via a");
  CHECK(h.sinks["out"].records[2].body == "q2 from b via a");
}

TEST_CASE("run: a graph's relay may call the runtime's own, transitively") {
  relay_harness h;
  auto add = [&](std::string name, std::string next) {
    resource_spec r;
    r.name = std::move(name);
    r.type = "relay";
    if (!next.empty())
      r.resources["next"] = std::move(next);
    h.rt->add_resource(std::move(r));
  };
  add("far", "");
  add("near", "far"); // the runtime's own chain: near → far
  // A code-built graph declares `a` (asking the runtime's `near`) and names
  // neither runtime resource itself: start() finds near and, through it,
  // far. (In YAML, a runtime resource is declared by name and type.)
  auto g = load_graph_text("version: 1\n"
                           "resources:\n"
                           "  a: { type: relay }\n"
                           "nodes:\n"
                           "  src: { type: generate, count: 2, "
                           "template: 'q{i}' }\n"
                           "  ask: { type: ask_relay, relay: a, inputs: [src] }\n"
                           "  out: { type: collect, inputs: [ask] }\n",
                           "t.yaml", h.reg);
  REQUIRE_MESSAGE(g.ok(), text_of(g.errors));
  g.graph->resources[0].resources["next"] = "near";
  auto run = h.rt->start(*g.graph);
  REQUIRE(h.drive(run));
  CHECK(run.report().status == "completed");
  CHECK(*h.spawned == std::vector<std::string>{"far", "near", "a"});
  REQUIRE(h.sinks["out"].records.size() == 2);
  CHECK(h.sinks["out"].records[1].body == "q1 from far via near via a");
}

TEST_CASE("slot_handle refuses a missing slot and another handle type") {
  resource_spec r;
  r.name = "a";
  CHECK_THROWS_WITH_AS(slot_handle<relay_actor>(r, "next"),
                       "resource 'a': no running service in slot 'next'",
                       std::invalid_argument);
  auto hs = std::make_shared<slot_handles>();
  caf::actor_system_config cfg;
  cfg.set("scheduler.policy", caf::atom("testing"));
  troupe::add_message_types(cfg);
  caf::actor_system sys{cfg};
  auto b = sys.spawn(relay_fn, std::string{"b"}, relay_actor{});
  hs->by_slot["next"] = {"b", caf::actor_cast<caf::strong_actor_ptr>(b),
                         &typeid(int)};
  r.handles = hs;
  CHECK_THROWS_WITH_AS(slot_handle<relay_actor>(r, "next"),
                       "resource 'a': slot 'next' names 'b', which speaks "
                       "another handle type",
                       std::invalid_argument);
  hs->by_slot["next"].handle_type = &typeid(relay_actor);
  CHECK(slot_handle<relay_actor>(r, "next") == b);
  caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler()).run();
}

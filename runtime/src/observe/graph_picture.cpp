#include "troupe/graph_picture.hpp"

#include <graphviz/cgraph.h>
#include <graphviz/gvc.h>

#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "troupe/registry.hpp"
#include "troupe/units.hpp"
#include "text.hpp"

namespace troupe {

using observe::ns_text;

namespace {

// A DOT string literal. Only `"` and `\` need escaping; a newline becomes
// DOT's centred line break.
std::string q(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\';
    if (c == '\n')
      out += "\\n";
    else if (static_cast<unsigned char>(c) >= 0x20)
      out += c;
  }
  return out + '"';
}

struct kind_style {
  const char* shape;
  const char* fill;
  const char* cls;
};

kind_style style_of(actor_kind k) {
  switch (k) {
    case actor_kind::source:
      return {"invhouse", "#d8f0d8", "source"};
    case actor_kind::sink:
      return {"house", "#fbe3c8", "sink"};
    case actor_kind::service:
      return {"component", "#fff6c8", "service"};
    default:
      return {"box", "#dce8f7", "stage"};
  }
}

class dot_builder {
public:
  dot_builder(const graph_spec& g, const run_report* counts,
              const registry* types)
    : g_(g), counts_(counts), types_(types) {
  }

  std::string build() {
    out_ << "digraph " << q(g_.name) << " {\n"
         << "  rankdir=LR;\n  id=\"graph\";\n"
         // Graphviz 2.42's older ranking corrupts its heap on many graphs
         // with clusters ("triangulation failed", then a double free that
         // aborts the process: 24 of 36 random grouped graphs here);
         // newrank ranks clusters another way and crashed none of 186.
         << "  newrank=true;\n"
         << "  graph [fontname=\"Helvetica\", fontsize=11, labeljust=l];\n"
         << "  node [fontname=\"Helvetica\", fontsize=10, style=filled];\n"
         << "  edge [fontname=\"Helvetica\", fontsize=9];\n";
    for (auto& grp : g_.groups)
      if (grp.parent.empty())
        cluster(grp, "  ");
    for (auto& n : g_.nodes)
      if (n.group.empty() || !group_exists(n.group))
        node(n, "  ");
    for (auto& r : g_.resources)
      resource(r);
    for (auto& r : g_.resources) // a service asking another (actor_type::calls)
      for (auto& [slot, res] : r.resources)
        out_ << "  " << q(r.name) << " -> " << q(res)
             << " [style=dotted, color=\"#8a7a00\", label="
             << q(slot_label(slot)) << "];\n";
    for (auto& n : g_.nodes) {
      for (auto& in : n.inputs) {
        out_ << "  " << q(in.node) << " -> " << q(n.name);
        if (in.port == "errors")
          out_ << " [style=dashed, color=red, fontcolor=red, "
                  "label=\"errors\", class=\"errors\"]";
        else if (auto p = protocol_of(in.node); !p.empty())
          out_ << " [label=" << q(p) << "]";
        out_ << ";\n";
      }
      for (auto& [slot, res] : n.resources)
        out_ << "  " << q(n.name) << " -> " << q(res)
             << " [style=dotted, arrowhead=none, color=\"#8a7a00\", label="
             << q(slot_label(slot)) << "];\n";
    }
    out_ << "}\n";
    return out_.str();
  }

private:
  bool group_exists(const std::string& name) const {
    for (auto& grp : g_.groups)
      if (grp.name == name)
        return true;
    return false;
  }

  void cluster(const group_spec& grp, const std::string& indent) {
    if (depth_ > g_.groups.size()) // a parent cycle: validate() rejects it
      return;
    ++depth_;
    auto& s = grp.supervision;
    out_ << indent << "subgraph " << q("cluster_" + grp.name) << " {\n"
         << indent << "  id=" << q("group-" + grp.name) << ";\n"
         << indent << "  label=" << q("group " + grp.name + " ("
                                      + to_string(s.strategy) + ", "
                                      + std::to_string(s.intensity)
                                      + (s.intensity == 1 ? " restart in "
                                                          : " restarts in ")
                                      + format_duration(s.period) + ")")
         << ";\n"
         << indent << "  style=\"rounded,dashed\"; color=\"#555555\"; margin=18;\n";
    for (auto& n : g_.nodes)
      if (n.group == grp.name)
        node(n, indent + "  ");
    for (auto& sub : g_.groups)
      if (sub.parent == grp.name)
        cluster(sub, indent + "  ");
    out_ << indent << "}\n";
    --depth_;
  }

  const node_report* counts_of(const std::string& name) const {
    if (!counts_)
      return nullptr;
    for (auto& r : counts_->nodes)
      if (r.name == name)
        return &r;
    return nullptr;
  }

  void node(const node_spec& n, const std::string& indent) {
    auto st = style_of(n.kind);
    auto label = n.name + "\n" + n.type;
    if (n.workers > 1)
      label += " x" + std::to_string(n.workers);
    std::string border = "#333333";
    if (auto* c = counts_of(n.name)) {
      label += "\nin " + std::to_string(c->in) + "  out "
               + std::to_string(c->out) + "\nerrors "
               + std::to_string(c->errors) + "  restarts "
               + std::to_string(c->restarts) + "\np50 "
               + ns_text(c->latency_p50_ns) + "  p99 "
               + ns_text(c->latency_p99_ns);
      if (c->errors > 0 || c->dead_lettered > 0)
        border = "#c00000";
      else if (c->restarts > 0)
        border = "#d07000";
    }
    // A house scales badly around a label of several lines: with counts
    // every node is a box, its kind told by colour (and its class).
    auto shape = counts_ ? "box" : st.shape;
    out_ << indent << q(n.name) << " [id=" << q("node-" + n.name)
         << ", class=" << q(std::string("node-") + st.cls)
         << ", shape=" << shape << ", fillcolor=\"" << st.fill
         << "\", color=\"" << border << "\", label=" << q(label) << "];\n";
  }

  void resource(const resource_spec& r) {
    auto label = r.name + "\n" + r.type;
    if (types_)
      if (auto* t = types_->find(r.type, actor_kind::service);
          t && !t->protocol.empty() && t->protocol != r.type)
        label += "\n(" + t->protocol + ")";
    out_ << "  " << q(r.name) << " [id=" << q("resource-" + r.name)
         << ", class=\"resource\", shape=component, style=\"filled,dashed\", "
            "fillcolor=\"#fff6c8\", label="
         << q(label) << "];\n";
  }

  std::string slot_label(const std::string& slot) const {
    if (types_)
      if (auto* p = types_->slot_protocol(slot); p && *p != slot)
        return slot + ": " + *p;
    return slot;
  }

  std::string protocol_of(const std::string& node_name) const {
    if (!types_)
      return {};
    auto* n = g_.find_node(node_name);
    if (!n)
      return {};
    auto* t = types_->find(n->type, n->kind);
    return t ? t->protocol : std::string{};
  }

  const graph_spec& g_;
  const run_report* counts_;
  const registry* types_;
  std::ostringstream out_;
  size_t depth_ = 0;
};

// Graphviz's messages of the render in progress (agseterrf takes a plain
// function, so they land here; guarded by graphviz_mutex like every other
// Graphviz call).
std::string* graphviz_errors = nullptr;

int capture_graphviz_error(char* text) {
  if (graphviz_errors && text)
    *graphviz_errors += text;
  return 0;
}

} // namespace

#if defined(__SANITIZE_ADDRESS__)
// Graphviz's context (kept for the process, see dot_to_svg) and the
// fontconfig caches it loads are still held at exit: not leaks of ours.
// Built into every sanitized program that renders a picture (the CLI, the
// unit tests), so LeakSanitizer knows without .ci/lsan.supp in the
// environment.
extern "C" const char* __lsan_default_suppressions() {
  // libcgraph: layouts of grouped graphs (newrank) keep a few cgraph
  // records Graphviz never frees.
  return "leak:libgvc.so\nleak:libfontconfig.so\nleak:libgvplugin_pango.so\n"
         "leak:libpango\nleak:libcairo\nleak:libcgraph.so\nleak:libcdt.so\n";
}
// ... and says nothing about them (stderr is part of what tests check).
extern "C" const char* __lsan_default_options() {
  return "print_suppressions=0";
}
#endif

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer sees only the interceptors (memcpy, memcmp, malloc) of
// uninstrumented libraries, not how they synchronise, and reports races
// that are not there. Here for the whole observe library: the web server
// draws through this file, so every binary serving it links these lines.
// - Pango starts fontconfig on a thread of glib's and waits for it with
//   glib's own futex-based locks; the main thread then reads the fontconfig
//   cache that thread mapped.
// - cpp-httplib's function-local statics (its std::regex patterns) are
//   built by the first request's thread; a second server thread reads them
//   past the guard's inlined acquire load, which TSan cannot see.
// Calls from those libraries are not ours to check; ours stay checked.
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libglib-2.0.so\ncalled_from_lib:libgobject-2.0.so\n"
         "called_from_lib:libfontconfig.so\ncalled_from_lib:libpango-1.0.so\n"
         "called_from_lib:libpangoft2-1.0.so\n"
         "called_from_lib:libpangocairo-1.0.so\n"
         "called_from_lib:libcairo.so\ncalled_from_lib:libgvplugin_pango.so\n"
         "called_from_lib:libcpp-httplib.so\n"
         "race:libglib-2.0.so\nrace:libfontconfig.so\n"
         "race:libcpp-httplib.so\n";
}
#endif

std::string graph_dot(const graph_spec& g, const run_report* counts,
                      const registry* types) {
  return dot_builder{g, counts, types}.build();
}

std::string dot_to_svg(const std::string& dot) {
  // Graphviz keeps global state (the error handler, the parser, symbol
  // tables, the plugin list) and is not thread-safe: the CLI and the live
  // view's server may render at the same time, so one caller at a time.
  static std::mutex graphviz_mutex;
  std::lock_guard<std::mutex> guard{graphviz_mutex};
  std::string errors;
  graphviz_errors = &errors;
  auto previous = agseterrf(capture_graphviz_error);
  struct restore {
    agusererrf f;
    ~restore() {
      agseterrf(f);
      graphviz_errors = nullptr;
    }
  } restore_errf{previous};
  auto fail = [&](const char* what) {
    auto msg = std::string("graphviz: ") + what;
    if (!errors.empty())
      msg += ": " + errors;
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    throw std::runtime_error(msg);
  };
  // One context for the process, never freed: Graphviz 2.43's pango
  // plugin caches a pointer to the last font name, which lives in the
  // context's font table; a context freed and made anew leaves it dangling
  // (a use-after-free ASan found on the second render).
  static GVC_t* context = gvContext();
  if (!context)
    fail("cannot create a context");
  struct no_free {
    void operator()(GVC_t*) const {
    }
  };
  std::unique_ptr<GVC_t, no_free> gvc{context};
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> graph{agmemread(dot.c_str()),
                                                      agclose};
  if (!graph)
    fail("cannot parse the DOT");
  if (gvLayout(gvc.get(), graph.get(), "dot") != 0)
    fail("layout failed");
  char* data = nullptr;
  unsigned int length = 0;
  auto rc = gvRenderData(gvc.get(), graph.get(), "svg", &data, &length);
  std::string svg;
  if (rc == 0 && data)
    svg.assign(data, length);
  if (data)
    gvFreeRenderData(data);
  gvFreeLayout(gvc.get(), graph.get());
  if (rc != 0 || svg.empty())
    fail("svg rendering failed");
  return svg;
}

std::string graph_svg(const graph_spec& g, const run_report* counts,
                      const registry* types) {
  return dot_to_svg(graph_dot(g, counts, types));
}

std::string svg_element(const std::string& svg_document) {
  auto start = svg_document.find("<svg");
  if (start == std::string::npos)
    return svg_document;
  auto svg = svg_document.substr(start);
  if (svg.find("xlink:") == std::string::npos) {
    // Only the declaration (no xlink:href uses it): drop it, one URL less
    // in a page that must not point anywhere.
    auto at = svg.find(" xmlns:xlink=\"");
    if (at != std::string::npos) {
      auto end = svg.find('"', at + 14);
      if (end != std::string::npos)
        svg.erase(at, end + 1 - at);
    }
  }
  return svg;
}

} // namespace troupe

// The parameters every HTTP node shares (http_fetch, paginate): transport
// deadlines and safety, retries, the circuit breaker. One schema, one parser
// and one set of checks, so both node types read and reject alike.
#pragma once

#include <string>
#include <vector>

#include "policy.hpp"
#include "troupe/actors/http.hpp"
#include "troupe/graph_spec.hpp"
#include "troupe/params.hpp"
#include "troupe/source_location.hpp"

namespace troupe::http {

struct breaker_options {
  uint32_t failures = 5; // consecutive failures that open a host's circuit; 0 never
  duration cooldown = std::chrono::seconds(30);
};

struct fetch_settings {
  transport_options transport;
  retry_options retry;
  breaker_options breaker;
  std::vector<std::string> accept; // "2xx", "404", ...: statuses that succeed
  header_list headers; // (name, value template) from "Name: value"
  std::string method = "GET";
};

// The shared parameters, to append to a node type's own.
std::vector<param_spec> fetch_params();

// Reads the shared parameters of a validated node.
fetch_settings read_fetch_settings(const param_set& p);

// Checks beyond the schema (retry_on entries, accept entries, header
// templates, impossible transport combinations), located at the value.
void check_fetch_settings(const node_spec& n, std::vector<diagnostic>& errors);

// "200" or "2xx" (100-599).
bool valid_status_entry(const std::string& e);

// Whether `status` matches an accept entry ("200", "2xx").
bool accepted(long status, const std::vector<std::string>& accept);

// Checks a URL template parameter (a string or a list): it parses, is not
// empty, a literal scheme is http or https, and it uses only what the node
// has: {page} alone for paginate, no {page} elsewhere.
void check_url(const node_spec& n, const std::string& param, bool paginate,
               std::vector<diagnostic>& errors);

// Reports {page} in a template of a node that has no pages.
void check_no_page(const node_spec& n, const std::string& param,
                   std::vector<diagnostic>& errors);

// Reports a template parameter that does not parse.
void check_template(const node_spec& n, const std::string& param,
                    std::vector<diagnostic>& errors);

} // namespace troupe::http

// Custom domains of an app (API.md "Apps and deployments": domains) and the local CA's root
// certificate. Attaching a domain answers the DNS records that point it at this server and
// starts its certificate (ACME when gateway.acme_directory is set, else Kiln's local CA).
#include <set>

#include "service/apps.h"
#include "service/domains.h"
#include "service/operations.h"

namespace kiln::service {
namespace {

const char* kDomainsSchema = R"js({"type": "object", "properties": {
    "domains": {"type": "array", "items": {"type": "object", "properties": {
        "domain": {"type": "string"},
        "dnsRecords": {"type": "array", "description": "set these at your DNS provider", "items": {"type": "object", "properties": {
            "type": {"type": "string", "enum": ["CNAME", "A", "AAAA"]}, "name": {"type": "string"}, "value": {"type": "string"}}}},
        "certificate": {"type": "object", "properties": {
            "source": {"type": "string", "enum": ["local", "acme"], "description": "local: Kiln's own CA (clients must trust its root, GET /v1/tls/ca); acme: a public CA"},
            "status": {"type": "string", "enum": ["pending", "issued", "failed"]},
            "expiresAt": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"], "description": "why the last attempt failed; it is retried"}}}}}},
    "note": {"type": "string"}}})js";

json::array RecordsFor(const Deps& d, const store::App& app, const std::string& domain) {
  json::array records;
  const std::string& ip = d.config.gateway.public_ip;
  if (!IsApexDomain(domain)) {
    records.emplace_back(json::object{{"type", "CNAME"},
                                      {"name", domain},
                                      {"value", app.name + "." + d.config.gateway.base_domain}});
  } else if (!ip.empty()) {
    // An apex cannot have a CNAME (it has SOA and NS records): it points at the address.
    records.emplace_back(json::object{{"type", ip.find(':') == std::string::npos ? "A" : "AAAA"},
                                      {"name", domain},
                                      {"value", ip}});
  }
  return records;
}

Result<json::value> DomainsJson(const Deps& d, const DomainManager& m, const store::App& app) {
  KILN_ASSIGN_OR_RETURN(std::vector<store::Domain> rows, d.store.ListDomains(app.id));
  json::array out;
  bool apex_without_record = false;
  for (const store::Domain& row : rows) {
    json::array records = RecordsFor(d, app, row.domain);
    apex_without_record = apex_without_record || records.empty();
    out.emplace_back(json::object{
        {"domain", row.domain},
        {"dnsRecords", std::move(records)},
        {"certificate",
         json::object{{"source", row.cert_source},
                      {"status", row.cert_status},
                      {"expiresAt", TimeOrNull(row.cert_expires_ms)},
                      {"error", row.cert_error.empty() ? json::value(nullptr)
                                                       : json::value(row.cert_error)}}}});
  }
  json::object result{{"domains", std::move(out)}};
  std::string note;
  if (apex_without_record) {
    note =
        "an apex domain needs an A or AAAA record to this server's public address, and "
        "gateway.public_ip is not set: set it in kiln.toml to see the record here. ";
  }
  if (!rows.empty() && !m.tls_on()) {
    note +=
        "HTTPS is off on this server (gateway.tls_port = 0, or its port was in use): the "
        "domains are served over plain HTTP only and their certificates wait.";
  }
  if (!note.empty()) {
    if (note.back() == ' ') {
      note.pop_back();
    }
    result["note"] = note;
  }
  return json::value(std::move(result));
}

Operation GetOp(const Deps& d, DomainManager& m, AppManager& apps) {
  Operation op;
  op.name = "apps.domains.get";
  op.summary = "List an app's custom domains, their DNS records and certificates";
  op.description =
      "Answers the custom domains attached to the app, the DNS records each needs to point "
      "at this server (a CNAME to APP.{base_domain}, or for an apex an A/AAAA record to the "
      "server's public address), and the state of each domain's TLS certificate.";
  op.method = "GET";
  op.path = "/v1/apps/{app}/domains";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(AppOnlyWith(""));
  op.output = Schema(kDomainsSchema);
  op.run = [&d, &m, &apps](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app,
                          apps.Get(ctx.principal.workspace.id, GetString(in, "app")));
    return DomainsJson(d, m, app);
  };
  return op;
}

Operation SetOp(const Deps& d, DomainManager& m, AppManager& apps) {
  Operation op;
  op.name = "apps.domains.set";
  op.summary = "Replace an app's custom domains (answers the DNS records to set)";
  op.description =
      "Replaces the app's custom domains with `domains` (an empty list removes them all) and "
      "answers the DNS records to set for each. Names are lower-cased and a trailing dot is "
      "dropped; IP addresses, wildcards and names under the server's base domain are refused, "
      "and a domain belongs to one app at most (DOMAIN_TAKEN). Requests with that Host then "
      "reach the app over HTTP and HTTPS; a certificate is issued for each new domain (by ACME "
      "when the server is set up for it, else by Kiln's local CA).";
  op.method = "PUT";
  op.path = "/v1/apps/{app}/domains";
  op.scopes = auth::kWrite;
  op.idempotent = true;
  op.input = Schema(AppOnlyWith(R"js(
      "domains": {"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1, "maxLength": 255}, "description": "host names, such as shop.example.com (at most 20)"},)js",
                                {"domains"}));
  op.output = Schema(kDomainsSchema);
  op.run = [&d, &m, &apps](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app,
                          apps.Get(ctx.principal.workspace.id, GetString(in, "app")));
    std::vector<std::string> domains;
    std::set<std::string> seen;
    for (const auto& v : in.at("domains").as_array()) {
      KILN_ASSIGN_OR_RETURN(std::string name,
                            NormalizeDomain(v.as_string(), d.config.gateway.base_domain));
      if (seen.insert(name).second) {
        domains.push_back(std::move(name));
      }
    }
    if (domains.size() > kMaxDomainsPerApp) {
      return Status::InvalidArgument(
          "DOMAIN_LIMIT_REACHED",
          "an app can have at most " + std::to_string(kMaxDomainsPerApp) + " custom domains (" +
              std::to_string(domains.size()) + " given)",
          "serve more names from another app, or point them at one with a redirect");
    }
    KILN_RETURN_IF_ERROR(m.Set(ctx.principal, app, domains));
    return DomainsJson(d, m, app);
  };
  return op;
}

Operation CaOp(DomainManager& m) {
  Operation op;
  op.name = "tls.ca.get";
  op.summary = "Download the root certificate of Kiln's local CA (PEM)";
  op.description =
      "Answers the root certificate that signs the HTTPS certificates of app hosts and of "
      "custom domains without ACME. Add it to a client's trust store (curl --cacert, the "
      "system's or the browser's certificates) to reach apps over HTTPS without warnings. "
      "Over REST the body is the PEM file itself.";
  op.method = "GET";
  op.path = "/v1/tls/ca";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.rest_raw_output = "pem";
  op.input = Schema(R"js({"type": "object", "additionalProperties": false, "properties": {}})js");
  op.output = Schema(R"js({"type": "object", "properties": {"pem": {"type": "string"}}})js");
  op.run = [&m](Context&, const json::object&) -> Result<json::value> {
    std::string pem = m.ca_pem();
    if (pem.empty()) {
      return Status::Unavailable("TLS_OFF", "HTTPS is off on this server, so it has no CA",
                                 "set gateway.tls_port in kiln.toml (default 8443) and restart");
    }
    return json::object{{"pem", pem}};
  };
  return op;
}

}  // namespace

void AddDomainOperations(const Deps& deps, DomainManager& domains, AppManager& apps,
                         std::vector<Operation>& out) {
  out.push_back(GetOp(deps, domains, apps));
  out.push_back(SetOp(deps, domains, apps));
  out.push_back(CaOp(domains));
}

}  // namespace kiln::service

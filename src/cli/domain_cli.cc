// kiln domains APP [set DOMAIN...], kiln tls ca: custom domains of an app and the local CA's
// root certificate (README "HTTPS and custom domains").
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "cli/internal.h"

namespace kiln::cli {
namespace {

struct State {
  std::string app;
  std::vector<std::string> domains;
  bool clear = false;
};

void PrintDomains(const Output& out, const json::value& v) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& d : Items(At(v, "domains"))) {
    std::string records;
    for (const auto& r : Items(At(d, "dnsRecords"))) {
      records += (records.empty() ? "" : ", ") + S(r, "type") + " " + S(r, "value");
    }
    const json::value& cert = At(d, "certificate");
    std::string status = S(cert, "status");
    if (!At(cert, "error").is_null()) {
      status += ": " + S(cert, "error");
    }
    rows.push_back({S(d, "domain"), records.empty() ? "-" : records, S(cert, "source"), status,
                    ShortTime(S(cert, "expiresAt"))});
  }
  if (rows.empty()) {
    std::printf("No custom domains.\n");
  } else {
    PrintTable(out, {"DOMAIN", "DNS RECORD", "CERT", "STATUS", "EXPIRES"}, rows);
  }
  if (At(v, "note").is_string()) {
    std::printf("\n%s\n", S(v, "note").c_str());
  }
}

}  // namespace

void AddDomainCommands(CLI::App& app, const bool& json_flag, int& code) {
  std::function<Output()> out = [&json_flag] { return DetectOutput(json_flag); };
  auto st = std::make_shared<State>();

  auto* domains = app.add_subcommand("domains", "an app's custom domains and their certificates");
  auto* list =
      domains->add_subcommand("list", "show the domains, DNS records to set, certificates");
  list->add_option("app", st->app, "app name or id")->required();
  list->callback([st, out, &code] {
    code = Run(out(), CallApi(LoadProfile(), "GET", AppPath(st->app) + "/domains"),
               [&](const json::value& v) { PrintDomains(out(), v); });
  });
  auto* set = domains->add_subcommand("set", "replace the app's domains (--clear: remove all)");
  set->add_option("app", st->app, "app name or id")->required();
  set->add_option("domains", st->domains, "shop.example.com ...");
  set->add_flag("--clear", st->clear, "remove every domain of the app");
  set->callback([st, out, &code] {
    if (st->domains.empty() && !st->clear) {
      code = UsageError(out(), "name the domains, or pass --clear to remove them all",
                        "kiln domains set APP shop.example.com www.example.com");
      return;
    }
    json::array names;
    for (const auto& d : st->domains) {
      names.emplace_back(d);
    }
    json::value body = json::object{{"domains", names}};
    code = Run(out(), CallApi(LoadProfile(), "PUT", AppPath(st->app) + "/domains", &body),
               [&](const json::value& v) { PrintDomains(out(), v); });
  });
  domains->require_subcommand(1);

  auto* tls = app.add_subcommand("tls", "HTTPS: the local certificate authority");
  tls->require_subcommand(1);
  auto* ca = tls->add_subcommand("ca", "print the local CA's root certificate (PEM) to trust it");
  ca->callback([out, &code] {
    ApiCall call;
    call.path = "/v1/tls/ca";
    call.accept = "application/octet-stream";
    auto res = Send(LoadProfile(), call);
    if (!res.ok()) {
      code = ReportError(out(), res.status());
      return;
    }
    std::fwrite(res->body.data(), 1, res->body.size(), stdout);
    code = kOk;
  });
}

}  // namespace kiln::cli

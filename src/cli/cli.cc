#include "cli/cli.h"

#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cli/internal.h"
#include "daemon/daemon.h"
#include "http/http.h"

namespace kiln::cli {
namespace {

struct Globals {
  bool json = false;
};

// Reads a secret from the terminal without echoing it, or one line from a pipe.
std::string ReadSecret(const char* prompt) {
  bool tty = ::isatty(STDIN_FILENO);
  termios old{};
  if (tty) {
    std::fprintf(stderr, "%s", prompt);
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
  }
  std::string line;
  std::getline(std::cin, line);
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    std::fprintf(stderr, "\n");
  }
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) {
    line.pop_back();
  }
  return line;
}

std::vector<std::string> KeyRow(const json::value& k) {
  const json::object& o = k.as_object();
  return {Str(o.at("id")),        Str(o.at("name")),   Str(o.at("prefix")) + "…",
          Str(o.at("scopes")),    Str(o.at("status")), Str(o.at("createdAt")),
          Str(o.at("lastUsedAt"))};
}

void PrintSecret(const Output& out, const std::string& what, const json::value& key) {
  std::printf("%s\n\n  %s\n\n", what.c_str(), Bold(out, Str(key.at("secret"))).c_str());
  std::printf("Store it now: it is not shown again. Use it with\n");
  std::printf("  export KILN_API_KEY=%s\n", Str(key.at("secret")).c_str());
}

int Login(const Output& out, std::string url, std::string key) {
  Profile p = LoadProfile();
  if (!url.empty()) {
    p.url = url;
  }
  while (!p.url.empty() && p.url.back() == '/') {
    p.url.pop_back();
  }
  p.api_key = key.empty() ? ReadSecret("API key: ") : key;
  if (p.api_key.empty()) {
    return ReportError(out, Status::InvalidArgument("NO_API_KEY", "no API key given",
                                                    "pass --api-key or type it at the prompt"));
  }
  auto me = CallApi(p, "GET", "/v1/me");
  if (!me.ok()) {
    return ReportError(out, me.status());
  }
  if (Status s = SaveProfile(p); !s.ok()) {
    return ReportError(out, s);
  }
  if (out.json) {
    PrintJson(json::object{{"url", p.url}, {"profile", ProfilePath()}, {"me", *me}});
  } else {
    std::printf("Logged in to %s as key \"%s\" of workspace \"%s\".\nSaved to %s\n", p.url.c_str(),
                Str(me->at("key").at("name")).c_str(), Str(me->at("workspace").at("slug")).c_str(),
                ProfilePath().c_str());
  }
  return kOk;
}

}  // namespace

int Main(int argc, char** argv) {
  CLI::App app{"kiln: apps and sandboxes on your own machine", "kiln"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "kiln 0.1.0");
  Globals g;
  app.add_flag("--json", g.json, "print machine-readable JSON")->configurable(false);
  // Subcommands created from here on hand options they do not know (--json) back to the
  // app, so `kiln keys list --json` works as well as `kiln --json keys list`.
  app.fallthrough();
  int code = kOk;

  // kiln server
  auto* server = app.add_subcommand("server", "run the Kiln server (API, gateway, runtime)");
  std::string listen, data_dir, config_path;
  server->add_option("--listen", listen, "ADDR:PORT to listen on (default 127.0.0.1:8080)");
  server->add_option("--data-dir", data_dir, "state directory (default ./.kiln)");
  server->add_option("--config", config_path, "kiln.toml to read (default ./kiln.toml if present)");
  server->callback([&] {
    ConfigOverrides flags;
    if (!listen.empty()) {
      flags.listen = listen;
    }
    if (!data_dir.empty()) {
      flags.data_dir = data_dir;
    }
    std::optional<std::string> path;
    if (!config_path.empty()) {
      path = config_path;
    } else if (std::filesystem::exists("kiln.toml")) {
      path = "kiln.toml";
    }
    auto config = LoadConfig(path, flags);
    if (!config.ok()) {
      ReportError(DetectOutput(false), config.status());
      code = kUsage;
      return;
    }
    code = daemon::Run(*config);
  });

  AddSandboxCommands(app, g.json, code);
  AddTemplateCommands(app, g.json, code);
  AddAppCommands(app, g.json, code);
  AddDomainCommands(app, g.json, code);
  AddMcpCommands(app, g.json, code);

  // kiln cleanup
  auto* cleanup = app.add_subcommand(
      "cleanup", "remove every sandbox and instance under a data directory (server stopped)");
  std::string cleanup_dir;
  cleanup->add_option("--data-dir", cleanup_dir, "state directory (default ./.kiln)");
  cleanup->callback([&] { code = daemon::Cleanup(cleanup_dir.empty() ? "./.kiln" : cleanup_dir); });

  // kiln login / whoami
  auto* login = app.add_subcommand("login", "save the server URL and API key for later commands");
  std::string login_url, login_key;
  login->add_option("--url", login_url, "server URL (default $KILN_URL or http://127.0.0.1:8080)");
  login->add_option("--api-key", login_key, "API key (default: read from the terminal or stdin)");
  login->callback([&] { code = Login(DetectOutput(g.json), login_url, login_key); });

  auto* whoami = app.add_subcommand("whoami", "show the workspace and key in use");
  whoami->callback([&] {
    Output out = DetectOutput(g.json);
    Profile p = LoadProfile();
    code = Run(out, CallApi(p, "GET", "/v1/me"), [&](const json::value& me) {
      std::printf("url        %s\n", p.url.c_str());
      std::printf("workspace  %s (%s)\n", Str(me.at("workspace").at("slug")).c_str(),
                  Str(me.at("workspace").at("id")).c_str());
      std::printf("key        %s (%s)\n", Str(me.at("key").at("name")).c_str(),
                  Str(me.at("key").at("id")).c_str());
      std::printf("scopes     %s\n", Str(me.at("key").at("scopes")).c_str());
      std::printf("auth       %s\n", Str(me.at("auth")).c_str());
    });
  });

  // kiln keys list|create|revoke
  auto* keys = app.add_subcommand("keys", "API keys of the workspace");
  keys->require_subcommand(1);
  auto* keys_list = keys->add_subcommand("list", "list keys (metadata only)");
  int keys_limit = 50;
  std::string keys_cursor;
  keys_list->add_option("--limit", keys_limit, "rows per page (1-200)");
  keys_list->add_option("--cursor", keys_cursor, "next_cursor from a previous page");
  keys_list->callback([&] {
    Output out = DetectOutput(g.json);
    std::string path = "/v1/keys?limit=" + std::to_string(keys_limit);
    if (!keys_cursor.empty()) {
      path += "&cursor=" + http::PercentEncode(keys_cursor);
    }
    code = Run(out, CallApi(LoadProfile(), "GET", path), [&](const json::value& page) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& k : page.at("data").as_array()) {
        rows.push_back(KeyRow(k));
      }
      PrintTable(out, {"ID", "NAME", "PREFIX", "SCOPES", "STATUS", "CREATED", "LAST USED"}, rows);
      if (page.at("has_more").as_bool()) {
        std::printf("more: kiln keys list --cursor %s\n", Str(page.at("next_cursor")).c_str());
      }
    });
  });
  auto* keys_create = keys->add_subcommand("create", "mint a key (its secret is shown once)");
  std::string key_name;
  std::vector<std::string> key_scopes;
  int64_t key_expires = 0;
  keys_create->add_option("name", key_name, "a label such as ci")->required();
  keys_create->add_option("--scopes", key_scopes, "read,write,exec,admin (default read,write,exec)")
      ->delimiter(',');
  keys_create->add_option("--expires-in", key_expires, "lifetime in seconds (default: never)");
  keys_create->callback([&] {
    Output out = DetectOutput(g.json);
    json::object body{{"name", key_name}};
    if (!key_scopes.empty()) {
      json::array a;
      for (const auto& s : key_scopes) {
        a.emplace_back(s);
      }
      body["scopes"] = std::move(a);
    }
    if (key_expires > 0) {
      body["expiresInSeconds"] = key_expires;
    }
    json::value v = body;
    code = Run(out, CallApi(LoadProfile(), "POST", "/v1/keys", &v), [&](const json::value& key) {
      PrintSecret(out,
                  "Created key \"" + Str(key.at("name")) + "\" (" + Str(key.at("id")) +
                      ", scopes " + Str(key.at("scopes")) + "):",
                  key);
    });
  });
  auto* keys_revoke = keys->add_subcommand("revoke", "revoke a key at once");
  std::string revoke_id;
  keys_revoke->add_option("id", revoke_id, "the key's id (key_...)")->required();
  keys_revoke->callback([&] {
    Output out = DetectOutput(g.json);
    std::string id = http::PercentEncode(revoke_id);
    code = Run(out, CallApi(LoadProfile(), "DELETE", "/v1/keys/" + id + "?confirm=" + id),
               [&](const json::value& key) {
                 std::printf("Revoked key \"%s\" (%s).\n", Str(key.at("name")).c_str(),
                             Str(key.at("id")).c_str());
               });
  });

  // kiln workspaces list|create
  auto* ws = app.add_subcommand("workspaces", "workspaces (tenants)");
  ws->require_subcommand(1);
  auto* ws_list = ws->add_subcommand("list", "list the workspaces you can see");
  ws_list->callback([&] {
    Output out = DetectOutput(g.json);
    code = Run(out, CallApi(LoadProfile(), "GET", "/v1/workspaces?limit=200"),
               [&](const json::value& page) {
                 std::vector<std::vector<std::string>> rows;
                 for (const auto& w : page.at("data").as_array()) {
                   rows.push_back({Str(w.at("slug")), Str(w.at("name")), Str(w.at("id")),
                                   w.at("root").as_bool() ? "yes" : "", Str(w.at("createdAt"))});
                 }
                 PrintTable(out, {"SLUG", "NAME", "ID", "ROOT", "CREATED"}, rows);
               });
  });
  auto* ws_create = ws->add_subcommand("create", "create a workspace and its first admin key");
  std::string ws_slug, ws_name;
  ws_create->add_option("slug", ws_slug, "3-40 characters: a-z, 0-9 and -")->required();
  ws_create->add_option("--name", ws_name, "display name (default: the slug)");
  ws_create->callback([&] {
    Output out = DetectOutput(g.json);
    json::object body{{"slug", ws_slug}};
    if (!ws_name.empty()) {
      body["name"] = ws_name;
    }
    json::value v = body;
    code =
        Run(out, CallApi(LoadProfile(), "POST", "/v1/workspaces", &v), [&](const json::value& r) {
          PrintSecret(
              out,
              "Created workspace \"" + Str(r.at("workspace").at("slug")) + "\" with its admin key:",
              r.at("key"));
        });
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int exit = app.exit(e);
    return exit == 0 ? kOk : kUsage;
  }
  return code;
}

}  // namespace kiln::cli

// `kiln sandbox …` and `kiln templates …`: the sandbox API from a terminal. Command output
// streams live (exec, template builds), and `kiln sandbox exec` exits with the command's own
// exit code, so it composes in scripts like `ssh host cmd`.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

#include "cli/internal.h"

namespace kiln::cli {

using namespace std::chrono_literals;

Result<json::object> Pairs(const std::vector<std::string>& items, const char* flag) {
  json::object out;
  for (const auto& item : items) {
    size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      return Status::InvalidArgument("USAGE",
                                     std::string(flag) + " wants KEY=VALUE, got \"" + item + "\"",
                                     std::string("write it like ") + flag + " NAME=value");
    }
    out[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return out;
}

int ExecCommand(const Output& out, const std::string& target, const std::vector<std::string>& words,
                const std::string& cwd, const std::vector<std::string>& env_pairs,
                int64_t timeout_ms) {
  json::object body;
  if (words.size() == 1) {
    body["command"] = words[0];  // one word: a shell command line ("ls -la | wc -l")
  } else {
    json::array argv;
    for (const auto& w : words) {
      argv.emplace_back(w);
    }
    body["argv"] = std::move(argv);
  }
  if (!cwd.empty()) {
    body["cwd"] = cwd;
  }
  auto env = Pairs(env_pairs, "--env");
  if (!env.ok()) {
    ReportError(out, env.status());
    return kUsage;
  }
  if (!env->empty()) {
    body["env"] = std::move(*env);
  }
  body["timeoutMs"] = timeout_ms;
  if (!isatty(STDIN_FILENO)) {
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (!input.empty()) {
      body["stdin"] = input;
    }
  }
  ApiCall call;
  call.method = "POST";
  call.path = target + "/exec";
  call.body = json::serialize(body);
  call.timeout = std::chrono::milliseconds(timeout_ms) + 30s;
  if (out.json) {
    auto res = Send(LoadProfile(), call);
    if (!res.ok()) {
      return ReportError(out, res.status());
    }
    auto parsed = ParseJson(res->body);
    if (!parsed.ok()) {
      return ReportError(out, parsed.status());
    }
    PrintJson(parsed->as_object()["data"]);
    return static_cast<int>(GetInt(parsed->as_object()["data"].as_object(), "exitCode", 1));
  }
  call.accept = "text/event-stream";
  int exit_code = 1;
  call.on_event = [&](const std::string& event, const json::value& data) {
    if (event == "stdout" || event == "stderr") {
      std::string text = GetString(data.as_object(), "data");
      std::fwrite(text.data(), 1, text.size(), event == "stdout" ? stdout : stderr);
      std::fflush(event == "stdout" ? stdout : stderr);
    } else if (event == "exit") {
      const json::object& o = data.as_object();
      exit_code = static_cast<int>(GetInt(o, "exitCode", 1));
      if (GetBool(o, "timedOut")) {
        std::fprintf(stderr, "kiln: the command timed out after %lld ms\n",
                     static_cast<long long>(timeout_ms));
      }
      if (GetString(o, "killedBy") == "oom") {
        std::fprintf(stderr, "kiln: the command was killed at its memory limit\n");
      }
    } else if (event == "error") {
      const json::object& e = data.as_object().at("error").as_object();
      exit_code =
          ReportError(out, Status::InvalidArgument(GetString(e, "code"), GetString(e, "message"),
                                                   GetString(e, "hint")));
    }
    return true;
  };
  auto res = Send(LoadProfile(), call);
  if (!res.ok()) {
    return ReportError(out, res.status());
  }
  return exit_code;
}

namespace {

std::vector<std::string> SandboxRow(const json::value& v) {
  const json::object& o = v.as_object();
  return {Str(o.at("id")),        Str(o.at("template")),
          Str(o.at("status")),    Str(o.at("resources").at("memoryMb")) + " MiB",
          Str(o.at("startedAt")), Str(o.at("expiresAt"))};
}

const std::vector<std::string> kSandboxHeader = {"ID",     "TEMPLATE", "STATUS",
                                                 "MEMORY", "STARTED",  "EXPIRES"};

void PrintSandbox(const json::value& v) {
  const json::object& o = v.as_object();
  for (const char* k : {"id", "template", "status", "network", "startedAt", "expiresAt"}) {
    std::printf("%-10s %s\n", k, Str(o.at(k)).c_str());
  }
  const json::object& r = o.at("resources").as_object();
  std::printf("%-10s %s MiB, %s CPU, %s processes\n", "limits", Str(r.at("memoryMb")).c_str(),
              Str(r.at("cpus")).c_str(), Str(r.at("pids")).c_str());
  if (auto it = o.find("usage"); it != o.end()) {
    const json::object& u = it->value().as_object();
    std::printf("%-10s %s bytes, %s processes\n", "usage", Str(u.at("memoryBytes")).c_str(),
                Str(u.at("processes")).c_str());
  }
  if (auto it = o.find("metadata"); it != o.end() && !it->value().as_object().empty()) {
    std::printf("%-10s %s\n", "metadata", json::serialize(it->value()).c_str());
  }
}

}  // namespace

void AddSandboxCommands(CLI::App& app, const bool& json_flag, int& code) {
  auto* sb = app.add_subcommand("sandbox", "isolated sandboxes to run commands in");
  sb->require_subcommand(1);
  auto out = [&json_flag] { return DetectOutput(json_flag); };
  auto path_of = [](const std::string& id) { return "/v1/sandboxes/" + http::PercentEncode(id); };
  // Option values must live as long as the callbacks that read them: CLI11 runs those after
  // this function has returned. Each callback holds the state.
  struct State {
    std::string id, template_name = "base", network, status, cwd, path, local;
    int64_t timeout = 0, memory = 0, exec_timeout = 60000, seconds = 0;
    double cpus = 0;
    int depth = 1;
    std::vector<std::string> env, meta, words;
  };
  auto st = std::make_shared<State>();

  auto* create = sb->add_subcommand("create", "start a sandbox and print its id");
  create->add_option("--template", st->template_name, "base (default), debian, or yours");
  create->add_option("--timeout", st->timeout, "seconds until it is killed");
  create->add_option("--memory", st->memory, "memory limit in MiB");
  create->add_option("--cpus", st->cpus, "CPU cores");
  create->add_option("--network", st->network, "none (default) or egress");
  create->add_option("--env", st->env, "KEY=VALUE for every command (repeatable)");
  create->add_option("--meta", st->meta, "KEY=VALUE label (repeatable)");
  create->callback([st, &code, out] {
    json::object body{{"template", st->template_name}};
    if (st->timeout > 0) {
      body["timeout"] = st->timeout;
    }
    if (st->memory > 0) {
      body["memoryMb"] = st->memory;
    }
    if (st->cpus > 0) {
      body["cpus"] = st->cpus;
    }
    if (!st->network.empty()) {
      body["network"] = st->network;
    }
    for (auto [flag, items, field] :
         {std::tuple{"--env", &st->env, "env"}, std::tuple{"--meta", &st->meta, "metadata"}}) {
      auto pairs = Pairs(*items, flag);
      if (!pairs.ok()) {
        code = ReportError(out(), pairs.status());
        return;
      }
      if (!pairs->empty()) {
        body[field] = std::move(*pairs);
      }
    }
    json::value v = body;
    code = Run(out(), CallApi(LoadProfile(), "POST", "/v1/sandboxes", &v),
               [](const json::value& s) { std::printf("%s\n", Str(s.at("id")).c_str()); });
  });

  auto* list = sb->add_subcommand("list", "list live sandboxes (newest first)");
  list->add_option("--status", st->status, "running, paused, killed, expired, lost, failed, all");
  list->add_option("--meta", st->meta, "KEY=VALUE label filter (repeatable)");
  list->callback([st, &code, out] {
    std::string path = "/v1/sandboxes?limit=200";
    if (!st->status.empty()) {
      path += "&status=" + http::PercentEncode(st->status);
    }
    for (const auto& m : st->meta) {
      size_t eq = m.find('=');
      path += "&metadata." + http::PercentEncode(m.substr(0, eq)) + "=" +
              http::PercentEncode(eq == std::string::npos ? "" : m.substr(eq + 1));
    }
    code = Run(out(), CallApi(LoadProfile(), "GET", path), [&](const json::value& page) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& s : page.at("data").as_array()) {
        rows.push_back(SandboxRow(s));
      }
      PrintTable(out(), kSandboxHeader, rows);
    });
  });

  auto* get = sb->add_subcommand("get", "show a sandbox with its resource use");
  get->add_option("id", st->id, "sbx_…")->required();
  get->callback([st, &code, out, path_of] {
    code = Run(out(), CallApi(LoadProfile(), "GET", path_of(st->id)), PrintSandbox);
  });

  auto* exec = sb->add_subcommand(
      "exec", "run a command (one argument: a shell line; several: argv) and stream its output");
  exec->add_option("id", st->id, "sbx_…")->required();
  exec->add_option("command", st->words, "the command, after --")->required();
  exec->add_option("--cwd", st->cwd, "working directory");
  exec->add_option("--env", st->env, "KEY=VALUE (repeatable)");
  exec->add_option("--timeout-ms", st->exec_timeout, "kill it after this long (default 60000)");
  exec->callback([st, &code, out, path_of] {
    code = ExecCommand(out(), path_of(st->id), st->words, st->cwd, st->env, st->exec_timeout);
  });

  for (auto [name, what, method, suffix] :
       {std::tuple{"kill", "kill a sandbox and delete its files", "DELETE", ""},
        std::tuple{"pause", "freeze every process of a sandbox", "POST", "/pause"},
        std::tuple{"resume", "thaw a paused sandbox", "POST", "/resume"}}) {
    auto* cmd = sb->add_subcommand(name, what);
    cmd->add_option("id", st->id, "sbx_…")->required();
    std::string m = method, suf = suffix;
    cmd->callback([st, &code, out, path_of, m, suf] {
      code = Run(out(), CallApi(LoadProfile(), m, path_of(st->id) + suf), [](const json::value& v) {
        std::printf("%s %s\n", Str(v.at("id")).c_str(), Str(v.at("status")).c_str());
      });
    });
  }

  auto* timeout = sb->add_subcommand("timeout", "make a sandbox expire SECONDS from now");
  timeout->add_option("id", st->id, "sbx_…")->required();
  timeout->add_option("seconds", st->seconds, "seconds from now")->required();
  timeout->callback([st, &code, out, path_of] {
    json::value body = json::object{{"timeout", st->seconds}};
    code = Run(out(), CallApi(LoadProfile(), "POST", path_of(st->id) + "/timeout", &body),
               [](const json::value& v) {
                 std::printf("%s expires at %s\n", Str(v.at("id")).c_str(),
                             Str(v.at("expiresAt")).c_str());
               });
  });

  auto* files = sb->add_subcommand("files", "files in a sandbox");
  files->require_subcommand(1);
  auto* ls = files->add_subcommand("ls", "list a directory");
  ls->add_option("id", st->id, "sbx_…")->required();
  ls->add_option("path", st->path, "directory (default /root)");
  ls->add_option("--depth", st->depth, "levels (default 1)");
  ls->callback([st, &code, out, path_of] {
    std::string path = path_of(st->id) + "/files/list?path=" +
                       http::PercentEncode(st->path.empty() ? "/root" : st->path) +
                       "&depth=" + std::to_string(st->depth);
    code = Run(out(), CallApi(LoadProfile(), "GET", path), [&](const json::value& v) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& e : v.at("entries").as_array()) {
        const json::object& o = e.as_object();
        std::string name = Str(o.at("path"));
        if (auto t = o.find("target"); t != o.end()) {
          name += " -> " + Str(t->value());
        }
        rows.push_back(
            {Str(o.at("mode")), Str(o.at("type")), Str(o.at("size")), Str(o.at("mtime")), name});
      }
      PrintTable(out(), {"MODE", "TYPE", "SIZE", "MODIFIED", "PATH"}, rows);
    });
  });

  auto* cat = files->add_subcommand("cat", "print a file's bytes");
  cat->add_option("id", st->id, "sbx_…")->required();
  cat->add_option("path", st->path, "file")->required();
  cat->callback([st, &code, out, path_of] {
    ApiCall call;
    call.path = path_of(st->id) + "/files?path=" + http::PercentEncode(st->path);
    call.accept = "application/octet-stream";
    auto res = Send(LoadProfile(), call);
    if (!res.ok()) {
      code = ReportError(out(), res.status());
      return;
    }
    std::fwrite(res->body.data(), 1, res->body.size(), stdout);
    code = kOk;
  });

  auto* put = files->add_subcommand("put", "write a file from a local file or stdin");
  put->add_option("id", st->id, "sbx_…")->required();
  put->add_option("path", st->path, "destination in the sandbox")->required();
  put->add_option("local", st->local, "local file (default: stdin)");
  put->callback([st, &code, out, path_of] {
    ApiCall call;
    call.method = "PUT";
    call.path = path_of(st->id) + "/files?path=" + http::PercentEncode(st->path);
    call.content_type = "application/octet-stream";
    if (st->local.empty() || st->local == "-") {
      call.body.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      std::ifstream in(st->local, std::ios::binary);
      if (!in) {
        code = ReportError(out(), Status::NotFound("FILE_NOT_FOUND", "cannot read " + st->local,
                                                   "check the local path"));
        return;
      }
      call.body.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    auto res = Send(LoadProfile(), call);
    if (!res.ok()) {
      code = ReportError(out(), res.status());
      return;
    }
    if (out().json) {
      std::printf("%s\n", res->body.c_str());
    } else {
      std::printf("wrote %zu bytes to %s\n", call.body.size(), st->path.c_str());
    }
    code = kOk;
  });
}

void AddTemplateCommands(CLI::App& app, const bool& json_flag, int& code) {
  auto* tpl = app.add_subcommand("templates", "templates sandboxes start from");
  tpl->require_subcommand(1);
  auto out = [&json_flag] { return DetectOutput(json_flag); };
  struct State {
    std::string name, from = "base";
    std::vector<std::string> steps, env;
    bool follow = false;
  };
  auto st = std::make_shared<State>();

  auto* list = tpl->add_subcommand("list", "list templates and their status");
  list->callback([st, &code, out] {
    code = Run(out(), CallApi(LoadProfile(), "GET", "/v1/templates"), [&](const json::value& v) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& t : v.as_array()) {
        const json::object& o = t.as_object();
        rows.push_back({Str(o.at("name")), Str(o.at("status")), Str(o.at("base")),
                        Str(o.at("size")), Str(o.at("builtAt"))});
      }
      PrintTable(out(), {"NAME", "STATUS", "BASE", "SIZE", "BUILT"}, rows);
    });
  });

  // Streams a build log to stdout until the build ends; the exit code says how it ended.
  auto stream_log = [st, out](bool wait) -> int {
    ApiCall call;
    call.path =
        "/v1/templates/" + http::PercentEncode(st->name) + "/logs" + (wait ? "?follow=1" : "");
    call.accept = "text/event-stream";
    call.timeout = 2h;
    std::string status;
    call.on_event = [&](const std::string& event, const json::value& data) {
      if (event == "line") {
        std::printf("%s\n", GetString(data.as_object(), "text").c_str());
        std::fflush(stdout);
      } else if (event == "end") {
        for (const auto& l : data.as_object().at("lines").as_array()) {
          std::printf("%s\n", Str(l).c_str());
        }
        status = GetString(data.as_object(), "status");
      }
      return true;
    };
    auto res = Send(LoadProfile(), call);
    if (!res.ok()) {
      return ReportError(out(), res.status());
    }
    return status == "failed" ? kApiError : kOk;
  };

  auto* create = tpl->add_subcommand("create", "build a template from steps (follows the build)");
  create->add_option("name", st->name, "lower-case letters, digits and dashes")->required();
  create->add_option("--from", st->from, "base (default), debian, or one of yours");
  create->add_option("--step", st->steps, "a shell command, in order (repeatable)")->required();
  create->add_option("--env", st->env, "KEY=VALUE for the steps (repeatable)");
  create->callback([st, &code, out, stream_log] {
    json::array step_json;
    for (const auto& s : st->steps) {
      step_json.push_back(json::object{{"run", s}});
    }
    json::object body{{"name", st->name}, {"from", st->from}, {"steps", std::move(step_json)}};
    auto pairs = Pairs(st->env, "--env");
    if (!pairs.ok()) {
      code = ReportError(out(), pairs.status());
      return;
    }
    if (!pairs->empty()) {
      body["env"] = std::move(*pairs);
    }
    json::value v = body;
    auto created = CallApi(LoadProfile(), "POST", "/v1/templates", &v);
    if (!created.ok() || out().json) {
      code = Run(out(), created, [](const json::value&) {});
      return;
    }
    code = stream_log(true);
  });
  auto* get = tpl->add_subcommand("get", "show a template");
  get->add_option("name", st->name, "template name")->required();
  get->callback([st, &code, out] {
    code =
        Run(out(), CallApi(LoadProfile(), "GET", "/v1/templates/" + http::PercentEncode(st->name)),
            [](const json::value& v) {
              for (const auto& [k, val] : v.as_object()) {
                std::printf("%-12s %s\n", std::string(k).c_str(), Str(val).c_str());
              }
            });
  });
  auto* del = tpl->add_subcommand("delete", "delete one of your templates");
  del->add_option("name", st->name, "template name")->required();
  del->callback([st, &code, out] {
    std::string n = http::PercentEncode(st->name);
    code =
        Run(out(), CallApi(LoadProfile(), "DELETE", "/v1/templates/" + n + "?confirm=" + n),
            [](const json::value& v) { std::printf("deleted %s\n", Str(v.at("name")).c_str()); });
  });
  auto* logs = tpl->add_subcommand("logs", "print a template's build log");
  logs->add_option("name", st->name, "template name")->required();
  logs->add_flag("-f,--follow", st->follow, "keep printing until the build ends");
  logs->callback([st, &code, stream_log] { code = stream_log(st->follow); });
}

}  // namespace kiln::cli

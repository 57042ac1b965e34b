// Exec and files in a sandbox or an app's running instance (shared/API.md "Exec",
// "Sandboxes" files, apps' exec and files), through kiln-init. The operations are the same for
// both; an ExecTarget says which resource they are bound to.
#include <csignal>
#include <map>

#include "core/crypto.h"
#include "service/operations.h"
#include "service/sandboxes.h"

namespace kiln::service {
namespace {

constexpr int64_t kMiB = 1 << 20;

std::string PathProp(const ExecTarget& t) {
  return R"js("path": {"type": "string", "minLength": 1, "maxLength": 4096,
    "description": "absolute, or relative to )js" +
         t.home + R"js(; no .. components"})js";
}

// Output chunks are cut wherever the pipe was; a UTF-8 sequence cut in two is held back and
// sent with the next chunk, so that events carry whole characters.
class Utf8Chunker {
 public:
  std::string Next(std::string_view chunk) {
    std::string text = std::move(held_);
    held_.clear();
    text.append(chunk);
    size_t keep = IncompleteTail(text);
    held_ = text.substr(text.size() - keep);
    text.resize(text.size() - keep);
    return ValidUtf8(text);
  }
  std::string Flush() {
    std::string rest = ValidUtf8(held_);
    held_.clear();
    return rest;
  }

 private:
  // Length of a UTF-8 sequence started but not finished at the end of `text` (0..3).
  static size_t IncompleteTail(std::string_view text) {
    for (size_t back = 1; back <= 3 && back <= text.size(); ++back) {
      auto c = static_cast<unsigned char>(text[text.size() - back]);
      if ((c & 0xC0) == 0x80) {
        continue;  // a continuation byte: look further back for the lead byte
      }
      size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
      return need > back ? back : 0;
    }
    return 0;
  }
  std::string held_;
};

// A client path made absolute inside the sandbox; `..` is refused here too (kiln-init refuses
// it again, and resolves in the sandbox's root, so nothing can lead outside).
Result<std::string> SandboxPath(const ExecTarget& t, const std::string& path) {
  std::string p = path.starts_with('/') ? path : t.home + "/" + path;
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) {
      end = p.size();
    }
    if (p.compare(start, end - start, "..") == 0) {
      return Status::InvalidArgument("PATH_INVALID", "path \"" + path + "\" has a .. component",
                                     "use a path inside the " + t.noun + " without ..");
    }
    start = end + 1;
  }
  if (p.find('\0') != std::string::npos) {
    return Status::InvalidArgument("PATH_INVALID", "path has a NUL byte", "send a plain path");
  }
  return p;
}

std::string Str(const json::object& in, std::string_view key) { return GetString(in, key); }

Operation ExecOp(const ExecTarget& t) {
  Operation op;
  op.name = t.resource + ".exec";
  op.summary = "Run a command in " + t.a_noun + " and get its output and exit code";
  op.description =
      "Runs `command` with /bin/sh -c (or `argv` directly) in the sandbox and answers "
      "{exitCode, stdout, stderr, truncated, timedOut, durationMs}. A missing program is exit "
      "code 127, not an error. The command is killed after timeoutMs; each of stdout and "
      "stderr keeps maxBytes. Background processes it starts keep running. Streamed as "
      "Server-Sent Events (stdout, stderr, then exit) when asked.";
  op.method = "POST";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/exec";
  op.scopes = auth::kExec;
  op.blocking = op.streaming = true;
  op.final_event = "exit";
  op.input =
      Schema(std::string(R"js({"type": "object", "additionalProperties": false, "required": [")js" +
                         t.param + R"js("], "properties": {
      "command": {"type": "string", "minLength": 1, "maxLength": 131072, "description": "a shell command line"},
      "argv": {"type": "array", "minItems": 1, "maxItems": 4096, "items": {"type": "string", "maxLength": 131072},
               "description": "program and arguments, without a shell"},
      "cwd": {"type": "string", "maxLength": 4096, "description": "working directory (default /root)"
},
      "env": {"type": "object", "maxProperties": 128,
              "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 128},
              "additionalProperties": {"type": "string", "maxLength": 32768}},
      "user": {"type": "string", "maxLength": 64, "description": "root (default), user, a uid or uid:gid"},
      "stdin": {"type": "string", "maxLength": 8388608},
      "timeoutMs": {"type": "integer", "minimum": 1, "maximum": 600000, "description": "default 60000"},
      "maxBytes": {"type": "integer", "minimum": 1, "maximum": 5242880, "description": "per stream, default 1 MiB"},)js") +
             t.id_prop + "}}");
  op.output = Schema(R"js({"type": "object", "properties": {
      "pid": {"type": "integer", "description": "the command's pid in the sandbox"},
      "exitCode": {"type": "integer"}, "stdout": {"type": "string"}, "stderr": {"type": "string"},
      "truncated": {"type": "boolean"}, "timedOut": {"type": "boolean"}, "durationMs": {"type": "integer"},
      "killedBy": {"type": ["string", "null"], "description": "oom when the memory limit killed it"},
      "pidsLimitHit": {"type": "boolean", "description": "a fork failed at the process limit"}}})js");
  op.run = [t](Context& ctx, const json::object& in) -> Result<json::value> {
    bool has_command = in.contains("command");
    bool has_argv = in.contains("argv");
    if (has_command == has_argv) {
      return Status::InvalidArgument(
          "VALIDATION_FAILED", "give exactly one of command or argv",
          "command: \"ls -la\" runs in a shell; argv: [\"ls\", \"-la\"] does not");
    }
    std::string id;
    KILN_ASSIGN_OR_RETURN(runtime::InitClient client,
                          t.client(ctx.principal.workspace.id, Str(in, t.param), &id));
    runtime::ExecRequest r;
    if (has_command) {
      r.argv = {"/bin/sh", "-c", Str(in, "command")};
    } else {
      for (const auto& a : in.at("argv").as_array()) {
        r.argv.emplace_back(a.as_string());
      }
    }
    r.cwd = Str(in, "cwd");
    r.user = Str(in, "user");
    r.stdin_data = Str(in, "stdin");
    if (auto it = in.find("env"); it != in.end()) {
      for (const auto& [k, v] : it->value().as_object()) {
        r.env.push_back(std::string(k) + "=" + std::string(v.as_string()));
      }
    }
    r.timeout_ms = GetInt(in, "timeoutMs", 60000);
    r.max_bytes = GetInt(in, "maxBytes", kMiB);

    auto before = t.limit_events(id);
    runtime::OutputSink sink;
    Utf8Chunker out_text, err_text;
    if (ctx.emit) {
      sink = [&](int stream, std::string_view chunk) {
        std::string text = (stream == 1 ? out_text : err_text).Next(chunk);
        if (text.empty()) {
          return true;
        }
        return ctx.emit(stream == 1 ? "stdout" : "stderr", json::object{{"data", text}});
      };
    }
    runtime::StartedCallback started;
    if (ctx.emit) {
      // The pid lets the caller signal the command while it runs (sandboxes.signal).
      started = [&](int pid) { ctx.emit("start", json::object{{"pid", pid}}); };
    }
    KILN_ASSIGN_OR_RETURN(runtime::ExecResult result, client.Exec(r, sink, started));
    auto after = t.limit_events(id);
    json::value killed_by = nullptr;
    bool pids_hit = false;
    if (before && after) {
      // Killed by SIGKILL (itself, or a child as a shell reports it: 137) while the kernel
      // counted an OOM kill in this sandbox.
      bool sigkill = result.signal == 9 || result.exit_code == 128 + 9;
      if (after->oom_kills > before->oom_kills && sigkill && !result.timed_out) {
        killed_by = "oom";
      }
      pids_hit = after->pids_limit_hits > before->pids_limit_hits;
    }
    if (ctx.emit) {
      for (auto [stream, chunker] :
           {std::pair{"stdout", &out_text}, std::pair{"stderr", &err_text}}) {
        if (std::string rest = chunker->Flush(); !rest.empty()) {
          ctx.emit(stream, json::object{{"data", rest}});
        }
      }
    }
    return json::object{{"pid", result.pid},
                        {"exitCode", result.exit_code},
                        {"stdout", ValidUtf8(result.stdout_data)},
                        {"stderr", ValidUtf8(result.stderr_data)},
                        {"truncated", result.stdout_truncated || result.stderr_truncated},
                        {"timedOut", result.timed_out},
                        {"durationMs", result.duration_us / 1000},
                        {"killedBy", killed_by},
                        {"pidsLimitHit", pids_hit}};
  };
  return op;
}

Operation SignalOp(const ExecTarget& t) {
  Operation op;
  op.name = t.resource + ".signal";
  op.summary = "Send a signal to a running command of " + t.a_noun;
  op.description =
      "Delivers `signal` (TERM by default; INT, HUP, KILL, QUIT, USR1, USR2, STOP, CONT) to a "
      "command started with sandboxes.exec, and to its children: `pid` is the one the exec "
      "stream's `start` event gave. Only commands started through exec can be signalled.";
  op.method = "POST";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/signal";
  op.scopes = auth::kExec;
  op.blocking = true;
  op.input =
      Schema(std::string(R"js({"type": "object", "additionalProperties": false, "required": [")js" +
                         t.param + R"js(", "pid"], "properties": {
      "pid": {"type": "integer", "minimum": 2},
      "signal": {"type": "string", "enum": ["TERM", "INT", "HUP", "KILL", "QUIT", "USR1", "USR2", "STOP", "CONT"]},)js") +
             t.id_prop + "}}");
  op.output = Schema(
      R"js({"type": "object", "properties": {"pid": {"type": "integer"}, "signal": {"type": "string"}}})js");
  op.run = [t](Context& ctx, const json::object& in) -> Result<json::value> {
    static const std::map<std::string, int> kSignals = {
        {"TERM", SIGTERM}, {"INT", SIGINT},   {"HUP", SIGHUP},
        {"KILL", SIGKILL}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
        {"USR2", SIGUSR2}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}};
    std::string name = GetString(in, "signal", "TERM");
    int pid = static_cast<int>(GetInt(in, "pid"));
    KILN_ASSIGN_OR_RETURN(runtime::InitClient client,
                          t.client(ctx.principal.workspace.id, Str(in, t.param), nullptr));
    Status s = client.Signal(pid, kSignals.at(name));
    if (s.Is(Code::kNotFound)) {
      return Status::NotFound("PROCESS_NOT_FOUND",
                              "no running command with pid " + std::to_string(pid),
                              "use the pid of the exec's `start` event while it runs");
    }
    KILN_RETURN_IF_ERROR(s);
    return json::object{{"pid", pid}, {"signal", name}};
  };
  return op;
}

Operation ReadOp(const Deps& d, const ExecTarget& t) {
  Operation op;
  op.name = t.resource + ".files.read";
  op.summary = "Read a file from " + t.a_noun;
  op.description =
      "Answers a file's content: as text (encoding utf8) when it is valid UTF-8, else base64 "
      "(or as asked with `encoding`). Over REST the body is the file's raw bytes.";
  op.method = "GET";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/files";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = op.blocking = true;
  op.rest_raw_output = "content";
  op.input =
      Schema(std::string(R"js({"type": "object", "additionalProperties": false, "required": [")js" +
                         t.param + R"js(", "path"], "properties": {
      "encoding": {"type": "string", "enum": ["utf8", "base64"]},)js") +
             PathProp(t) + "," + t.id_prop + "}}");
  op.output = Schema(R"js({"type": "object", "properties": {"path": {"type": "string"},
      "size": {"type": "integer"}, "encoding": {"type": "string", "enum": ["utf8", "base64"]},
      "content": {"type": "string"}}})js");
  op.run = [&d, t](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(std::string path, SandboxPath(t, Str(in, "path")));
    KILN_ASSIGN_OR_RETURN(runtime::InitClient client,
                          t.client(ctx.principal.workspace.id, Str(in, t.param), nullptr));
    KILN_ASSIGN_OR_RETURN(std::string content,
                          client.ReadFile(path, d.config.server.body_limit_bytes));
    std::string encoding = Str(in, "encoding");
    int64_t size = static_cast<int64_t>(content.size());
    if (!ctx.raw) {
      bool text = ValidUtf8(content) == content;
      if (encoding.empty()) {
        encoding = text ? "utf8" : "base64";
      }
      if (encoding == "base64") {
        content = crypto::Base64Encode(content);
      } else if (!text) {
        return Status::InvalidArgument("NOT_UTF8", path + " is not UTF-8 text",
                                       "read it with encoding \"base64\"");
      }
    }
    return json::object{
        {"path", path}, {"size", size}, {"encoding", encoding}, {"content", content}};
  };
  return op;
}

Operation WriteOp(const ExecTarget& t) {
  Operation op;
  op.name = t.resource + ".files.write";
  op.summary = "Write a file in " + t.a_noun + " (parents are created)";
  op.description =
      "Writes `content` (text, or base64 with encoding \"base64\") to `path`, creating missing "
      "parent directories; replaces an existing file at once (never half-written). Over REST "
      "the request body is the raw bytes.";
  op.method = "PUT";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/files";
  op.scopes = auth::kWrite;
  op.idempotent = op.blocking = true;
  op.rest_raw_input = "content";
  op.input =
      Schema(std::string(R"js({"type": "object", "additionalProperties": false, "required": [")js" +
                         t.param + R"js(", "path", "content"], "properties": {
      "content": {"type": "string"},
      "encoding": {"type": "string", "enum": ["utf8", "base64"], "description": "of content; default utf8"},
      "mode": {"type": "integer", "minimum": 0, "maximum": 4095, "description": "permission bits, default 420 (0644)"
},)js") + PathProp(t) +
             "," + t.id_prop + "}}");
  op.output = Schema(
      R"js({"type": "object", "properties": {"path": {"type": "string"}, "size": {"type": "integer"}}})js");
  op.run = [t](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(std::string path, SandboxPath(t, Str(in, "path")));
    std::string content = Str(in, "content");
    if (!ctx.raw && Str(in, "encoding") == "base64") {
      auto decoded = crypto::Base64Decode(content);
      if (!decoded.ok()) {
        return Status::InvalidArgument("INVALID_BASE64", "content is not valid base64",
                                       "send standard base64, or encoding \"utf8\" for text");
      }
      content = std::move(*decoded);
    }
    KILN_ASSIGN_OR_RETURN(runtime::InitClient client,
                          t.client(ctx.principal.workspace.id, Str(in, t.param), nullptr));
    auto mode = static_cast<uint32_t>(GetInt(in, "mode", 0644));
    KILN_RETURN_IF_ERROR(client.WriteFile(path, content, mode));
    return json::object{{"path", path}, {"size", static_cast<int64_t>(content.size())}};
  };
  return op;
}

Operation RemoveOp(const ExecTarget& t) {
  Operation op;
  op.name = t.resource + ".files.remove";
  op.summary = "Remove a file or directory in " + t.a_noun;
  op.description =
      "Removes a file, a symlink (not what it points to) or a directory "
      "(recursive: true for one that is not empty).";
  op.method = "DELETE";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/files";
  op.scopes = auth::kWrite;
  op.idempotent = op.blocking = true;
  op.input =
      Schema(std::string(R"js({"type": "object", "additionalProperties": false, "required": [")js" +
                         t.param + R"js(", "path"], "properties": {
      "recursive": {"type": "boolean"},)js") +
             PathProp(t) + "," + t.id_prop + "}}");
  op.output = Schema(
      R"js({"type": "object", "properties": {"path": {"type": "string"}, "removed": {"type": "boolean"}}})js");
  op.run = [t](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(std::string path, SandboxPath(t, Str(in, "path")));
    KILN_ASSIGN_OR_RETURN(runtime::InitClient client,
                          t.client(ctx.principal.workspace.id, Str(in, t.param), nullptr));
    KILN_RETURN_IF_ERROR(client.Remove(path, GetBool(in, "recursive")));
    return json::object{{"path", path}, {"removed", true}};
  };
  return op;
}

Operation ListOp(const ExecTarget& t) {
  Operation op;
  op.name = t.resource + ".files.list";
  op.summary = "List a directory in " + t.a_noun;
  op.description =
      "Lists `path` (default /root) to `depth` levels: name, path, type (file, dir, symlink, "
      "other), size, mode, mtime and, for symlinks, their target (never followed).";
  op.method = "GET";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/files/list";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = op.blocking = true;
  op.input =
      Schema(std::string(R"js({"type": "object", "additionalProperties": false, "required": [")js" +
                         t.param + R"js("], "properties": {
      "depth": {"type": "integer", "minimum": 1, "maximum": 10, "description": "default 1"},)js") +
             PathProp(t) + "," + t.id_prop + "}}");
  op.output = Schema(
      R"js({"type": "object", "properties": {"path": {"type": "string"}, "entries": {"type": "array", "items": {"type": "object", "properties": {
      "name": {"type": "string"}, "path": {"type": "string"},
      "type": {"type": "string", "enum": ["file", "dir", "symlink", "other"]},
      "size": {"type": "integer"}, "mode": {"type": "string"}, "mtime": {"type": "string"},
      "target": {"type": "string"}}}}}})js");
  op.run = [t](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(std::string path, SandboxPath(t, GetString(in, "path", t.home)));
    KILN_ASSIGN_OR_RETURN(runtime::InitClient client,
                          t.client(ctx.principal.workspace.id, Str(in, t.param), nullptr));
    KILN_ASSIGN_OR_RETURN(auto entries,
                          client.List(path, static_cast<int>(GetInt(in, "depth", 1))));
    json::array out;
    for (const runtime::FileEntry& e : entries) {
      using Type = runtime::FileEntry::Type;
      std::string_view type = e.type == Type::kFile      ? "file"
                              : e.type == Type::kDir     ? "dir"
                              : e.type == Type::kSymlink ? "symlink"
                                                         : "other";
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", e.mode & 07777);
      json::object entry{{"name", ValidUtf8(e.name)},
                         {"path", ValidUtf8(e.path)},
                         {"type", type},
                         {"size", e.size},
                         {"mode", mode},
                         {"mtime", FormatTime(e.mtime_ms)}};
      if (e.type == Type::kSymlink) {
        entry["target"] = ValidUtf8(e.link_target);
      }
      out.push_back(std::move(entry));
    }
    return json::object{{"path", path}, {"entries", std::move(out)}};
  };
  return op;
}

}  // namespace

void AddExecOperations(const Deps& deps, const ExecTarget& target, std::vector<Operation>& out) {
  out.push_back(ExecOp(target));
  out.push_back(SignalOp(target));
  out.push_back(ReadOp(deps, target));
  out.push_back(WriteOp(target));
  out.push_back(RemoveOp(target));
  out.push_back(ListOp(target));
}

}  // namespace kiln::service

// `kiln mcp`: the stdio transport of Kiln's MCP server, a bridge from newline-delimited
// JSON-RPC on stdin/stdout to the server's /mcp (Streamable HTTP) with the profile's key; and
// `kiln mcp config`: the block an MCP client's config file needs to start that bridge.
//
// stdout carries MCP messages only, one per line; everything else goes to stderr.
#include <poll.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "cli/internal.h"
#include "http/http.h"

namespace kiln::cli {
namespace {

// JSON-RPC error codes the bridge answers with itself.
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kInternalError = -32603;
constexpr int kAuthError = -32001;  // MCP's "server error" range; the server uses it too

// Long enough for any tool call (a build, a long exec): the client decides when to give up,
// and says so with notifications/cancelled.
constexpr std::chrono::milliseconds kCallTimeout = kFollowTimeout;
// Notifications, the client's answers and initialize: the server answers these at once.
constexpr std::chrono::milliseconds kQuickTimeout{60'000};
constexpr std::chrono::milliseconds kDeleteTimeout{5'000};
// How long the bridge looks for the server's answer, and for the client's next line, before
// it sleeps (--spin-us): waking a sleeping thread costs tens of µs on a VM, as much as a
// quick tool call takes in the server, and an agent's calls are rare enough that this much
// CPU per call does not matter. 0 sleeps at once.
constexpr int kDefaultSpinUs = 200;
// How many times in a row a broken event stream is resumed without news before the request
// is answered with an error.
constexpr int kResumeTries = 5;

void Log(const std::string& line) { std::fprintf(stderr, "kiln mcp: %s\n", line.c_str()); }

// Splits an event stream (text/event-stream) into events as its pieces arrive: `data` lines
// joined with '\n', `id` remembered for resuming, `retry` for the wait before resuming.
class EventParser {
 public:
  explicit EventParser(std::string last_event_id) : last_id_(std::move(last_event_id)) {}

  // Hands each complete event's data to `on_data`; answers false as soon as it does.
  bool Feed(std::string_view piece, const std::function<bool(const std::string&)>& on_data) {
    pending_.append(piece);
    size_t start = 0;
    size_t nl;
    bool go_on = true;
    while (go_on && (nl = pending_.find('\n', start)) != std::string::npos) {
      std::string_view line(pending_.data() + start, nl - start);
      start = nl + 1;
      if (!line.empty() && line.back() == '\r') {
        line.remove_suffix(1);
      }
      if (line.empty()) {  // the blank line ends an event
        if (has_data_) {
          go_on = on_data(data_);
        }
        data_.clear();
        has_data_ = false;
        continue;
      }
      if (line.front() == ':') {
        continue;  // a comment (keep-alive)
      }
      size_t colon = line.find(':');
      std::string_view field = line.substr(0, colon);
      std::string_view value = colon == std::string_view::npos ? "" : line.substr(colon + 1);
      if (!value.empty() && value.front() == ' ') {
        value.remove_prefix(1);
      }
      if (field == "data") {
        if (has_data_) {
          data_ += '\n';
        }
        data_.append(value);
        has_data_ = true;
      } else if (field == "id") {
        last_id_ = value;
      } else if (field == "retry") {
        int ms = 0;
        if (std::from_chars(value.data(), value.data() + value.size(), ms).ec == std::errc()) {
          retry_ms_ = ms;
        }
      }
    }
    pending_.erase(0, start);
    return go_on;
  }
  const std::string& last_event_id() const { return last_id_; }
  int retry_ms() const { return retry_ms_; }

 private:
  std::string pending_;  // text after the last complete line
  std::string data_;     // the data of the event being read
  bool has_data_ = false;
  std::string last_id_;
  int retry_ms_ = 1000;
};

// The session a message is sent in: empty before initialize has been answered.
struct Session {
  std::string id;       // Mcp-Session-Id
  std::string version;  // the negotiated protocol version, for MCP-Protocol-Version
};

// What one exchange with /mcp brought back.
struct Exchange {
  int status = 0;             // the HTTP status; 0 when none came
  Status failure;             // why none came (connection refused, timeout, stream broke)
  std::string session_id;     // the answer's Mcp-Session-Id
  std::string error_body;     // the body of an answer >= 300
  bool got_response = false;  // the JSON-RPC response to the request came
  json::value response;       // that response
  std::string last_event_id;  // of the event stream, to resume it
  int retry_ms = 1000;
};

bool IsResponseTo(const json::value& message, const json::value& id) {
  if (!message.is_object()) {
    return false;
  }
  const json::object& o = message.as_object();
  auto it = o.find("id");
  return !o.contains("method") && it != o.end() && it->value() == id &&
         (o.contains("result") || o.contains("error"));
}

json::value ErrorMessage(const json::value& id, int code, const std::string& message,
                         json::value data = nullptr) {
  json::object error{{"code", code}, {"message", message}};
  if (!data.is_null()) {
    error["data"] = std::move(data);
  }
  return json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
}

// One bridge between this process's stdin/stdout and a server's /mcp. Threads take turns at
// reading stdin (leader and followers): the thread that read a request sends it itself, and
// makes another thread the reader as soon as the next line is there while it waits for the
// server. So a long tools/call holds up neither a ping nor the client's answer to a question
// the server asked meanwhile, and a quick call costs no switch between threads. Writes to
// stdout are serialized by out_mu_; the session by session_mu_.
class Bridge {
 public:
  Bridge(Profile profile, std::chrono::microseconds spin)
      : profile_(std::move(profile)), spin_(spin) {}
  Bridge(const Bridge&) = delete;
  Bridge& operator=(const Bridge&) = delete;

  int Run() {
    // A client that closes its end of the pipe must not kill us in the middle of a write.
    ::signal(SIGPIPE, SIG_IGN);
    if (profile_.api_key.empty()) {
      Log("no API key configured: run `kiln login` or set KILN_API_KEY; every request will be "
          "answered with this error");
    } else {
      Log("bridging stdio to " + profile_.url + "/mcp");
    }
    Serve();
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(lead_mu_);
      threads.swap(threads_);  // none starts after the end of input
    }
    for (std::thread& t : threads) {
      t.join();  // the requests in flight are answered first
    }
    EndSession();
    return kOk;
  }

 private:
  void Emit(const json::value& message) {
    std::string text = json::serialize(message);
    text += '\n';
    std::lock_guard lock(out_mu_);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  }

  // Runs on every bridge thread: waits to be the reader, reads lines and handles them until one
  // is a request, which it sends after handing the reading to another thread. Returns at the
  // end of input.
  void Serve() {
    std::unique_lock lock(lead_mu_);
    for (;;) {
      ++waiting_;
      lead_cv_.wait(lock, [&] { return !reading_ || eof_; });
      --waiting_;
      if (eof_) {
        return;
      }
      reading_ = true;
      lock.unlock();
      bool leading = true;
      while (leading) {
        std::string line;
        if (!ReadLine(&line)) {
          lock.lock();
          eof_ = true;
          reading_ = false;
          lead_cv_.notify_all();
          return;
        }
        Dispatch(std::move(line), &leading);
      }
      lock.lock();
    }
  }

  // The next non-blank line of stdin, without its line end; false at its end. Reads the fd
  // itself (not through stdio's buffer) so that a line waiting in in_ is known to be there.
  bool ReadLine(std::string* line) {
    for (;;) {
      size_t nl = in_.find('\n');
      if (nl == std::string::npos) {
        char buf[65536];
        // The client's next message often follows the last answer closely: look for it
        // without sleeping for a moment first (see kDefaultSpinUs).
        pollfd p{STDIN_FILENO, POLLIN, 0};
        for (auto until = std::chrono::steady_clock::now() + spin_;
             std::chrono::steady_clock::now() < until && ::poll(&p, 1, 0) == 0;) {
        }
        ssize_t n = ::read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n <= 0) {
          if (in_.empty()) {
            return false;
          }
          nl = in_.size();  // a last line without its line end
          in_ += '\n';
        } else {
          in_.append(buf, static_cast<size_t>(n));
          continue;
        }
      }
      line->assign(in_, 0, nl);
      in_.erase(0, nl + 1);
      while (!line->empty() && line->back() == '\r') {
        line->pop_back();
      }
      if (line->find_first_not_of(" \t") != std::string::npos) {
        return true;
      }
    }
  }

  // Lets another thread read stdin, starting one when none waits.
  void HandOffReading() {
    std::lock_guard lock(lead_mu_);
    reading_ = false;
    if (waiting_ == 0 && threads_.size() < kMaxThreads) {
      threads_.emplace_back([this] { Serve(); });
    }
    lead_cv_.notify_one();
  }

  // Handles one line. For a request (but initialize), the reading of stdin may go to another
  // thread meanwhile (HandOffReading); *leading then turns false. Everything else is handled
  // while this thread still reads, in order.
  void Dispatch(std::string line, bool* leading) {
    auto parsed = ParseJson(line);
    if (!parsed.ok()) {
      Emit(ErrorMessage(nullptr, kParseError, "parse error: " + parsed.status().message()));
      return;
    }
    if (!parsed->is_object()) {
      Emit(ErrorMessage(nullptr, kInvalidRequest,
                        parsed->is_array() ? "batches are not supported: send one message a line"
                                           : "a JSON-RPC message is a JSON object"));
      return;
    }
    json::object& msg = parsed->as_object();
    auto method = msg.find("method");
    auto id = msg.find("id");
    bool is_request = method != msg.end() && id != msg.end();
    std::string name = method != msg.end() && method->value().is_string()
                           ? std::string(method->value().as_string())
                           : std::string();
    if (profile_.api_key.empty()) {
      if (is_request) {
        Emit(ErrorMessage(id->value(), kAuthError,
                          "no API key configured for the Kiln server at " + profile_.url +
                              ": run `kiln login` or set KILN_API_KEY in this MCP server's env"));
      }
      return;
    }
    if (name == "initialize" && is_request) {
      // On this thread: what the client sends next needs the session this creates.
      Initialize(msg, line);
      return;
    }
    if (!is_request) {
      // Notifications and the client's answers are answered at once (202); sending them in
      // order keeps notifications/initialized ahead of the requests after it.
      if (name == "notifications/initialized") {
        std::lock_guard lock(session_mu_);
        client_initialized_ = true;
      }
      Exchange x = Deliver(line, nullptr, kQuickTimeout);
      if (x.status != 200 && x.status != 202) {
        Log((name.empty() ? std::string("the answer to a server request") : name) +
            " was not delivered: " + Describe(x));
      }
      return;
    }
    json::value request_id = id->value();
    // The reading goes to another thread at once when the next line is already here, else
    // only if one comes while the server works on this request (Call watches stdin): a
    // quick call then costs no thread switch at all.
    bool handed_off = false;
    std::function<void()> hand_off = [&] {
      if (!handed_off) {
        handed_off = true;
        HandOffReading();
      }
    };
    if (in_.find('\n') != std::string::npos) {
      hand_off();
    }
    t_hand_off = &hand_off;
    Exchange x = Deliver(line, &request_id, kCallTimeout);
    t_hand_off = nullptr;
    if (!x.got_response) {
      Emit(Failure(request_id, x));
    }
    *leading = !handed_off;
  }

  void Initialize(const json::object& msg, const std::string& line) {
    {
      std::lock_guard lock(session_mu_);
      auto params = msg.find("params");
      init_params_ = params != msg.end() ? params->value() : json::object();
    }
    const json::value& id = msg.at("id");
    Exchange x = Call("POST", line, Session{}, &id, true, kQuickTimeout, "");
    if (!x.got_response) {
      Emit(Failure(id, x));
      return;
    }
    Adopt(x);
  }

  // Takes the session an initialize answer created.
  bool Adopt(const Exchange& x) {
    const json::value& result = At(x.response, "result");
    if (!result.is_object() || x.session_id.empty()) {
      return false;
    }
    std::lock_guard lock(session_mu_);
    session_.id = x.session_id;
    session_.version = S(result, "protocolVersion");
    return true;
  }

  Session Current() {
    std::lock_guard lock(session_mu_);
    return session_;
  }

  // A new session after the server forgot `stale` (it restarted, or the session expired), with
  // the client's own initialize params, so the client does not notice. Several threads may
  // find the session gone at once: the first makes the new one, the others take it.
  Session Reinitialize(const std::string& stale) {
    std::lock_guard reinit(reinit_mu_);
    json::value params;
    bool initialized;
    {
      std::lock_guard lock(session_mu_);
      if (session_.id != stale || init_params_.is_null()) {
        return session_;
      }
      params = init_params_;
      initialized = client_initialized_;
    }
    json::value id(json::string("kiln-mcp-reinitialize-" + std::to_string(++reinitializations_)));
    std::string body = json::serialize(
        json::object{{"jsonrpc", "2.0"}, {"id", id}, {"method", "initialize"}, {"params", params}});
    Exchange x = Call("POST", body, Session{}, &id, false, kQuickTimeout, "");
    if (!x.got_response || !Adopt(x)) {
      Log(std::string(stale.empty() ? "no MCP session could be started: "
                                    : "the server forgot the MCP session and a new one could "
                                      "not be started: ") +
          Describe(x));
      return Current();
    }
    Log(stale.empty() ? "started an MCP session"
                      : "the server forgot the MCP session (restarted?): started a new one");
    Session fresh = Current();
    if (initialized) {
      Exchange n = Call("POST", R"({"jsonrpc":"2.0","method":"notifications/initialized"})", fresh,
                        nullptr, false, kQuickTimeout, "");
      if (n.status != 202 && n.status != 200) {
        Log("notifications/initialized was not delivered: " + Describe(n));
      }
    }
    return fresh;
  }

  // Sends one message of the client's, forwards what comes back, and when it is a request,
  // makes sure its response comes: a new session when the server forgot ours (404), a
  // resumed event stream when one broke off before the response.
  Exchange Deliver(const std::string& text, const json::value* id,
                   std::chrono::milliseconds timeout) {
    Session session = Current();
    bool can_reinitialize;
    {
      std::lock_guard lock(session_mu_);
      can_reinitialize = !init_params_.is_null();
    }
    if (session.id.empty() && can_reinitialize) {
      // initialize failed earlier (server down?): try again now that the client goes on.
      session = Reinitialize("");
    }
    Exchange x = Call("POST", text, session, id, true, timeout, "");
    if (x.status == 404 && !session.id.empty() && can_reinitialize) {
      session = Reinitialize(session.id);
      x = Call("POST", text, session, id, true, timeout, "");
    }
    int tries = 0;
    while (id != nullptr && !x.got_response && !x.last_event_id.empty() &&
           (x.status == 200 || x.status == 0) && tries < kResumeTries) {
      std::this_thread::sleep_for(std::chrono::milliseconds(std::clamp(x.retry_ms, 0, 10'000)));
      Exchange r = Call("GET", "", Current(), id, true, timeout, x.last_event_id);
      tries = r.last_event_id != x.last_event_id ? 0 : tries + 1;
      if (r.got_response || r.status >= 300) {
        return r;
      }
      r.retry_ms = x.retry_ms;
      x = std::move(r);
    }
    return x;
  }

  // One HTTP exchange with /mcp: POST `body`, or with `last_event_id`, GET to resume a
  // stream. Every JSON-RPC message of the answer goes to stdout when `emit`; the one that
  // answers `id` ends the exchange.
  Exchange Call(const std::string& method, const std::string& body, const Session& session,
                const json::value* id, bool emit, std::chrono::milliseconds timeout,
                const std::string& last_event_id) {
    http::ClientRequest req;
    req.method = method;
    req.url = profile_.url + "/mcp";
    req.timeout = timeout;
    req.headers.emplace_back("authorization", "Bearer " + profile_.api_key);
    if (method == "POST") {
      req.body = body;
      req.headers.emplace_back("content-type", "application/json");
      req.headers.emplace_back("accept", "application/json, text/event-stream");
    } else {
      req.headers.emplace_back("accept", "text/event-stream");
      req.headers.emplace_back("last-event-id", last_event_id);
    }
    if (!session.id.empty()) {
      req.headers.emplace_back("mcp-session-id", session.id);
    }
    if (!session.version.empty()) {
      req.headers.emplace_back("mcp-protocol-version", session.version);
    }

    Exchange x;
    auto take = [&](json::value message) {  // one JSON-RPC message; false: it was the answer
      bool answer = id != nullptr && IsResponseTo(message, *id);
      if (emit) {
        Emit(message);
      }
      if (answer) {
        x.got_response = true;
        x.response = std::move(message);
      }
      return !answer;
    };
    // The body of a success is either one JSON message or an event stream. The client hands
    // it over before the headers can be read, so the first character tells: JSON starts
    // with '{' or '[', an event stream never does.
    enum class Body { kUnknown, kJson, kEvents } kind = Body::kUnknown;
    std::string json_text;
    EventParser events(last_event_id);
    auto on_data = [&](const std::string& data) {
      if (data.empty()) {
        return true;  // a priming event: only an id to resume from
      }
      auto message = ParseJson(data);
      if (!message.ok()) {
        Log("the server sent an event that is not JSON: " + message.status().message());
        return true;
      }
      return take(std::move(*message));
    };
    req.on_body = [&](std::string_view piece) {
      if (kind == Body::kUnknown) {
        size_t first = piece.find_first_not_of(" \t\r\n");
        if (first == std::string_view::npos) {
          json_text.append(piece);  // whitespace only so far: decide with the next piece
          return true;
        }
        kind = piece[first] == '{' || piece[first] == '[' ? Body::kJson : Body::kEvents;
        if (kind == Body::kEvents && !json_text.empty()) {
          events.Feed(json_text, on_data);
          json_text.clear();
        }
      }
      if (kind == Body::kJson) {
        json_text.append(piece);
        return true;
      }
      return events.Feed(piece, on_data);
    };
    // One kept-alive connection per thread: a new connection per message would cost the
    // bridge and the server more than the call itself.
    thread_local http::ClientConnection connection;
    req.spin = spin_;
    if (t_hand_off != nullptr) {
      req.interrupt_fd = STDIN_FILENO;
      req.on_interrupt = *t_hand_off;
    }
    auto res = connection.Fetch(req);
    x.last_event_id = events.last_event_id();
    x.retry_ms = events.retry_ms();
    if (!res.ok()) {
      x.failure = res.status();
      return x;
    }
    x.status = res->status;
    x.session_id = std::string(res->Header("mcp-session-id"));
    if (x.status >= 300) {
      x.error_body = std::move(res->body);
      return x;
    }
    if (kind == Body::kJson) {
      auto parsed = ParseJson(json_text);
      if (!parsed.ok()) {
        Log("the server's answer is not JSON: " + parsed.status().message());
      } else if (parsed->is_array()) {
        for (json::value& m : parsed->as_array()) {
          take(std::move(m));
        }
      } else {
        take(std::move(*parsed));
      }
    }
    return x;
  }

  // What went wrong with an exchange, in words, for the log.
  std::string Describe(const Exchange& x) {
    if (x.status == 0) {
      return x.failure.ok() ? "no answer" : x.failure.message();
    }
    auto body = ParseJson(x.error_body);
    if (body.ok()) {
      const json::value& error = At(*body, "error");
      if (error.is_object()) {
        return "HTTP " + std::to_string(x.status) + ": " + S(error, "message");
      }
    }
    return "HTTP " + std::to_string(x.status);
  }

  // The JSON-RPC error that answers request `id` when the exchange brought no response, with a
  // message that says what to do: the MCP client shows it to its user.
  json::value Failure(const json::value& id, const Exchange& x) {
    const std::string& url = profile_.url;
    if (x.status == 0) {
      const Status& f = x.failure;
      if (f.error_code() == "CONNECT_FAILED" || f.error_code() == "RESOLVE_FAILED") {
        return ErrorMessage(id, kInternalError,
                            "cannot reach the Kiln server at " + url +
                                ": start it with `kiln server`, or set KILN_URL (" + f.message() +
                                ")");
      }
      std::string text = f.ok() ? "the Kiln server at " + url + " sent no answer" : f.message();
      if (!f.hint().empty()) {
        text += ": " + f.hint();
      }
      return ErrorMessage(id, kInternalError, text);
    }
    if (x.status < 300) {
      return ErrorMessage(
          id, kInternalError,
          "the Kiln server at " + url + " ended the answer without a response: retry the request");
    }
    // The server's own JSON-RPC error, when it sent one, answers the request (it may carry
    // a null id: the server refused the message before reading it).
    json::value data;
    std::string message, hint;
    int code = kInternalError;
    if (auto body = ParseJson(x.error_body); body.ok()) {
      const json::value& error = At(*body, "error");
      if (error.is_object()) {
        code = static_cast<int>(Num(At(error, "code")));
        message = S(error, "message");
        data = At(error, "data");
        hint = data.is_object() ? GetString(data.as_object(), "hint") : std::string();
      }
    }
    if (x.status == 401) {
      return ErrorMessage(id, kAuthError,
                          "the Kiln server at " + url + " refused the API key" +
                              (message.empty() ? "" : " (" + message + ")") +
                              ": run `kiln login` or set KILN_API_KEY in this MCP server's env",
                          data);
    }
    if (message.empty()) {
      std::string text = "the Kiln server at " + url + " answered HTTP " +
                         std::to_string(x.status) + " to " + url + "/mcp";
      if (x.status == 404 || x.status == 405 || x.status == 501) {
        text += ": this server has no MCP endpoint; upgrade it, or check KILN_URL";
      } else {
        text += ": check the server's log";
      }
      return ErrorMessage(id, x.status == 403 ? kAuthError : kInternalError, text);
    }
    if (!hint.empty() && message.find(hint) == std::string::npos) {
      message += ": " + hint;
    }
    return ErrorMessage(id, code == 0 ? kInternalError : code, message, data);
  }

  void EndSession() {
    Session s = Current();
    if (s.id.empty()) {
      return;
    }
    http::ClientRequest req;
    req.method = "DELETE";
    req.url = profile_.url + "/mcp";
    req.timeout = kDeleteTimeout;
    req.headers.emplace_back("authorization", "Bearer " + profile_.api_key);
    req.headers.emplace_back("mcp-session-id", s.id);
    if (!s.version.empty()) {
      req.headers.emplace_back("mcp-protocol-version", s.version);
    }
    auto res = http::Fetch(req);
    if (!res.ok()) {
      Log("could not end the MCP session: " + res.status().message());
    }
  }

  const Profile profile_;
  const std::chrono::microseconds spin_;
  // Leader and followers (Serve): reading_ while a thread reads stdin; waiting_ threads wait
  // to be the reader; threads_ are all but the first (Run's own), started on demand.
  static constexpr size_t kMaxThreads = 256;
  std::mutex lead_mu_;
  std::condition_variable lead_cv_;
  bool reading_ = false;
  bool eof_ = false;
  int waiting_ = 0;
  std::vector<std::thread> threads_;
  std::string in_;  // read from stdin, not yet a line: the reading thread's only
  // While a thread that still reads stdin sends a request: what hands the reading over.
  static thread_local std::function<void()>* t_hand_off;

  std::mutex out_mu_;  // one line at a time on stdout

  std::mutex reinit_mu_;  // one re-initialization at a time
  int reinitializations_ = 0;
  std::mutex session_mu_;
  Session session_;
  json::value init_params_;          // the client's initialize params; null before it
  bool client_initialized_ = false;  // the client sent notifications/initialized
};

thread_local std::function<void()>* Bridge::t_hand_off = nullptr;

// ---- kiln mcp config ----

std::string SelfPath() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("kiln") : self.string();
}

// `text` as a TOML basic string: JSON's escapes are all valid TOML escapes.
std::string TomlString(const std::string& text) { return json::serialize(json::value(text)); }

int PrintConfig(const Output& out, const std::string& client, const Profile& p) {
  if (client != "claude" && client != "cursor" && client != "codex") {
    return UsageError(out, "unknown MCP client \"" + client + "\"",
                      "use --client claude, --client cursor or --client codex");
  }
  if (p.api_key.empty()) {
    return ReportError(
        out, Status::Unauthenticated("NOT_LOGGED_IN", "no API key configured to put in the config",
                                     "run `kiln login`, set KILN_API_KEY, or pass --api-key"));
  }
  std::string self = SelfPath();
  if (client == "codex") {
    std::printf("[mcp_servers.kiln]\ncommand = %s\nargs = [\"mcp\"]\n", TomlString(self).c_str());
    std::printf("env = { KILN_URL = %s, KILN_API_KEY = %s }\n", TomlString(p.url).c_str(),
                TomlString(p.api_key).c_str());
    std::fprintf(stderr, "# add this to ~/.codex/config.toml\n");
    return kOk;
  }
  json::object server{{"command", self},
                      {"args", json::array{"mcp"}},
                      {"env", json::object{{"KILN_URL", p.url}, {"KILN_API_KEY", p.api_key}}}};
  PrintJson(json::object{{"mcpServers", json::object{{"kiln", std::move(server)}}}});
  if (client == "claude") {
    std::fprintf(stderr,
                 "# merge this into claude_desktop_config.json (Claude Desktop) or .mcp.json "
                 "(Claude Code)\n");
  } else {
    std::fprintf(stderr, "# merge this into ~/.cursor/mcp.json (or .cursor/mcp.json)\n");
  }
  return kOk;
}

struct Flags {
  std::string url;
  std::string api_key;
  std::string client;
  int spin_us = kDefaultSpinUs;
};

Profile ProfileWith(const Flags& f) {
  Profile p = LoadProfile();
  if (!f.url.empty()) {
    p.url = f.url;
    while (!p.url.empty() && p.url.back() == '/') {
      p.url.pop_back();
    }
  }
  if (!f.api_key.empty()) {
    p.api_key = f.api_key;
  }
  return p;
}

}  // namespace

void AddMcpCommands(CLI::App& app, const bool& json_flag, int& code) {
  auto f = std::make_shared<Flags>();
  auto* mcp = app.add_subcommand(
      "mcp", "serve MCP on stdin/stdout for an agent (bridged to the server's /mcp)");
  mcp->add_option("--url", f->url, "server URL (default: the profile, $KILN_URL)");
  mcp->add_option("--api-key,--key", f->api_key, "API key (default: the profile, $KILN_API_KEY)");
  mcp->add_option("--spin-us", f->spin_us,
                  "µs to look for an answer before sleeping: lower latency for a little CPU per "
                  "call; 0 sleeps at once")
      ->check(CLI::Range(0, 100'000))
      ->default_val(kDefaultSpinUs);

  auto* config = mcp->add_subcommand("config", "print the config block that adds Kiln to a client");
  config->add_option("--client", f->client, "claude, cursor or codex")->required();
  config->add_option("--url", f->url, "server URL (default: the profile, $KILN_URL)");
  config->add_option("--api-key,--key", f->api_key,
                     "API key (default: the profile, $KILN_API_KEY)");
  config->callback([f, &json_flag, &code] {
    code = PrintConfig(DetectOutput(json_flag), f->client, ProfileWith(*f));
  });

  mcp->callback([f, config, &code] {
    if (config->parsed()) {
      return;  // `kiln mcp config` ran its own callback
    }
    Bridge bridge(ProfileWith(*f), std::chrono::microseconds(f->spin_us));
    code = bridge.Run();
  });
}

}  // namespace kiln::cli

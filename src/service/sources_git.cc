// FetchUrl and GitCheckout (sources.h): a source downloaded with libcurl or cloned with git.

#include <curl/curl.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"
#include "core/process.h"
#include "service/sources.h"
#include "service/sources_internal.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;

SourceLog OrNoLog(const SourceLog& log) {
  return log ? log : [](std::string_view) {};
}

// ---------------------------------------------------------------------------------------------
// FetchUrl

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Download {
  int fd = -1;
  int64_t written = 0;
  int64_t max_bytes = 0;
  bool too_large = false;
  int write_errno = 0;
};

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* d = static_cast<Download*>(user);
  size_t len = size * count;
  if (d->written + static_cast<int64_t>(len) > d->max_bytes) {
    d->too_large = true;
    return 0;  // aborts the transfer
  }
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::write(d->fd, data + done, len - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      d->write_errno = errno;
      return 0;
    }
    done += static_cast<size_t>(n);
  }
  d->written += static_cast<int64_t>(len);
  return len;
}

// scheme://host[:port]/path of a URL, without credentials or query (which may hold tokens),
// for logs and messages.
std::string ShownUrl(CURLU* u) {
  std::string out;
  char* part = nullptr;
  if (curl_url_get(u, CURLUPART_SCHEME, &part, 0) == CURLUE_OK) {
    out = std::string(part) + "://";
    curl_free(part);
  }
  if (curl_url_get(u, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
    out += part;
    curl_free(part);
  }
  if (curl_url_get(u, CURLUPART_PORT, &part, 0) == CURLUE_OK) {
    out += std::string(":") + part;
    curl_free(part);
  }
  if (curl_url_get(u, CURLUPART_PATH, &part, 0) == CURLUE_OK) {
    out += part;
    curl_free(part);
  }
  return ValidUtf8(out);
}

Status UrlInvalid(std::string message) {
  return Status::InvalidArgument("SOURCE_URL_INVALID", std::move(message),
                                 "give an http:// or https:// URL of a .tar.gz");
}

Status FetchFailed(std::string message, std::string hint = {}) {
  return Status::Unprocessable("SOURCE_FETCH_FAILED", std::move(message), std::move(hint));
}

Status Fetch(const std::string& url, const std::string& dest_file, int64_t max_bytes,
             int64_t timeout_ms, const SourceLog& log) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), &curl_url_cleanup);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return UrlInvalid("\"" + ValidUtf8(url) + "\" is not a URL");
  }
  char* scheme_raw = nullptr;
  curl_url_get(u.get(), CURLUPART_SCHEME, &scheme_raw, 0);
  std::string scheme = scheme_raw != nullptr ? Lower(scheme_raw) : "";
  curl_free(scheme_raw);
  if (scheme != "http" && scheme != "https") {
    return UrlInvalid("a source URL must be http or https, not \"" + ValidUtf8(scheme) + "\"");
  }
  std::string shown = ShownUrl(u.get());

  InitCurlOnce();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) {
    return Status::Internal("curl_easy_init failed");
  }
  Fd file(::open(dest_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (file.get() < 0) {
    return Status::FromErrno("open(\"" + dest_file + "\")", errno);
  }
  Download d;
  d.fd = file.get();
  d.max_bytes = max_bytes;
  char error[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(timeout_ms, 1)));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a multithreaded server
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_bytes));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);

  log("fetching " + shown);
  CURLcode rc = curl_easy_perform(c);
  long http_status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http_status);
  std::string detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_OK:
      break;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
      if (d.write_errno != 0) {
        return Status::FromErrno("write(\"" + dest_file + "\")", d.write_errno);
      }
      return Status(Code::kPayloadTooLarge, "ARCHIVE_TOO_LARGE",
                    shown + " is larger than " + HumanBytes(max_bytes), kTooBigHint);
    case CURLE_HTTP_RETURNED_ERROR:
      return FetchFailed("GET " + shown + ": HTTP " + std::to_string(http_status),
                         "check that the URL can be downloaded without credentials");
    case CURLE_OPERATION_TIMEDOUT:
      return FetchFailed("GET " + shown + ": timed out after " + std::to_string(timeout_ms) + " ms",
                         "check that the server is reachable from this machine");
    case CURLE_TOO_MANY_REDIRECTS:
      return FetchFailed("GET " + shown + ": more than 5 redirects");
    case CURLE_UNSUPPORTED_PROTOCOL:
      return UrlInvalid("GET " + shown + " redirected to a URL that is not http or https");
    default:
      return FetchFailed("GET " + shown + ": " + ValidUtf8(detail),
                         "check the URL and that the server is reachable from this machine");
  }
  log("fetched " + std::to_string(d.written) + " bytes (HTTP " + std::to_string(http_status) + ")");
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// GitCheckout

// A URL with its credentials ("https://user:token@host/...") taken out, for logs.
std::string RedactUrl(const std::string& repo) {
  size_t scheme = repo.find("://");
  if (scheme == std::string::npos) {
    return repo;
  }
  size_t host = scheme + 3;
  size_t at = repo.find('@', host);
  size_t slash = repo.find('/', host);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) {
    return repo;
  }
  return repo.substr(0, host) + repo.substr(at + 1);
}

class GitRunner {
 public:
  GitRunner(std::string home, int64_t timeout_ms)
      : home_(std::move(home)),
        timeout_ms_(timeout_ms),
        deadline_(std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms)) {
    const char* path = std::getenv("PATH");
    env_ = {"PATH=" + std::string(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin"),
            "HOME=" + home_,
            "GIT_TERMINAL_PROMPT=0",
            "GIT_CONFIG_NOSYSTEM=1",
            "GIT_CONFIG_GLOBAL=/dev/null",
            "GIT_ASKPASS=/bin/false",
            "SSH_ASKPASS=/bin/false",
            "GIT_SSH_COMMAND=ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            "LC_ALL=C"};  // messages in English, which GitError reads
    for (const char* name : {"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                             "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"}) {
      if (const char* v = std::getenv(name)) {
        env_.push_back(std::string(name) + "=" + v);
      }
    }
  }

  Result<ProcessResult> Run(const std::vector<std::string>& args) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ProcessResult r;
      r.timed_out = true;
      r.exit_code = -1;
      return r;
    }
    // Only the transports a deployment may name; ext:: and other remote helpers run
    // arbitrary commands.
    std::vector<std::string> argv = {"git",
                                     "-c",
                                     "protocol.allow=never",
                                     "-c",
                                     "protocol.http.allow=always",
                                     "-c",
                                     "protocol.https.allow=always",
                                     "-c",
                                     "protocol.ssh.allow=always",
                                     "-c",
                                     "protocol.git.allow=always",
                                     "-c",
                                     "protocol.file.allow=always",
                                     "-c",
                                     "advice.detachedHead=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.env = env_;
    options.max_output = 64 * 1024;
    return RunProcess(argv, left, options, "git");
  }

  int64_t timeout_ms() const { return timeout_ms_; }

 private:
  std::string home_;
  int64_t timeout_ms_;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<std::string> env_;
};

Status RefNotFound(const std::string& ref, const std::string& shown) {
  return Status::NotFound("GIT_REF_NOT_FOUND",
                          "no branch, tag or commit " + Quoted(ref) + " in " + shown,
                          "check the ref; leave it empty for the default branch");
}

// What git said, as one of GIT_REPO_NOT_FOUND, GIT_REF_NOT_FOUND or GIT_FAILED.
Status GitError(const ProcessResult& r, const std::string& repo, const std::string& shown,
                const std::string& ref, int64_t timeout_ms) {
  if (r.timed_out) {
    return Status::Unprocessable(
        "GIT_FAILED", "git timed out after " + std::to_string(timeout_ms) + " ms on " + shown,
        "check that the repository is reachable; for a very large repository deploy a tarball");
  }
  std::string output = r.output;
  if (shown != repo) {
    for (size_t at; (at = output.find(repo)) != std::string::npos;) {
      output.replace(at, repo.size(), shown);
    }
  }
  std::string lower = Lower(output);
  auto has = [&lower](std::string_view s) { return lower.find(s) != std::string::npos; };
  if ((has("remote branch") && has("not found")) || has("couldn't find remote ref") ||
      has("unknown revision") || has("did not match any") || has("reference is not a tree") ||
      has("not our ref") || has("invalid reference")) {
    return RefNotFound(ref, shown);
  }
  if (has("repository not found") || has("does not exist") || has("not a git repository") ||
      has("does not appear to be a git repository") ||
      (has("repository '") && has("' not found"))) {
    return Status::NotFound("GIT_REPO_NOT_FOUND", "git repository " + shown + " not found",
                            "check the URL; a private repository needs credentials in it "
                            "(https://TOKEN@host/owner/repo.git)");
  }
  // The first "fatal:" or "error:" line says the most; else the last line.
  std::string said = r.LastLine();
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("fatal:", 0) == 0 || line.rfind("error:", 0) == 0) {
      said = line;
      break;
    }
  }
  return Status::Unprocessable("GIT_FAILED", "git failed on " + shown + ": " + ValidUtf8(said),
                               "check that the repository can be cloned from this machine");
}

bool Succeeded(const Result<ProcessResult>& r) {
  return r.ok() && !r->timed_out && r->exit_code == 0;
}

Status Checkout(GitRunner& git, const std::string& repo, const std::string& shown,
                const std::string& ref, const std::string& dest, std::string* commit,
                const SourceLog& log) {
  auto fail = [&](const Result<ProcessResult>& r) {
    return r.ok() ? GitError(*r, repo, shown, ref, git.timeout_ms()) : r.status();
  };
  auto clean = [&dest] {
    std::error_code ec;
    fs::remove_all(dest, ec);
  };
  bool done = false;
  if (!IsHex(ref, 40, 64)) {
    // Branches and tags: only the last commit is fetched.
    std::vector<std::string> args = {"clone", "--quiet", "--depth", "1", "--no-tags"};
    if (!ref.empty()) {
      args.push_back("--branch=" + ref);
    }
    args.insert(args.end(), {"--", repo, dest});
    auto r = git.Run(args);
    if (!Succeeded(r)) {
      Status s = fail(r);
      if (s.error_code() != "GIT_REF_NOT_FOUND" || !IsHex(ref, 4, 64)) {
        return s;
      }
      clean();
    } else {
      done = true;
    }
  } else {
    // A full commit id: servers let a shallow fetch name it (GitHub, git >= 2.5 over v2).
    auto r = git.Run({"init", "--quiet", "--", dest});
    if (!Succeeded(r)) {
      return fail(r);
    }
    r = git.Run({"-C", dest, "fetch", "--quiet", "--depth", "1", "--", repo, ref});
    if (Succeeded(r)) {
      r = git.Run({"-C", dest, "checkout", "--quiet", "--detach", "FETCH_HEAD"});
      if (!Succeeded(r)) {
        return fail(r);
      }
      done = true;
    } else {
      Status s = fail(r);
      if (s.error_code() == "GIT_REPO_NOT_FOUND") {
        return s;
      }
      clean();
    }
  }
  if (!done) {
    // An abbreviated commit id, or a server that refused the shallow fetch: everything.
    log("\"" + ref + "\" is not a branch or tag: cloning the whole history to find the commit");
    auto r = git.Run({"clone", "--quiet", "--no-checkout", "--", repo, dest});
    if (!Succeeded(r)) {
      return fail(r);
    }
    r = git.Run({"-C", dest, "rev-parse", "--verify", "--quiet", ref + "^{commit}"});
    if (r.ok() && !r->timed_out && r->exit_code == 1) {
      return RefNotFound(ref, shown);
    }
    if (!Succeeded(r)) {
      return fail(r);
    }
    r = git.Run({"-C", dest, "checkout", "--quiet", "--detach", Trim(r->output)});
    if (!Succeeded(r)) {
      return fail(r);
    }
  }
  auto head = git.Run({"-C", dest, "rev-parse", "HEAD"});
  if (!Succeeded(head)) {
    return fail(head);
  }
  *commit = Trim(head->output);
  std::error_code ec;
  fs::remove_all(fs::path(dest) / ".git", ec);
  if (ec) {
    return Status::Internal("remove " + dest + "/.git: " + ec.message());
  }
  log("checked out " + *commit);
  return Status::Ok();
}

}  // namespace

Status FetchUrl(const std::string& url, const std::string& dest_file, int64_t max_bytes,
                int64_t timeout_ms, const SourceLog& log) {
  Status s = Fetch(url, dest_file, max_bytes, timeout_ms, OrNoLog(log));
  if (!s.ok()) {
    ::unlink(dest_file.c_str());
  }
  return s;
}

Status GitCheckout(const std::string& repo, const std::string& ref, const std::string& dest,
                   int64_t timeout_ms, std::string* commit, const SourceLog& log) {
  if (repo.empty() || repo.front() == '-' || repo.find("::") != std::string::npos) {
    return Status::InvalidArgument("SOURCE_URL_INVALID",
                                   "\"" + ValidUtf8(repo) + "\" is not a git repository URL",
                                   "give an https://, ssh://, git@host:path URL or a path");
  }
  if ((!ref.empty() && ref.front() == '-') ||
      std::any_of(ref.begin(), ref.end(), [](unsigned char c) {
        return c <= ' ' || c == 0x7f || c == '~' || c == '^' || c == ':' || c == '\\';
      })) {
    return Status::NotFound("GIT_REF_NOT_FOUND",
                            Quoted(ref) + " is not a branch, tag or commit name",
                            "leave the ref empty for the default branch");
  }
  std::string shown = RedactUrl(repo);
  std::string source = repo;
  // A path (no scheme, no scp-like host:): it must exist; made absolute since some steps
  // run in `dest`.
  bool local = repo.find("://") == std::string::npos &&
               (repo.front() == '/' || repo.front() == '.' || repo.find(':') == std::string::npos);
  if (local) {
    std::error_code ec;
    if (!fs::is_directory(repo, ec)) {
      return Status::NotFound("GIT_REPO_NOT_FOUND", "no git repository at " + Quoted(repo),
                              "give the path of a git repository or a URL");
    }
    source = fs::absolute(repo, ec).string();
  }
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dest, ec))) {
    return Status::Internal("git checkout: " + dest + " already exists");
  }
  char home_template[] = "/tmp/kiln-git-XXXXXX";
  if (::mkdtemp(home_template) == nullptr) {
    return Status::FromErrno("mkdtemp(\"/tmp/kiln-git-XXXXXX\")", errno);
  }
  std::string home = home_template;
  OrNoLog(log)("cloning " + shown + (ref.empty() ? "" : " at " + ref));
  GitRunner git(home, timeout_ms);
  Status s = Checkout(git, source, local ? repo : shown, ref, dest, commit, OrNoLog(log));
  fs::remove_all(home, ec);
  if (!s.ok()) {
    fs::remove_all(dest, ec);
  }
  return s;
}

}  // namespace kiln::service

#pragma once
// The one configuration struct (STYLE.md "Configuration"): defaults here, then kiln.toml,
// then command-line flags; validated once by LoadConfig and read-only afterwards.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kiln {

struct Config {
  struct Server {
    std::string listen = "127.0.0.1:8080";  // ADDR:PORT of the one listener; port 0 = any
    std::string data_dir = "./.kiln";       // state, keys, instances (DESIGN.md §7)
    int threads = 0;                        // I/O threads; 0 = one per core
    int64_t body_limit_bytes = 10 << 20;    // larger request bodies get 413
    int max_header_bytes = 16 << 10;        // larger request heads get 431
    int header_timeout_ms = 10'000;         // time to send a whole request head
    int read_timeout_ms = 30'000;           // time to send a whole body
    int idle_timeout_ms = 60'000;           // keep-alive connection with no request
    int shutdown_grace_ms = 10'000;         // requests in flight get this long on SIGTERM
    std::string dashboard_dir;              // the built dashboard; "" = web/ beside the binary
  } server;

  struct Limits {
    double rate_per_second = 50;  // sustained requests per second per API key
    int rate_burst = 100;         // bucket size: requests allowed at once
  } limits;

  struct Auth {
    int jwt_default_ttl_seconds = 3600;  // POST /v1/auth/token without expiresIn
    int jwt_max_ttl_seconds = 86400;     // longest expiresIn accepted
  } auth;

  struct Runtime {
    std::string engine;     // "runc", "crun", or "" to pick (crun on pure cgroup v2 hosts)
    std::string init_path;  // kiln-init; "" = beside the kiln binary
    std::string debian_mirror = "http://deb.debian.org/debian";  // for template `debian`
  } runtime;

  struct Sandboxes {
    int pool_size = 2;  // started sandboxes kept ready per pooled template; 0 = none
    std::string pool_templates = "base";  // built-ins pooled: "base", "base,debian" or ""
    int default_timeout_seconds = 300;    // lifetime when create does not say
    int max_timeout_seconds = 86400;      // longest lifetime a create or extend may ask
    int default_memory_mb = 512;          // memory limit when create does not say
    int min_memory_mb = 64;               // smallest memory limit accepted
    int max_memory_mb = 16384;            // largest memory limit accepted
    double max_cpus = 8;                  // most cores one sandbox may ask for
    int pids = 1024;                      // process and thread limit per sandbox
    int max_per_workspace = 50;           // live sandboxes per workspace (more: 429)
    int memory_mb_per_workspace = 65536;  // memory of a workspace's live sandboxes (more: 403)
    // Who may open a sandbox port's URL ({port}-{id}.{base_domain}): public (the unguessable
    // id is the secret, as with E2B), workspace (a key or session of its workspace) or token
    // (those, or an access token of the sandbox).
    std::string port_access = "public";
  } sandboxes;

  struct Apps {
    std::string examples_dir;              // starter templates; "" = examples/ beside the binary
    int max_per_workspace = 50;            // apps per workspace (more: 409 APP_LIMIT_REACHED)
    int default_memory_mb = 256;           // memory limit when create does not say
    int max_memory_mb = 16384;             // largest memory limit accepted
    double max_cpus = 8;                   // most cores one app may ask for
    int data_quota_mb = 1024;              // size of each app's /data volume
    int max_data_quota_mb = 65536;         // largest /data volume an app may ask for
    int releases_kept = 5;                 // releases kept on disk per app besides the live one
    int concurrent_builds = 2;             // deployments building at once (more wait: queued)
    int build_timeout_seconds = 900;       // install + build of one deployment
    int health_timeout_seconds = 30;       // a new release must answer within this
    int drain_seconds = 30;                // requests to the old release may finish within this
    int64_t upload_max_bytes = 100 << 20;  // source archives and tarball URLs
    int64_t unpacked_max_bytes = int64_t{1} << 30;  // a source archive, unpacked
    int unpacked_max_entries = 100'000;             // files and directories in one
    int64_t log_max_bytes = 8 << 20;                // runtime log kept per instance before rotating
    int stats_interval_seconds = 10;  // one point of apps' stats history (kept an hour) each
  } apps;

  struct Gateway {
    // Apps answer at {name}.{base_domain}; "localhost" works with no DNS set-up.
    std::string base_domain = "localhost";
    int threads = 32;                // workers for what may block a proxied request (waking an app)
    int connect_timeout_ms = 5'000;  // opening a connection to an app
    int upstream_timeout_ms = 60'000;   // app's response head, and each read of its body
    int websocket_idle_seconds = 3600;  // a WebSocket or other upgraded tunnel with no traffic
    int idle_upstreams = 64;            // keep-alive connections kept per app and I/O thread
    std::string sleep_mode = "freeze";  // what sleepAfterMinutes does: freeze | stop
    int auth_token_ttl_seconds = 300;   // lifetime of the X-Kiln-Auth token given to apps
    int tls_port = 8443;  // HTTPS listener for app hosts and custom domains, same address; 0 = off
    std::string public_ip;       // this machine's public address, for custom domains' A records
    std::string acme_directory;  // ACME directory URL; "" = certificates from the local CA only
    std::string acme_email;      // contact for the ACME account
    std::string acme_ca_file;    // PEM to trust for the ACME server (a test CA such as pebble's)
    int acme_renew_days = 30;    // renew ACME certificates this many days before they expire
  } gateway;

  struct Mcp {
    int session_idle_seconds = 3600;  // an MCP session unused this long is ended
    int max_sessions = 10000;         // beyond this, the least recently used session ends
    int tools_page_size = 100;        // tools per tools/list page (nextCursor for more)
    // Host names (comma-separated) besides localhost, 127.0.0.1, [::1] and base_domain that
    // /mcp accepts in Host and Origin (DNS-rebinding protection): the name the server is
    // reached by, when that is another one.
    std::string allowed_hosts;
  } mcp;

  struct Log {
    std::string level = "info";           // debug | info | warn | error
    std::string format = "json";          // json | text
    bool access_log = false;              // one line per request (off: hot path)
    int access_log_sample_percent = 100;  // of requests to apps logged when access_log is on
  } log;
};

struct ConfigOverrides {
  std::optional<std::string> listen;
  std::optional<std::string> data_dir;
};

// Reads `path` when given (a missing file is an error; unknown keys are errors so typos
// are caught), applies the overrides, validates. Errors name the key and the fix.
Result<Config> LoadConfig(const std::optional<std::string>& path, const ConfigOverrides& flags);
Status ValidateConfig(const Config& config);
// A comma-separated setting's items, without the spaces around them; empty items dropped.
std::vector<std::string> SplitList(std::string_view list);
// sandboxes.pool_templates split on commas.
std::vector<std::string> PooledTemplates(const Config& config);

// "127.0.0.1:8080" -> host, port. IPv6 as "[::1]:8080".
Status SplitHostPort(const std::string& listen, std::string* host, uint16_t* port);

}  // namespace kiln

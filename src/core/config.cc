#include "core/config.h"

#include <fcntl.h>
#include <unistd.h>

#include <toml++/toml.h>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <limits>
#include <string_view>
#include <variant>

#include "core/log.h"

namespace kiln {
namespace {

using FieldPtr = std::variant<std::string*, int*, int64_t*, double*, bool*>;

// One row per key of kiln.toml. The table drives reading the file, the "known keys" hints
// and the range checks, so a new key is added in one place.
struct KeySpec {
  std::string_view section;
  std::string_view name;
  FieldPtr (*field)(Config&);
  // Allowed range for numbers; `min_exclusive` for values that must be strictly positive.
  double min = 0;
  double max = 0;
  bool min_exclusive = false;
  std::string_view meaning = {};  // completes the hint: "between 0 and 256 (0 = one per core)"
};

constexpr int64_t kKiB = 1024;
constexpr int64_t kMiB = 1024 * kKiB;
constexpr int64_t kGiB = 1024 * kMiB;
constexpr int kHourMs = 3600 * 1000;
constexpr int kDaySeconds = 86400;

// std::to_array counts the entries, so a key added here is never left out of the size.
const auto kKeys = std::to_array<KeySpec>({
    {"server", "listen", [](Config& c) -> FieldPtr { return &c.server.listen; }},
    {"server", "data_dir", [](Config& c) -> FieldPtr { return &c.server.data_dir; }},
    {"server", "threads", [](Config& c) -> FieldPtr { return &c.server.threads; }, 0, 256, false,
     "0 = one per core"},
    {"server", "body_limit_bytes", [](Config& c) -> FieldPtr { return &c.server.body_limit_bytes; },
     static_cast<double>(kKiB), static_cast<double>(4 * kGiB), false, "1 KiB to 4 GiB"},
    {"server", "max_header_bytes", [](Config& c) -> FieldPtr { return &c.server.max_header_bytes; },
     static_cast<double>(kKiB), static_cast<double>(kMiB), false, "1 KiB to 1 MiB"},
    {"server", "header_timeout_ms",
     [](Config& c) -> FieldPtr { return &c.server.header_timeout_ms; }, 100, kHourMs, false,
     "milliseconds, 100 ms to 1 h"},
    {"server", "read_timeout_ms", [](Config& c) -> FieldPtr { return &c.server.read_timeout_ms; },
     100, kHourMs, false, "milliseconds, 100 ms to 1 h"},
    {"server", "idle_timeout_ms", [](Config& c) -> FieldPtr { return &c.server.idle_timeout_ms; },
     100, kHourMs, false, "milliseconds, 100 ms to 1 h"},
    {"server", "shutdown_grace_ms",
     [](Config& c) -> FieldPtr { return &c.server.shutdown_grace_ms; }, 0, 10 * 60 * 1000, false,
     "milliseconds, 0 to 10 min"},
    {"server", "dashboard_dir", [](Config& c) -> FieldPtr { return &c.server.dashboard_dir; }},
    {"limits", "rate_per_second", [](Config& c) -> FieldPtr { return &c.limits.rate_per_second; },
     0, 1e6, true, "requests per second per API key"},
    {"limits", "rate_burst", [](Config& c) -> FieldPtr { return &c.limits.rate_burst; }, 1,
     std::numeric_limits<int>::max(), false, "requests allowed at once"},
    {"auth", "jwt_default_ttl_seconds",
     [](Config& c) -> FieldPtr { return &c.auth.jwt_default_ttl_seconds; }, 1, 30 * kDaySeconds,
     false, "seconds, at most auth.jwt_max_ttl_seconds"},
    {"auth", "jwt_max_ttl_seconds",
     [](Config& c) -> FieldPtr { return &c.auth.jwt_max_ttl_seconds; }, 1, 30 * kDaySeconds, false,
     "seconds, 1 s to 30 days"},
    {"runtime", "engine", [](Config& c) -> FieldPtr { return &c.runtime.engine; }},
    {"runtime", "init_path", [](Config& c) -> FieldPtr { return &c.runtime.init_path; }},
    {"runtime", "debian_mirror", [](Config& c) -> FieldPtr { return &c.runtime.debian_mirror; }},
    {"sandboxes", "pool_size", [](Config& c) -> FieldPtr { return &c.sandboxes.pool_size; }, 0, 64,
     false, "started sandboxes kept ready, 0 = none"},
    {"sandboxes", "pool_templates",
     [](Config& c) -> FieldPtr { return &c.sandboxes.pool_templates; }},
    {"sandboxes", "default_timeout_seconds",
     [](Config& c) -> FieldPtr { return &c.sandboxes.default_timeout_seconds; }, 1,
     30 * kDaySeconds, false, "seconds"},
    {"sandboxes", "max_timeout_seconds",
     [](Config& c) -> FieldPtr { return &c.sandboxes.max_timeout_seconds; }, 1, 30 * kDaySeconds,
     false, "seconds"},
    {"sandboxes", "default_memory_mb",
     [](Config& c) -> FieldPtr { return &c.sandboxes.default_memory_mb; }, 16, 1 << 20, false,
     "MiB"},
    {"sandboxes", "min_memory_mb", [](Config& c) -> FieldPtr { return &c.sandboxes.min_memory_mb; },
     16, 1 << 20, false, "MiB"},
    {"sandboxes", "max_memory_mb", [](Config& c) -> FieldPtr { return &c.sandboxes.max_memory_mb; },
     16, 1 << 20, false, "MiB"},
    {"sandboxes", "max_cpus", [](Config& c) -> FieldPtr { return &c.sandboxes.max_cpus; }, 0, 1024,
     true, "cores"},
    {"sandboxes", "pids", [](Config& c) -> FieldPtr { return &c.sandboxes.pids; }, 16, 1 << 22,
     false, "processes and threads"},
    {"sandboxes", "max_per_workspace",
     [](Config& c) -> FieldPtr { return &c.sandboxes.max_per_workspace; }, 1, 100000, false,
     "live sandboxes"},
    {"sandboxes", "memory_mb_per_workspace",
     [](Config& c) -> FieldPtr { return &c.sandboxes.memory_mb_per_workspace; }, 16, 1 << 30, false,
     "MiB"},
    {"sandboxes", "port_access", [](Config& c) -> FieldPtr { return &c.sandboxes.port_access; }},
    {"apps", "examples_dir", [](Config& c) -> FieldPtr { return &c.apps.examples_dir; }},
    {"apps", "max_per_workspace", [](Config& c) -> FieldPtr { return &c.apps.max_per_workspace; },
     1, 100000, false, "apps"},
    {"apps", "default_memory_mb", [](Config& c) -> FieldPtr { return &c.apps.default_memory_mb; },
     16, 1 << 20, false, "MiB"},
    {"apps", "max_memory_mb", [](Config& c) -> FieldPtr { return &c.apps.max_memory_mb; }, 16,
     1 << 20, false, "MiB"},
    {"apps", "max_cpus", [](Config& c) -> FieldPtr { return &c.apps.max_cpus; }, 0, 1024, true,
     "cores"},
    {"apps", "data_quota_mb", [](Config& c) -> FieldPtr { return &c.apps.data_quota_mb; }, 16,
     1 << 24, false, "MiB"},
    {"apps", "max_data_quota_mb", [](Config& c) -> FieldPtr { return &c.apps.max_data_quota_mb; },
     16, 1 << 24, false, "MiB"},
    {"apps", "releases_kept", [](Config& c) -> FieldPtr { return &c.apps.releases_kept; }, 1, 1000,
     false, "releases"},
    {"apps", "concurrent_builds", [](Config& c) -> FieldPtr { return &c.apps.concurrent_builds; },
     1, 64, false, "builds"},
    {"apps", "build_timeout_seconds",
     [](Config& c) -> FieldPtr { return &c.apps.build_timeout_seconds; }, 10, kDaySeconds, false,
     "seconds"},
    {"apps", "health_timeout_seconds",
     [](Config& c) -> FieldPtr { return &c.apps.health_timeout_seconds; }, 1, 3600, false,
     "seconds"},
    {"apps", "drain_seconds", [](Config& c) -> FieldPtr { return &c.apps.drain_seconds; }, 0, 3600,
     false, "seconds"},
    {"apps", "upload_max_bytes", [](Config& c) -> FieldPtr { return &c.apps.upload_max_bytes; },
     1024, 64 * kGiB, false, "bytes"},
    {"apps", "unpacked_max_bytes", [](Config& c) -> FieldPtr { return &c.apps.unpacked_max_bytes; },
     1024, 1024 * kGiB, false, "bytes"},
    {"apps", "unpacked_max_entries",
     [](Config& c) -> FieldPtr { return &c.apps.unpacked_max_entries; }, 1, 100'000'000, false,
     "entries"},
    {"apps", "log_max_bytes", [](Config& c) -> FieldPtr { return &c.apps.log_max_bytes; }, 4096,
     kGiB, false, "bytes"},
    {"apps", "stats_interval_seconds",
     [](Config& c) -> FieldPtr { return &c.apps.stats_interval_seconds; }, 1, 3600, false,
     "seconds"},
    {"gateway", "base_domain", [](Config& c) -> FieldPtr { return &c.gateway.base_domain; }},
    {"gateway", "threads", [](Config& c) -> FieldPtr { return &c.gateway.threads; }, 1, 4096, false,
     "proxy workers"},
    {"gateway", "connect_timeout_ms",
     [](Config& c) -> FieldPtr { return &c.gateway.connect_timeout_ms; }, 1, kHourMs, false, "ms"},
    {"gateway", "upstream_timeout_ms",
     [](Config& c) -> FieldPtr { return &c.gateway.upstream_timeout_ms; }, 1, 24 * kHourMs, false,
     "ms"},
    {"gateway", "websocket_idle_seconds",
     [](Config& c) -> FieldPtr { return &c.gateway.websocket_idle_seconds; }, 1, kDaySeconds, false,
     "seconds"},
    {"gateway", "idle_upstreams", [](Config& c) -> FieldPtr { return &c.gateway.idle_upstreams; },
     0, 4096, false, "connections (0 = no keep-alive to apps)"},
    {"gateway", "sleep_mode", [](Config& c) -> FieldPtr { return &c.gateway.sleep_mode; }},
    {"gateway", "auth_token_ttl_seconds",
     [](Config& c) -> FieldPtr { return &c.gateway.auth_token_ttl_seconds; }, 10, kDaySeconds,
     false, "seconds"},
    {"gateway", "tls_port", [](Config& c) -> FieldPtr { return &c.gateway.tls_port; }, 0, 65535,
     false, "(0 = no HTTPS listener)"},
    {"gateway", "public_ip", [](Config& c) -> FieldPtr { return &c.gateway.public_ip; }},
    {"gateway", "acme_directory", [](Config& c) -> FieldPtr { return &c.gateway.acme_directory; }},
    {"gateway", "acme_email", [](Config& c) -> FieldPtr { return &c.gateway.acme_email; }},
    {"gateway", "acme_ca_file", [](Config& c) -> FieldPtr { return &c.gateway.acme_ca_file; }},
    {"gateway", "acme_renew_days", [](Config& c) -> FieldPtr { return &c.gateway.acme_renew_days; },
     1, 365, false, "days"},
    {"mcp", "session_idle_seconds",
     [](Config& c) -> FieldPtr { return &c.mcp.session_idle_seconds; }, 10, 30 * kDaySeconds, false,
     "seconds"},
    {"mcp", "max_sessions", [](Config& c) -> FieldPtr { return &c.mcp.max_sessions; }, 1,
     10'000'000, false, "sessions"},
    {"mcp", "tools_page_size", [](Config& c) -> FieldPtr { return &c.mcp.tools_page_size; }, 1,
     1000, false, "tools"},
    {"mcp", "allowed_hosts", [](Config& c) -> FieldPtr { return &c.mcp.allowed_hosts; }},
    {"log", "level", [](Config& c) -> FieldPtr { return &c.log.level; }},
    {"log", "format", [](Config& c) -> FieldPtr { return &c.log.format; }},
    {"log", "access_log", [](Config& c) -> FieldPtr { return &c.log.access_log; }},
    {"log", "access_log_sample_percent",
     [](Config& c) -> FieldPtr { return &c.log.access_log_sample_percent; }, 1, 100, false,
     "percent"},
});

constexpr std::array<std::string_view, 9> kSections = {
    "server", "limits", "auth", "runtime", "sandboxes", "apps", "gateway", "mcp", "log"};

Status Invalid(std::string message, std::string hint) {
  return Status::InvalidArgument("CONFIG_INVALID", std::move(message), std::move(hint));
}

std::string FormatNumber(double v) {
  if (std::isfinite(v) && v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : "?";
}

std::string FullName(const KeySpec& spec) {
  return std::string(spec.section) + "." + std::string(spec.name);
}

std::string KnownKeys(std::string_view section) {
  std::string out;
  for (const KeySpec& spec : kKeys) {
    if (spec.section != section) {
      continue;
    }
    if (!out.empty()) {
      out += ", ";
    }
    out += spec.name;
  }
  return out;
}

std::string KnownSections() {
  std::string out;
  for (std::string_view s : kSections) {
    if (!out.empty()) {
      out += ", ";
    }
    out += '[';  // not "[" + std::string(s) + "]": GCC 12 -O3 warns (-Wrestrict, a false alarm)
    out += s;
    out += ']';
  }
  return out;
}

Status CheckRange(const KeySpec& spec, double value) {
  bool low_ok = spec.min_exclusive ? value > spec.min : value >= spec.min;
  // Written so that NaN fails both comparisons and is rejected.
  if (low_ok && value <= spec.max) {
    return Status::Ok();
  }
  std::string hint = spec.min_exclusive
                         ? "set " + FullName(spec) + " above " + FormatNumber(spec.min) +
                               " and at most " + FormatNumber(spec.max)
                         : "set " + FullName(spec) + " between " + FormatNumber(spec.min) +
                               " and " + FormatNumber(spec.max);
  if (!spec.meaning.empty()) {
    hint += " (" + std::string(spec.meaning) + ")";
  }
  return Invalid(FullName(spec) + " = " + FormatNumber(value) + " is out of range", hint);
}

std::string_view TypeName(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// The default value of a key, written as TOML: the example in a wrong-type hint.
std::string DefaultAsToml(const KeySpec& spec) {
  Config defaults;
  FieldPtr field = spec.field(defaults);
  if (auto* s = std::get_if<std::string*>(&field)) {
    return "\"" + **s + "\"";
  }
  if (auto* b = std::get_if<bool*>(&field)) {
    return **b ? "true" : "false";
  }
  if (auto* i = std::get_if<int*>(&field)) {
    return std::to_string(**i);
  }
  if (auto* l = std::get_if<int64_t*>(&field)) {
    return std::to_string(**l);
  }
  return FormatNumber(*std::get<double*>(field));
}

Status WrongType(std::string_view file, const KeySpec& spec, std::string_view expected,
                 const toml::node& node) {
  return Invalid(
      std::string(file) + ": " + FullName(spec) + " must be " + std::string(expected) + ", not " +
          std::string(TypeName(node)),
      "write it like the default: " + std::string(spec.name) + " = " + DefaultAsToml(spec));
}

// Copies one TOML value into its field, checking the type (and, for integers, that it fits
// the field before it is narrowed).
Status Apply(std::string_view file, const KeySpec& spec, const toml::node& node, Config* config) {
  FieldPtr field = spec.field(*config);
  if (auto* s = std::get_if<std::string*>(&field)) {
    const auto* v = node.as_string();
    if (v == nullptr) {
      return WrongType(file, spec, "a string", node);
    }
    **s = v->get();
    return Status::Ok();
  }
  if (auto* b = std::get_if<bool*>(&field)) {
    const auto* v = node.as_boolean();
    if (v == nullptr) {
      return WrongType(file, spec, "a boolean", node);
    }
    **b = v->get();
    return Status::Ok();
  }
  if (auto* d = std::get_if<double*>(&field)) {
    if (const auto* i = node.as_integer()) {
      **d = static_cast<double>(i->get());
    } else if (const auto* f = node.as_floating_point()) {
      **d = f->get();
    } else {
      return WrongType(file, spec, "a number", node);
    }
    return CheckRange(spec, **d);
  }
  const auto* v = node.as_integer();
  if (v == nullptr) {
    return WrongType(file, spec, "an integer", node);
  }
  int64_t value = v->get();
  KILN_RETURN_IF_ERROR(CheckRange(spec, static_cast<double>(value)));
  if (auto* i = std::get_if<int*>(&field)) {
    **i = static_cast<int>(value);
  } else {
    *std::get<int64_t*>(field) = value;
  }
  return Status::Ok();
}

Status ApplyTable(std::string_view file, const toml::table& root, Config* config) {
  for (auto&& [section_key, section_node] : root) {
    std::string_view section = section_key.str();
    bool known = false;
    for (std::string_view s : kSections) {
      known = known || s == section;
    }
    if (!known) {
      if (!section_node.is_table()) {
        return Invalid(std::string(file) + ": unknown key " + std::string(section),
                       "every key belongs under a section header: " + KnownSections());
      }
      return Invalid(std::string(file) + ": unknown section [" + std::string(section) + "]",
                     "check the spelling; known sections: " + KnownSections());
    }
    const toml::table* table = section_node.as_table();
    if (table == nullptr) {
      return Invalid(std::string(file) + ": " + std::string(section) + " must be a table, not " +
                         std::string(TypeName(section_node)),
                     "write it as a section header: [" + std::string(section) + "]");
    }
    for (auto&& [key, node] : *table) {
      const KeySpec* spec = nullptr;
      for (const KeySpec& s : kKeys) {
        if (s.section == section && s.name == key.str()) {
          spec = &s;
        }
      }
      if (spec == nullptr) {
        return Invalid(std::string(file) + ": unknown key " + std::string(section) + "." +
                           std::string(key.str()),
                       "check the spelling; known keys in [" + std::string(section) +
                           "]: " + KnownKeys(section));
      }
      KILN_RETURN_IF_ERROR(Apply(file, *spec, node, config));
    }
  }
  return Status::Ok();
}

Result<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    Status status = Status::FromErrno("config file " + path, err);
    return Invalid(status.message(), err == ENOENT
                                         ? "create the file or pass the path of an existing one"
                                         : "check the file's permissions");
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Status::FromErrno("read(\"" + path + "\")", err);
    }
    if (n == 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

Status FromParseError(const std::string& path, const toml::parse_error& err) {
  const auto& where = err.source().begin;
  return Invalid(path + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) +
                     ": " + std::string(err.description()),
                 "fix the TOML syntax at that line");
}

Status LoadFile(const std::string& path, Config* config) {
  KILN_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
#if TOML_EXCEPTIONS
  // toml++ reports syntax errors by throwing; they must not leave config loading.
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& err) {
    return FromParseError(path, err);
  }
#else
  toml::parse_result parsed = toml::parse(text, path);
  if (!parsed) return FromParseError(path, parsed.error());
  const toml::table& root = parsed.table();
#endif
  return ApplyTable(path, root, config);
}

}  // namespace

Status SplitHostPort(const std::string& listen, std::string* host, uint16_t* port) {
  auto bad = [&](std::string_view why) {
    return Invalid("listen address \"" + listen + "\" " + std::string(why),
                   "use HOST:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:0 or [::1]:8080");
  };
  std::string_view text = listen;
  std::string_view h;
  std::string_view p;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return bad("has no closing ']'");
    }
    h = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.starts_with(':')) {
      return bad("has no :PORT after the IPv6 address");
    }
    p = rest.substr(1);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return bad("has no :PORT");
    }
    h = text.substr(0, colon);
    p = text.substr(colon + 1);
    if (h.find(':') != std::string_view::npos) {
      return bad("needs brackets around an IPv6 host");
    }
  }
  if (h.empty()) {
    return bad("has an empty host");
  }
  for (char c : h) {
    if (static_cast<unsigned char>(c) <= ' ') {
      return bad("has whitespace in the host");
    }
  }
  if (p.empty() || p.size() > 5) {
    return bad("has no valid port");
  }
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size()) {
    return bad("has a port that is not a number");
  }
  if (value > 65535) {
    return bad("has a port above 65535");
  }
  *host = std::string(h);
  *port = static_cast<uint16_t>(value);
  return Status::Ok();
}

std::vector<std::string> SplitList(std::string_view list) {
  std::vector<std::string> out;
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && item.front() == ' ') {
      item.remove_prefix(1);
    }
    while (!item.empty() && item.back() == ' ') {
      item.remove_suffix(1);
    }
    if (!item.empty()) {
      out.emplace_back(item);
    }
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
  return out;
}

std::vector<std::string> PooledTemplates(const Config& config) {
  return SplitList(config.sandboxes.pool_templates);
}

Status ValidateConfig(const Config& config) {
  // The specs hand out mutable pointers (they are made for loading); a copy keeps `config`
  // untouched without a const_cast.
  Config copy = config;
  for (const KeySpec& spec : kKeys) {
    FieldPtr field = spec.field(copy);
    if (auto* i = std::get_if<int*>(&field)) {
      KILN_RETURN_IF_ERROR(CheckRange(spec, **i));
    } else if (auto* l = std::get_if<int64_t*>(&field)) {
      KILN_RETURN_IF_ERROR(CheckRange(spec, static_cast<double>(**l)));
    } else if (auto* d = std::get_if<double*>(&field)) {
      KILN_RETURN_IF_ERROR(CheckRange(spec, **d));
    }
  }

  std::string host;
  uint16_t port = 0;
  Status listen = SplitHostPort(config.server.listen, &host, &port);
  if (!listen.ok()) {
    return Invalid("server.listen: " + listen.message(), listen.hint());
  }

  if (config.server.data_dir.empty()) {
    return Invalid("server.data_dir is empty", "set server.data_dir to a directory, e.g. ./.kiln");
  }
  if (config.auth.jwt_default_ttl_seconds > config.auth.jwt_max_ttl_seconds) {
    return Invalid(
        "auth.jwt_default_ttl_seconds = " + std::to_string(config.auth.jwt_default_ttl_seconds) +
            " is longer than auth.jwt_max_ttl_seconds = " +
            std::to_string(config.auth.jwt_max_ttl_seconds),
        "set auth.jwt_default_ttl_seconds between 1 and auth.jwt_max_ttl_seconds");
  }
  const auto& sb = config.sandboxes;
  if (sb.min_memory_mb > sb.max_memory_mb || sb.default_memory_mb < sb.min_memory_mb ||
      sb.default_memory_mb > sb.max_memory_mb) {
    return Invalid("sandboxes: memory limits are inconsistent (min " +
                       std::to_string(sb.min_memory_mb) + ", default " +
                       std::to_string(sb.default_memory_mb) + ", max " +
                       std::to_string(sb.max_memory_mb) + " MiB)",
                   "keep min_memory_mb <= default_memory_mb <= max_memory_mb");
  }
  if (sb.default_timeout_seconds > sb.max_timeout_seconds) {
    return Invalid("sandboxes.default_timeout_seconds is longer than max_timeout_seconds",
                   "keep default_timeout_seconds <= max_timeout_seconds");
  }
  for (const std::string& name : PooledTemplates(config)) {
    if (name != "base" && name != "debian") {
      return Invalid("sandboxes.pool_templates names \"" + name + "\", not a built-in template",
                     "list base and/or debian, comma-separated; custom templates set poolSize "
                     "when they are created");
    }
  }
  const std::string& access = config.sandboxes.port_access;
  if (access != "public" && access != "workspace" && access != "token") {
    return Invalid("sandboxes.port_access = \"" + access + "\" is not an access policy",
                   "set it to public, workspace or token");
  }
  if (config.gateway.sleep_mode != "freeze" && config.gateway.sleep_mode != "stop") {
    return Invalid("gateway.sleep_mode = \"" + config.gateway.sleep_mode + "\" is not a mode",
                   "set it to freeze (instant wake, memory kept) or stop (memory freed, cold "
                   "start on the next request)");
  }
  if (config.runtime.engine != "" && config.runtime.engine != "runc" &&
      config.runtime.engine != "crun") {
    return Invalid("runtime.engine = \"" + config.runtime.engine + "\" is not an OCI runtime",
                   "set runtime.engine to runc, crun, or leave it empty to pick one");
  }
  const auto& apps = config.apps;
  if (apps.default_memory_mb > apps.max_memory_mb) {
    return Invalid("apps.default_memory_mb is larger than apps.max_memory_mb",
                   "keep default_memory_mb <= max_memory_mb");
  }
  if (apps.data_quota_mb > apps.max_data_quota_mb) {
    return Invalid("apps.data_quota_mb is larger than apps.max_data_quota_mb",
                   "keep data_quota_mb <= max_data_quota_mb");
  }
  const std::string& domain = config.gateway.base_domain;
  if (domain.empty() || domain.size() > 200 || domain.front() == '.' || domain.back() == '.' ||
      domain.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-.") != std::string::npos) {
    return Invalid("gateway.base_domain = \"" + domain + "\" is not a lower-case DNS name",
                   "set it to a domain whose subdomains point here, such as apps.example.com, "
                   "or localhost");
  }
  log::Level level;
  if (!log::ParseLevel(config.log.level, &level)) {
    return Invalid("log.level = \"" + config.log.level + "\" is not a log level",
                   "set log.level to one of debug, info, warn, error");
  }
  if (config.log.format != "json" && config.log.format != "text") {
    return Invalid("log.format = \"" + config.log.format + "\" is not a log format",
                   "set log.format to json or text");
  }
  return Status::Ok();
}

Result<Config> LoadConfig(const std::optional<std::string>& path, const ConfigOverrides& flags) {
  Config config;
  if (path.has_value()) {
    KILN_RETURN_IF_ERROR(LoadFile(*path, &config));
  }
  if (flags.listen.has_value()) {
    config.server.listen = *flags.listen;
  }
  if (flags.data_dir.has_value()) {
    config.server.data_dir = *flags.data_dir;
  }
  KILN_RETURN_IF_ERROR(ValidateConfig(config));
  return config;
}

}  // namespace kiln

#include "core/metrics.h"

#include <array>
#include <charconv>
#include <cmath>
#include <string_view>
#include <tuple>

namespace kiln {
namespace {

// Upper bounds in seconds, from sub-millisecond handler work to slow runtime operations.
constexpr std::array<double, 14> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,  0.5,    1,     2.5,  5,     10};
// The same bounds as Prometheus clients print them ("0.0005", not "5e-04").
constexpr std::array<std::string_view, 14> kBoundLabels = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // Counts are whole numbers almost always; print them without a fraction or exponent.
  if (v == std::trunc(v) && std::fabs(v) < 9007199254740992.0) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

// HELP text may not contain raw newlines, and backslashes are escapes in the format.
std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void AppendHeader(std::string& out, const std::string& name, std::string_view type,
                  const std::map<std::string, std::pair<std::string, std::string>>& help) {
  auto it = help.find(name);
  if (it != help.end() && !it->second.second.empty()) {
    out += "# HELP " + name + " " + EscapeHelp(it->second.second) + "\n";
  }
  out += "# TYPE " + name + " ";
  out += type;
  out += "\n";
}

void AppendSample(std::string& out, std::string_view name, std::string_view labels,
                  std::string_view value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += value;
  out += '\n';
}

}  // namespace

void Metrics::Add(const std::string& name, const std::string& labels, double value) {
  std::lock_guard lock(mu_);
  counters_[name][labels] += value;
}

void Metrics::Observe(const std::string& name, const std::string& labels, double seconds) {
  std::lock_guard lock(mu_);
  Histogram& h = histograms_[name][labels];
  if (h.buckets.empty()) h.buckets.assign(kBounds.size(), 0);
  // Stored per bucket; Render makes them cumulative. Larger than every bound: +Inf only.
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) {
      ++h.buckets[i];
      break;
    }
  }
  ++h.count;
  h.sum += seconds;
}

void Metrics::Describe(const std::string& name, const std::string& type, const std::string& help) {
  std::lock_guard lock(mu_);
  help_[name] = {type, help};
}

void Metrics::Gauge(const std::string& name, const std::string& help,
                    std::function<double()> read) {
  std::lock_guard lock(mu_);
  for (auto& [n, h, r] : gauges_) {
    if (n == name) {
      h = help;
      r = std::move(read);
      return;
    }
  }
  gauges_.emplace_back(name, help, std::move(read));
}

std::string Metrics::Render() const {
  std::string out;
  std::vector<std::tuple<std::string, std::string, std::function<double()>>> gauges;
  {
    std::lock_guard lock(mu_);
    for (const auto& [name, series] : counters_) {
      AppendHeader(out, name, "counter", help_);
      for (const auto& [labels, value] : series) {
        AppendSample(out, name, labels, FormatValue(value));
      }
    }
    for (const auto& [name, series] : histograms_) {
      AppendHeader(out, name, "histogram", help_);
      for (const auto& [labels, h] : series) {
        std::string prefix = labels.empty() ? std::string() : labels + ",";
        uint64_t cumulative = 0;
        for (size_t i = 0; i < kBounds.size(); ++i) {
          cumulative += h.buckets[i];
          AppendSample(out, name + "_bucket",
                       prefix + "le=\"" + std::string(kBoundLabels[i]) + "\"",
                       std::to_string(cumulative));
        }
        AppendSample(out, name + "_bucket", prefix + "le=\"+Inf\"", std::to_string(h.count));
        AppendSample(out, name + "_sum", labels, FormatValue(h.sum));
        AppendSample(out, name + "_count", labels, std::to_string(h.count));
      }
    }
    gauges = gauges_;
  }
  // Gauge readers run outside the lock: they may be slow or record metrics themselves.
  for (const auto& [name, help, read] : gauges) {
    if (!help.empty()) out += "# HELP " + name + " " + EscapeHelp(help) + "\n";
    out += "# TYPE " + name + " gauge\n";
    AppendSample(out, name, "", FormatValue(read ? read() : 0));
  }
  return out;
}

}  // namespace kiln

#include "core/metrics.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <string_view>
#include <tuple>

namespace kiln {
namespace {

// The same bounds as Prometheus clients print them ("0.0005", not "5e-04").
constexpr std::array<std::string_view, kHistogramBounds.size()> kBoundLabels = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1",    "0.25",  "0.5",    "1",     "2.5",  "5",     "10"};

std::string FormatValue(double v) {
  if (std::isnan(v)) {
    return "NaN";
  }
  if (std::isinf(v)) {
    return v > 0 ? "+Inf" : "-Inf";
  }
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

double BucketQuantile(const HistogramBuckets& buckets, uint64_t count, double q) {
  if (count == 0) {
    return 0;
  }
  double rank = q * static_cast<double>(count);
  uint64_t seen = 0;
  double lower = 0;
  for (size_t i = 0; i < kHistogramBounds.size(); ++i) {
    uint64_t in = buckets[i];
    if (static_cast<double>(seen + in) >= rank && in > 0) {
      double within = (rank - static_cast<double>(seen)) / static_cast<double>(in);
      return lower + (kHistogramBounds[i] - lower) * within;
    }
    seen += in;
    lower = kHistogramBounds[i];
  }
  return kHistogramBounds.back();
}

HistogramBuckets HistogramSeries::Buckets() const {
  HistogramBuckets out;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = Bucket(i);
  }
  return out;
}

void HistogramSeries::Observe(double seconds) {
  // Larger than every bound: counted in +Inf only.
  for (size_t i = 0; i < kHistogramBounds.size(); ++i) {
    if (seconds <= kHistogramBounds[i]) {
      buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(seconds, std::memory_order_relaxed);
}

CounterSeries& Metrics::Counter(const std::string& name, const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& series = counters_[name][labels];
  if (!series) {
    series = std::make_unique<CounterSeries>();
  }
  return *series;
}

HistogramSeries& Metrics::Histogram(const std::string& name, const std::string& labels) {
  std::lock_guard lock(mu_);
  auto& series = histograms_[name][labels];
  if (!series) {
    series = std::make_unique<HistogramSeries>();
  }
  return *series;
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
      for (const auto& [labels, counter] : series) {
        AppendSample(out, name, labels, FormatValue(counter->Value()));
      }
    }
    for (const auto& [name, series] : histograms_) {
      AppendHeader(out, name, "histogram", help_);
      for (const auto& [labels, h] : series) {
        std::string prefix = labels.empty() ? std::string() : labels + ",";
        uint64_t cumulative = 0;
        uint64_t count = h->Count();
        for (size_t i = 0; i < kHistogramBounds.size(); ++i) {
          cumulative += h->Bucket(i);
          AppendSample(out, name + "_bucket",
                       prefix + "le=\"" + std::string(kBoundLabels[i]) + "\"",
                       std::to_string(std::min(cumulative, count)));
        }
        AppendSample(out, name + "_bucket", prefix + "le=\"+Inf\"", std::to_string(count));
        AppendSample(out, name + "_sum", labels, FormatValue(h->Sum()));
        AppendSample(out, name + "_count", labels, std::to_string(count));
      }
    }
    gauges = gauges_;
  }
  // Gauge readers run outside the lock: they may be slow or record metrics themselves.
  for (const auto& [name, help, read] : gauges) {
    if (!help.empty()) {
      out += "# HELP " + name + " " + EscapeHelp(help) + "\n";
    }
    out += "# TYPE " + name + " gauge\n";
    AppendSample(out, name, "", FormatValue(read ? read() : 0));
  }
  return out;
}

}  // namespace kiln

#include <string>
#include <string_view>
#include <vector>

#include "http/http.h"

namespace kiln::http {

namespace {

// Splits "/a/b/c" into {"a","b","c"}. "/" gives {}; "/a/" gives {"a",""} so that a
// trailing slash never matches the pattern without one.
template <typename Out>
void SplitPath(std::string_view path, Out& out) {
  if (!path.empty() && path.front() == '/') {
    path.remove_prefix(1);
  }
  if (path.empty()) {
    return;
  }
  while (true) {
    size_t slash = path.find('/');
    out.emplace_back(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      return;
    }
    path.remove_prefix(slash + 1);
  }
}

bool IsParam(std::string_view segment) {
  return segment.size() >= 3 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

void Router::Add(std::string method, std::string pattern, int route) {
  Entry entry{std::move(method), {}, route};
  SplitPath(pattern, entry.segments);
  entries_.push_back(std::move(entry));
}

Router::Match Router::Find(std::string_view method, std::string_view path) const {
  Match match;
  if (path.empty() || path.front() != '/') {
    return match;
  }
  // Most paths have a handful of segments; a small reused vector avoids re-splitting
  // the path for every entry.
  std::vector<std::string_view> segments;
  segments.reserve(8);
  SplitPath(path, segments);

  for (const Entry& entry : entries_) {
    if (entry.segments.size() != segments.size()) {
      continue;
    }
    bool matched = true;
    for (size_t i = 0; i < segments.size(); ++i) {
      const std::string& want = entry.segments[i];
      if (IsParam(want)) {
        if (segments[i].empty()) {
          matched = false;
          break;
        }
      } else if (want != segments[i]) {
        matched = false;
        break;
      }
    }
    if (!matched) {
      continue;
    }
    if (entry.method == method) {
      match.route = entry.route;
      match.method_mismatch = false;
      match.allow.clear();
      for (size_t i = 0; i < segments.size(); ++i) {
        const std::string& want = entry.segments[i];
        if (IsParam(want)) {
          match.params.emplace_back(want.substr(1, want.size() - 2), std::string(segments[i]));
        }
      }
      return match;
    }
    // The path fits but the method does not: remember the method for Allow, in the order
    // the routes were added, without duplicates.
    match.method_mismatch = true;
    bool seen = false;
    size_t start = 0;
    std::string_view allow = match.allow;
    while (start < allow.size()) {
      size_t comma = allow.find(", ", start);
      std::string_view item = allow.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      if (item == entry.method) {
        seen = true;
        break;
      }
      if (comma == std::string_view::npos) {
        break;
      }
      start = comma + 2;
    }
    if (!seen) {
      if (!match.allow.empty()) {
        match.allow += ", ";
      }
      match.allow += entry.method;
    }
  }
  return match;
}

}  // namespace kiln::http

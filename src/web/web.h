#pragma once
// web: the dashboard's files (DESIGN.md §6: the one listener serves the API, MCP and the
// dashboard). Serves the front end built from web/ (an index.html and hashed assets) from a
// directory, with the single-page-app fallback: a GET for a path that is not a file (an
// in-app route such as /apps/shop) answers index.html.
//
// Paths are validated before a file is touched: no `..`, no NUL, and files are opened below
// the directory only (a symlink leading out is refused). Answers carry a Content-Type, a
// Content-Security-Policy that allows only the dashboard's own scripts and styles, and cache
// headers: hashed assets are immutable, index.html is revalidated each time.
//
// Thread-safety: Handle may run on any I/O thread concurrently.

#include <memory>
#include <string>

#include "core/core.h"
#include "http/http.h"

namespace kiln::web {

class Dashboard {
 public:
  // `dir` holds index.html; an empty or missing one serves a page saying how to build it.
  explicit Dashboard(std::string dir);
  ~Dashboard();
  // Whether `request` is the dashboard's: a GET or HEAD of /, of one of the page's routes
  // (/apps…, /sandboxes…, /templates…, /keys…, /activity…), of /assets/…, or of a file at
  // the top (/index.html, /favicon.svg). Everything else is the API's.
  bool Claims(const http::Request& request) const;
  void Handle(const http::Request& request, http::Response& response) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::web

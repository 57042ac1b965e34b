#pragma once
// Module-private test helpers: a temporary directory per test, and row builders.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "store/store.h"

namespace kiln::store::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    const char* base = getenv("TMPDIR");
    std::string tmpl =
        std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kiln_store_test.XXXXXX";
    char* made = mkdtemp(tmpl.data());
    EXPECT_NE(made, nullptr) << "mkdtemp(" << tmpl << ") failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline Workspace MakeWorkspace(const std::string& id, const std::string& slug) {
  Workspace ws;
  ws.id = id;
  ws.slug = slug;
  ws.name = "Workspace " + slug;
  ws.created_ms = 1'700'000'000'000;
  return ws;
}

inline ApiKey MakeKey(const std::string& workspace_id, const std::string& id,
                      std::vector<std::string> scopes = {"admin"}) {
  ApiKey key;
  key.id = id;
  key.workspace_id = workspace_id;
  key.name = "key " + id;
  key.prefix = "kiln_" + id.substr(0, 4);
  key.hash = "hash_of_" + id;
  key.scopes = std::move(scopes);
  key.created_ms = 1'700'000'000'001;
  return key;
}

inline Event MakeEvent(const std::string& workspace_id, const std::string& id,
                       const std::string& type = "key.created", const std::string& subject = {}) {
  Event event;
  event.id = id;
  event.workspace_id = workspace_id;
  event.type = type;
  event.subject = subject;
  event.data = R"({"n":1})";
  event.created_ms = 1'700'000'000'002;
  return event;
}

}  // namespace kiln::store::testing

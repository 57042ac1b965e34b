#pragma once
// Module-private: the connections of the SQLite store, shared by its table groups
// (sqlite_store.cc: tenancy; sqlite_sandboxes.cc: sandboxes and templates; sqlite_apps.cc: apps,
// deployments, releases and env vars).
//
// One write connection behind a mutex, so writes are serialized in-process and each is one
// BEGIN IMMEDIATE transaction (the busy timeout covers another process); reads borrow a
// connection from a pool and run in parallel with each other and with the writer (WAL).

#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "store/sqlite_db.h"

namespace kiln::store {

class SqliteAccess {
 public:
  // Read connections at most; more would only contend for the same cores and disk.
  static constexpr size_t kMaxReaders = 8;

  SqliteAccess(std::string path, std::unique_ptr<sqlite::Db> writer)
      : writer_(std::move(writer)), readers_(std::move(path), kMaxReaders) {}

  // Runs `body` in one write transaction: all of it commits, durably, or none of it does.
  template <typename Body>
  Status Write(Body&& body) {
    std::lock_guard lock(write_mu_);
    sqlite::Transaction txn(*writer_);
    KILN_RETURN_IF_ERROR(txn.Begin());
    KILN_RETURN_IF_ERROR(body(*writer_));
    return txn.Commit();
  }

  // Runs `body` on the write connection without a transaction of its own (one statement,
  // which commits atomically by itself).
  template <typename Body>
  auto WriteOne(Body&& body) -> decltype(body(std::declval<sqlite::Db&>())) {
    std::lock_guard lock(write_mu_);
    return body(*writer_);
  }

  // Runs `body` on a borrowed read connection.
  template <typename Body>
  auto Read(Body&& body) -> decltype(body(std::declval<sqlite::Db&>())) {
    Result<sqlite::ReadPool::Lease> lease = readers_.Acquire();
    if (!lease.ok()) {
      return lease.status();
    }
    return body(**lease);
  }

 private:
  std::mutex write_mu_;
  std::unique_ptr<sqlite::Db> writer_;  // guarded by write_mu_
  sqlite::ReadPool readers_;
};

// Runs `stmt` to the end, reading each row with `read`.
template <typename T, typename ReadRow>
Result<std::vector<T>> Collect(sqlite::Stmt& stmt, ReadRow read) {
  std::vector<T> rows;
  for (;;) {
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
    if (!row) {
      return rows;
    }
    rows.push_back(read(stmt));
  }
}

// Inserts an activity event row (every change is recorded with one, in its transaction).
struct Event;
Status InsertEventRow(sqlite::Db& db, const Event& event);

}  // namespace kiln::store

#pragma once
// Module-private: a thin RAII layer over the SQLite C API for the store. Not included
// outside src/store/.
//
// Thread-safety: a Db (one sqlite3 connection, opened SQLITE_OPEN_NOMUTEX) and the Stmts it
// hands out belong to one thread at a time; the caller serializes (the write mutex, or a
// ReadPool lease). ReadPool itself is safe to use from any thread.
// Errors: every SQLite failure becomes Status::Internal("sqlite: <message> (in <operation>)"),
// except unique/primary-key violations, which become Status::Conflict("ALREADY_EXISTS", ...).

#include <sqlite3.h>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

namespace kiln::store::sqlite {

// A statement's text and the name of the operation it performs, for error messages.
struct Query {
  std::string_view op;   // "find key by hash"
  std::string_view sql;  // the text is also the key of the per-connection statement cache
};

// Turns SQLite result code `rc` into a Status naming `operation`.
Status Error(sqlite3* db, int rc, std::string_view operation);

// A borrowed, cached prepared statement. On destruction (or Reset) it is reset and its
// bindings cleared, so the Db can hand it out again. Bind errors are remembered and reported
// by the next Step.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* stmt, std::string_view op, bool* in_use);
  Stmt(Stmt&& other) noexcept;
  Stmt& operator=(Stmt&&) = delete;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // Parameters are 1-based, as in SQLite.
  Stmt& Bind(int index, int64_t value);
  Stmt& Bind(int index, std::string_view value);
  Stmt& BindNull(int index);

  // One step: true when a row is ready to read, false when the statement is done.
  Result<bool> Step();
  // Steps to completion, for statements that return no rows.
  Status Run();

  // Columns are 0-based, as in SQLite. Valid after Step returned true.
  int64_t Int64(int col) const;
  std::string Text(int col) const;
  bool IsNull(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_;
  std::string_view op_;
  bool* in_use_;
  Status bind_error_;
};

// One connection with its statement cache.
class Db {
 public:
  // Opens (creating if needed) the database at `path` and sets the connection's PRAGMAs:
  // WAL journal, synchronous=FULL, foreign keys on, 5 s busy timeout. `read_only` connections
  // also get query_only, so a read path can never write by mistake.
  static Result<std::unique_ptr<Db>> Open(const std::string& path, bool read_only);

  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Runs one or more statements that return no rows (DDL, PRAGMAs, BEGIN/COMMIT).
  Status Exec(std::string_view sql, std::string_view operation);

  // Returns the cached statement for `query.sql`, preparing it on first use. A statement
  // must not be prepared again while a Stmt for it is still alive.
  Result<Stmt> Prepare(const Query& query);

  // Rows changed by the last INSERT/UPDATE/DELETE on this connection.
  int64_t Changes() const;

  sqlite3* handle() const { return db_; }

 private:
  struct CachedStmt {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };

  explicit Db(sqlite3* db) : db_(db) {}

  sqlite3* db_;
  // Node-based, so the `in_use` flags a Stmt points at stay put while the map grows.
  std::unordered_map<std::string, CachedStmt, StringHash, std::equal_to<>> cache_;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back in the destructor unless committed. IMMEDIATE takes
// the write lock up front, so a transaction never fails half-way with SQLITE_BUSY on upgrade.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();

  Status Begin();
  // The write is durable (synchronous=FULL) once this returns OK.
  Status Commit();

 private:
  Db& db_;
  bool open_ = false;
};

// Read connections, opened lazily up to `max_size`, borrowed one per read. With WAL, reads on
// different connections run in parallel with each other and with the single writer.
class ReadPool {
 public:
  ReadPool(std::string path, size_t max_size) : path_(std::move(path)), max_size_(max_size) {}
  ReadPool(const ReadPool&) = delete;
  ReadPool& operator=(const ReadPool&) = delete;

  // A borrowed connection, returned to the pool when the Lease goes away.
  class Lease {
   public:
    Lease(ReadPool* pool, std::unique_ptr<Db> db) : pool_(pool), db_(std::move(db)) {}
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Db& operator*() const { return *db_; }
    Db* operator->() const { return db_.get(); }

   private:
    ReadPool* pool_;
    std::unique_ptr<Db> db_;
  };

  // Waits while all `max_size` connections are borrowed. Fails only when a new connection
  // cannot be opened.
  Result<Lease> Acquire();

 private:
  void Release(std::unique_ptr<Db> db);

  const std::string path_;
  const size_t max_size_;
  std::mutex mu_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Db>> idle_;  // guarded by mu_
  size_t open_ = 0;                        // guarded by mu_; idle plus borrowed
};

}  // namespace kiln::store::sqlite

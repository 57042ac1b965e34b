#include "store/sqlite_db.h"

#include <cassert>
#include <utility>

namespace kiln::store::sqlite {

namespace {

// What an operator can do about the environment faults SQLite reports.
std::string HintFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return "free disk space on the filesystem that holds data_dir";
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CANTOPEN:
      return "check that kiln can write kiln.db and its directory";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return "kiln.db is damaged: restore it from a backup";
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return "another process holds kiln.db locked: stop it, or the other kiln using this data_dir";
    case SQLITE_IOERR:
      return "check the disk that holds data_dir (dmesg may say more)";
    default:
      return {};
  }
}

}  // namespace

Status Error(sqlite3* db, int rc, std::string_view operation) {
  std::string message = "sqlite: ";
  // errmsg describes the connection's most recent failure, which is `rc` because each
  // connection is used by one thread at a time.
  message += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  message += " (in ";
  message += operation;
  message += ")";
  if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Status::Conflict("ALREADY_EXISTS", std::move(message));
  }
  return Status::Internal(std::move(message), HintFor(rc));
}

// ---- Stmt ----

Stmt::Stmt(sqlite3* db, sqlite3_stmt* stmt, std::string_view op, bool* in_use)
    : db_(db), stmt_(stmt), op_(op), in_use_(in_use) {
  *in_use_ = true;
}

Stmt::Stmt(Stmt&& other) noexcept
    : db_(other.db_),
      stmt_(std::exchange(other.stmt_, nullptr)),
      op_(other.op_),
      in_use_(std::exchange(other.in_use_, nullptr)),
      bind_error_(std::move(other.bind_error_)) {}

Stmt::~Stmt() {
  if (stmt_ == nullptr) {
    return;
  }
  // reset ends the statement's implicit read transaction, so a pooled read connection does
  // not pin an old WAL snapshot; its return code repeats the last Step's, already reported.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  *in_use_ = false;
}

Stmt& Stmt::Bind(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = Error(db_, rc, op_);
  }
  return *this;
}

Stmt& Stmt::Bind(int index, std::string_view value) {
  // SQLITE_TRANSIENT: SQLite copies the text, so the caller's string may go away.
  int rc =
      sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = Error(db_, rc, op_);
  }
  return *this;
}

Stmt& Stmt::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_.ok()) {
    bind_error_ = Error(db_, rc, op_);
  }
  return *this;
}

Result<bool> Stmt::Step() {
  if (!bind_error_.ok()) {
    return bind_error_;
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) {
    return true;
  }
  if (rc == SQLITE_DONE) {
    return false;
  }
  return Error(db_, rc, op_);
}

Status Stmt::Run() {
  for (;;) {
    KILN_ASSIGN_OR_RETURN(bool row, Step());
    if (!row) {
      return Status::Ok();
    }
  }
}

int64_t Stmt::Int64(int col) const { return sqlite3_column_int64(stmt_, col); }

std::string Stmt::Text(int col) const {
  const unsigned char* text = sqlite3_column_text(stmt_, col);
  if (text == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

// ---- Db ----

Result<std::unique_ptr<Db>> Db::Open(const std::string& path, bool read_only) {
  sqlite3* handle = nullptr;
  int flags =
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  int rc = sqlite3_open_v2(path.c_str(), &handle, flags, nullptr);
  if (rc != SQLITE_OK) {
    Status status = Error(handle, rc, "open " + path);
    sqlite3_close_v2(handle);  // a handle is allocated even when open fails
    return status;
  }
  std::unique_ptr<Db> db(new Db(handle));

  // busy_timeout first: switching to WAL takes a lock that another process may hold.
  KILN_RETURN_IF_ERROR(db->Exec("PRAGMA busy_timeout = 5000", "set busy_timeout"));
  if (!read_only) {
    // journal_mode answers with the mode in force, which stays "delete" where WAL cannot work
    // (e.g. a network filesystem without shared memory): refuse rather than run without it.
    KILN_ASSIGN_OR_RETURN(Stmt mode,
                          db->Prepare({"set journal_mode", "PRAGMA journal_mode = WAL"}));
    KILN_ASSIGN_OR_RETURN(bool row, mode.Step());
    std::string got = row ? mode.Text(0) : "";
    if (got != "wal") {
      return Status::Internal(
          "kiln.db at " + path + " cannot use WAL journal mode (got \"" + got + "\")",
          "put data_dir on a local filesystem");
    }
  }
  KILN_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous = FULL", "set synchronous"));
  KILN_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys = ON", "set foreign_keys"));
  if (read_only) {
    KILN_RETURN_IF_ERROR(db->Exec("PRAGMA query_only = ON", "set query_only"));
  }
  return db;
}

Db::~Db() {
  for (auto& [sql, cached] : cache_) {
    assert(!cached.in_use && "a Stmt outlived its Db");
    sqlite3_finalize(cached.stmt);
  }
  sqlite3_close_v2(db_);
}

Status Db::Exec(std::string_view sql, std::string_view operation) {
  // sqlite3_exec wants a NUL-terminated string.
  std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    return Error(db_, rc, operation);
  }
  return Status::Ok();
}

Result<Stmt> Db::Prepare(const Query& query) {
  auto it = cache_.find(query.sql);
  if (it == cache_.end()) {
    sqlite3_stmt* stmt = nullptr;
    const char* tail = nullptr;
    int rc = sqlite3_prepare_v3(db_, query.sql.data(), static_cast<int>(query.sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
    if (rc != SQLITE_OK) {
      return Error(db_, rc, query.op);
    }
    // One statement per Query: trailing text would be silently ignored by SQLite.
    assert(tail == query.sql.data() + query.sql.size());
    it = cache_.emplace(std::string(query.sql), CachedStmt{stmt, false}).first;
  }
  // The same statement twice at once on one connection would reset the first mid-use.
  assert(!it->second.in_use && "statement already in use on this connection");
  return Stmt(db_, it->second.stmt, query.op, &it->second.in_use);
}

int64_t Db::Changes() const { return sqlite3_changes64(db_); }

// ---- Transaction ----

Transaction::~Transaction() {
  if (open_) {
    // Nothing useful can be done if ROLLBACK fails; SQLite rolls back on its own when the
    // connection next starts a transaction or closes.
    (void)db_.Exec("ROLLBACK", "rollback");
  }
}

Status Transaction::Begin() {
  assert(!open_);
  KILN_RETURN_IF_ERROR(db_.Exec("BEGIN IMMEDIATE", "begin transaction"));
  open_ = true;
  return Status::Ok();
}

Status Transaction::Commit() {
  assert(open_);
  Status status = db_.Exec("COMMIT", "commit");
  // A failed COMMIT may leave the transaction open (e.g. SQLITE_BUSY); the destructor then
  // rolls it back, so the caller sees the error and nothing half-written stays.
  if (status.ok() || sqlite3_get_autocommit(db_.handle()) != 0) {
    open_ = false;
  }
  return status;
}

// ---- ReadPool ----

ReadPool::Lease::~Lease() {
  if (db_ != nullptr) {
    pool_->Release(std::move(db_));
  }
}

Result<ReadPool::Lease> ReadPool::Acquire() {
  {
    std::unique_lock lock(mu_);
    available_.wait(lock, [&] { return !idle_.empty() || open_ < max_size_; });
    if (!idle_.empty()) {
      std::unique_ptr<Db> db = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(db));
    }
    ++open_;  // reserve the slot, then open outside the lock
  }
  Result<std::unique_ptr<Db>> db = Db::Open(path_, /*read_only=*/true);
  if (!db.ok()) {
    std::lock_guard lock(mu_);
    --open_;
    available_.notify_one();
    return db.status();
  }
  return Lease(this, std::move(db).value());
}

void ReadPool::Release(std::unique_ptr<Db> db) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(db));
  }
  available_.notify_one();
}

}  // namespace kiln::store::sqlite

#pragma once
// Module-private: the numbered schema migrations of kiln.db and the runner that applies them.
//
// A migration, once released, never changes: a new schema change is a new entry at the end of
// the list. schema_migrations records which ones a database has.

#include <span>

#include "core/status.h"
#include "store/sqlite_db.h"

namespace kiln::store {

struct Migration {
  int version;       // 1, 2, 3, ... without gaps
  const char* name;  // short description, recorded in schema_migrations
  const char* sql;   // one or more statements, run in one transaction
};

// Every migration this binary knows, in version order.
std::span<const Migration> Migrations();

// The highest version in Migrations().
int LatestSchemaVersion();

// Applies the pending migrations on the write connection `db`, each in its own transaction.
// Unavailable DB_TOO_NEW when the database was migrated by a newer kiln; Internal when a
// migration fails (nothing of that migration is left behind).
Status Migrate(sqlite::Db& db);

}  // namespace kiln::store

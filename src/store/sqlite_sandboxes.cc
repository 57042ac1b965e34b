#include "store/sqlite_sandboxes.h"

#include <limits>

namespace kiln::store::sandboxes {
namespace {

using sqlite::Db;
using sqlite::Query;
using sqlite::Stmt;

constexpr Query kInsertSandbox{
    "insert sandbox",
    "INSERT INTO sandboxes (id, workspace_id, template, status, metadata, env_sealed, memory_mb, "
    "millicpus, pids, network, created_ms, expires_ms, ended_ms, end_reason, created_by) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kLiveUsage{"count live sandboxes",
                           "SELECT COUNT(*), COALESCE(SUM(memory_mb), 0) FROM sandboxes "
                           "WHERE workspace_id = ? AND status IN ('running', 'paused')"};
constexpr Query kGetSandbox{
    "get sandbox",
    "SELECT seq, id, workspace_id, template, status, metadata, env_sealed, memory_mb, millicpus, "
    "pids, network, created_ms, expires_ms, ended_ms, end_reason, created_by FROM sandboxes "
    "WHERE id = ? AND workspace_id = ?"};
// One statement per filter keeps the SQL constant (cached) and each one index-friendly.
constexpr Query kListLiveInWorkspace{
    "list live sandboxes",
    "SELECT seq, id, workspace_id, template, status, metadata, env_sealed, memory_mb, millicpus, "
    "pids, network, created_ms, expires_ms, ended_ms, end_reason, created_by FROM sandboxes "
    "WHERE workspace_id = ? AND status IN ('running', 'paused') AND seq < ? "
    "ORDER BY seq DESC LIMIT ?"};
constexpr Query kListAllInWorkspace{
    "list sandboxes",
    "SELECT seq, id, workspace_id, template, status, metadata, env_sealed, memory_mb, millicpus, "
    "pids, network, created_ms, expires_ms, ended_ms, end_reason, created_by FROM sandboxes "
    "WHERE workspace_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"};
constexpr Query kListByStatus{
    "list sandboxes by status",
    "SELECT seq, id, workspace_id, template, status, metadata, env_sealed, memory_mb, millicpus, "
    "pids, network, created_ms, expires_ms, ended_ms, end_reason, created_by FROM sandboxes "
    "WHERE workspace_id = ? AND status = ? AND seq < ? ORDER BY seq DESC LIMIT ?"};
constexpr Query kListLive{
    "list live sandboxes of every workspace",
    "SELECT seq, id, workspace_id, template, status, metadata, env_sealed, memory_mb, millicpus, "
    "pids, network, created_ms, expires_ms, ended_ms, end_reason, created_by FROM sandboxes "
    "WHERE status IN ('running', 'paused') ORDER BY seq ASC"};
constexpr Query kUpdateSandbox{
    "update sandbox",
    "UPDATE sandboxes SET status = ?, metadata = ?, memory_mb = ?, millicpus = ?, pids = ?, "
    "expires_ms = ?, ended_ms = ?, end_reason = ? WHERE id = ? AND workspace_id = ?"};

constexpr Query kInsertTemplate{
    "insert template",
    "INSERT INTO templates (id, workspace_id, name, parent, steps, env_sealed, status, error, "
    "created_ms, built_ms, created_by, pool_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kGetTemplate{
    "get template",
    "SELECT seq, id, workspace_id, name, parent, steps, env_sealed, status, error, created_ms, "
    "built_ms, created_by, pool_size FROM templates WHERE workspace_id = ? AND name = ?"};
constexpr Query kListTemplates{
    "list templates",
    "SELECT seq, id, workspace_id, name, parent, steps, env_sealed, status, error, created_ms, "
    "built_ms, created_by, pool_size FROM templates WHERE workspace_id = ? ORDER BY seq ASC"};
constexpr Query kListAllTemplates{
    "list templates of every workspace",
    "SELECT seq, id, workspace_id, name, parent, steps, env_sealed, status, error, created_ms, "
    "built_ms, created_by, pool_size FROM templates ORDER BY seq ASC"};
constexpr Query kUpdateTemplate{
    "update template", "UPDATE templates SET status = ?, error = ?, built_ms = ? WHERE id = ?"};
constexpr Query kDeleteTemplate{"delete template",
                                "DELETE FROM templates WHERE workspace_id = ? AND name = ?"};

Sandbox ReadSandbox(const Stmt& s) {
  Sandbox b;
  b.seq = s.Int64(0);
  b.id = s.Text(1);
  b.workspace_id = s.Text(2);
  b.template_name = s.Text(3);
  b.status = s.Text(4);
  b.metadata = s.Text(5);
  b.env_sealed = s.Text(6);
  b.memory_mb = s.Int64(7);
  b.millicpus = s.Int64(8);
  b.pids = s.Int64(9);
  b.network = s.Text(10);
  b.created_ms = s.Int64(11);
  b.expires_ms = s.Int64(12);
  b.ended_ms = s.Int64(13);
  b.end_reason = s.Text(14);
  b.created_by = s.Text(15);
  return b;
}

Template ReadTemplate(const Stmt& s) {
  Template t;
  t.seq = s.Int64(0);
  t.id = s.Text(1);
  t.workspace_id = s.Text(2);
  t.name = s.Text(3);
  t.parent = s.Text(4);
  t.steps = s.Text(5);
  t.env_sealed = s.Text(6);
  t.status = s.Text(7);
  t.error = s.Text(8);
  t.created_ms = s.Int64(9);
  t.built_ms = s.Int64(10);
  t.created_by = s.Text(11);
  t.pool_size = s.Int64(12);
  return t;
}

std::string_view OrEmptyObject(const std::string& text) {
  return text.empty() ? std::string_view("{}") : std::string_view(text);
}

Status SandboxNotFound(const std::string& id) {
  return Status::NotFound("SANDBOX_NOT_FOUND", "no sandbox " + id + " in this workspace",
                          "list your sandboxes with GET /v1/sandboxes (kiln sandbox list)");
}

}  // namespace

Status Insert(SqliteAccess& access, const Sandbox& b, const SandboxQuota& quota,
              const Event& event) {
  return access.Write([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt usage, db.Prepare(kLiveUsage));
      KILN_ASSIGN_OR_RETURN(bool row, usage.Bind(1, b.workspace_id).Step());
      int64_t live = row ? usage.Int64(0) : 0;
      int64_t memory = row ? usage.Int64(1) : 0;
      if (quota.max_live > 0 && live + 1 > quota.max_live) {
        return Status::Conflict(
            "SANDBOX_LIMIT_REACHED",
            "the workspace already has " + std::to_string(live) + " live sandboxes, its limit",
            "kill a sandbox you no longer need, or wait for one to expire");
      }
      if (quota.max_memory_mb > 0 && memory + b.memory_mb > quota.max_memory_mb) {
        return Status::Conflict("MEMORY_QUOTA_EXCEEDED",
                                "the workspace's live sandboxes would use " +
                                    std::to_string(memory + b.memory_mb) + " MiB, over its " +
                                    std::to_string(quota.max_memory_mb) + " MiB quota",
                                "ask for less memory, or kill a sandbox first");
      }
    }
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertSandbox));
    KILN_RETURN_IF_ERROR(stmt.Bind(1, b.id)
                             .Bind(2, b.workspace_id)
                             .Bind(3, b.template_name)
                             .Bind(4, b.status)
                             .Bind(5, OrEmptyObject(b.metadata))
                             .Bind(6, b.env_sealed)
                             .Bind(7, b.memory_mb)
                             .Bind(8, b.millicpus)
                             .Bind(9, b.pids)
                             .Bind(10, b.network)
                             .Bind(11, b.created_ms)
                             .Bind(12, b.expires_ms)
                             .Bind(13, b.ended_ms)
                             .Bind(14, b.end_reason)
                             .Bind(15, b.created_by)
                             .Run());
    return InsertEventRow(db, event);
  });
}

Result<Sandbox> Get(SqliteAccess& access, const std::string& workspace_id, const std::string& id) {
  return access.Read([&](Db& db) -> Result<Sandbox> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kGetSandbox));
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, id).Bind(2, workspace_id).Step());
    if (!row) {
      return SandboxNotFound(id);
    }
    return ReadSandbox(stmt);
  });
}

Result<std::vector<Sandbox>> List(SqliteAccess& access, const std::string& workspace_id,
                                  const std::string& status, const PageRequest& page) {
  if (page.limit < 1) {
    return Status::InvalidArgument("INVALID_LIMIT", "page limit must be at least 1");
  }
  int64_t before = page.seq == 0 ? std::numeric_limits<int64_t>::max() : page.seq;
  return access.Read([&](Db& db) -> Result<std::vector<Sandbox>> {
    if (status.empty()) {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListLiveInWorkspace));
      stmt.Bind(1, workspace_id).Bind(2, before).Bind(3, int64_t{page.limit});
      return Collect<Sandbox>(stmt, ReadSandbox);
    }
    if (status == "all") {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListAllInWorkspace));
      stmt.Bind(1, workspace_id).Bind(2, before).Bind(3, int64_t{page.limit});
      return Collect<Sandbox>(stmt, ReadSandbox);
    }
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListByStatus));
    stmt.Bind(1, workspace_id).Bind(2, status).Bind(3, before).Bind(4, int64_t{page.limit});
    return Collect<Sandbox>(stmt, ReadSandbox);
  });
}

Result<std::vector<Sandbox>> ListLive(SqliteAccess& access) {
  return access.Read([&](Db& db) -> Result<std::vector<Sandbox>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListLive));
    return Collect<Sandbox>(stmt, ReadSandbox);
  });
}

Status Update(SqliteAccess& access, const Sandbox& b, const Event* event) {
  return access.Write([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpdateSandbox));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, b.status)
                               .Bind(2, OrEmptyObject(b.metadata))
                               .Bind(3, b.memory_mb)
                               .Bind(4, b.millicpus)
                               .Bind(5, b.pids)
                               .Bind(6, b.expires_ms)
                               .Bind(7, b.ended_ms)
                               .Bind(8, b.end_reason)
                               .Bind(9, b.id)
                               .Bind(10, b.workspace_id)
                               .Run());
    }
    if (db.Changes() == 0) {
      return SandboxNotFound(b.id);
    }
    return event != nullptr ? InsertEventRow(db, *event) : Status::Ok();
  });
}

Status InsertTemplate(SqliteAccess& access, const Template& t, const Event& event) {
  Status s = access.Write([&](Db& db) -> Status {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertTemplate));
    KILN_RETURN_IF_ERROR(stmt.Bind(1, t.id)
                             .Bind(2, t.workspace_id)
                             .Bind(3, t.name)
                             .Bind(4, t.parent)
                             .Bind(5, t.steps.empty() ? std::string_view("[]") : t.steps)
                             .Bind(6, t.env_sealed)
                             .Bind(7, t.status)
                             .Bind(8, t.error)
                             .Bind(9, t.created_ms)
                             .Bind(10, t.built_ms)
                             .Bind(11, t.created_by)
                             .Bind(12, t.pool_size)
                             .Run());
    return InsertEventRow(db, event);
  });
  if (s.Is(Code::kConflict)) {
    return Status::Conflict("TEMPLATE_EXISTS", "template \"" + t.name + "\" already exists",
                            "pick another name, or delete the old template first");
  }
  return s;
}

Result<Template> GetTemplate(SqliteAccess& access, const std::string& workspace_id,
                             const std::string& name) {
  return access.Read([&](Db& db) -> Result<Template> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kGetTemplate));
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, workspace_id).Bind(2, name).Step());
    if (!row) {
      return Status::NotFound("TEMPLATE_NOT_FOUND", "no template \"" + name + "\"",
                              "list templates with GET /v1/templates (kiln templates list)");
    }
    return ReadTemplate(stmt);
  });
}

Result<std::vector<Template>> ListTemplates(SqliteAccess& access, const std::string* workspace_id) {
  return access.Read([&](Db& db) -> Result<std::vector<Template>> {
    if (workspace_id == nullptr) {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListAllTemplates));
      return Collect<Template>(stmt, ReadTemplate);
    }
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListTemplates));
    stmt.Bind(1, *workspace_id);
    return Collect<Template>(stmt, ReadTemplate);
  });
}

Status UpdateTemplate(SqliteAccess& access, const Template& t) {
  return access.WriteOne([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpdateTemplate));
      KILN_RETURN_IF_ERROR(
          stmt.Bind(1, t.status).Bind(2, t.error).Bind(3, t.built_ms).Bind(4, t.id).Run());
    }
    if (db.Changes() == 0) {
      return Status::NotFound("TEMPLATE_NOT_FOUND", "no template " + t.id);
    }
    return Status::Ok();
  });
}

Status DeleteTemplate(SqliteAccess& access, const std::string& workspace_id,
                      const std::string& name, const Event& event) {
  return access.Write([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kDeleteTemplate));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, workspace_id).Bind(2, name).Run());
    }
    if (db.Changes() == 0) {
      return Status::NotFound("TEMPLATE_NOT_FOUND", "no template \"" + name + "\"");
    }
    return InsertEventRow(db, event);
  });
}

}  // namespace kiln::store::sandboxes

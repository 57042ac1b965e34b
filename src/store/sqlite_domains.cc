// The app_domains table: custom domains of apps and the state of their certificates.
#include <set>

#include "store/sqlite_gateway.h"

namespace kiln::store::gateway_tables {
namespace {

using sqlite::Db;
using sqlite::Query;
using sqlite::Stmt;

// The column list matches ReadDomain.
constexpr Query kListDomains{
    "list app domains",
    "SELECT domain, app_id, workspace_id, created_ms, cert_source, cert_status, cert_error, "
    "cert_expires_ms FROM app_domains WHERE app_id = ? ORDER BY domain ASC"};
constexpr Query kListAllDomains{
    "list all domains",
    "SELECT domain, app_id, workspace_id, created_ms, cert_source, cert_status, cert_error, "
    "cert_expires_ms FROM app_domains ORDER BY domain ASC"};
constexpr Query kAppInWorkspace{"check app in workspace",
                                "SELECT 1 FROM apps WHERE id = ? AND workspace_id = ?"};
constexpr Query kDomainOwner{"find domain owner",
                             "SELECT app_id FROM app_domains WHERE domain = ?"};
constexpr Query kInsertDomain{
    "insert app domain",
    "INSERT INTO app_domains (domain, app_id, workspace_id, created_ms, cert_source, "
    "cert_status, cert_error, cert_expires_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kDeleteDomain{"delete app domain",
                              "DELETE FROM app_domains WHERE domain = ? AND app_id = ?"};
constexpr Query kUpdateDomain{
    "update domain certificate",
    "UPDATE app_domains SET cert_source = ?, cert_status = ?, cert_error = ?, "
    "cert_expires_ms = ? WHERE domain = ?"};

Domain ReadDomain(const Stmt& s) {
  Domain d;
  d.domain = s.Text(0);
  d.app_id = s.Text(1);
  d.workspace_id = s.Text(2);
  d.created_ms = s.Int64(3);
  d.cert_source = s.Text(4);
  d.cert_status = s.Text(5);
  d.cert_error = s.Text(6);
  d.cert_expires_ms = s.Int64(7);
  return d;
}

Result<std::vector<Domain>> ListOn(Db& db, const std::string& app_id) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListDomains));
  stmt.Bind(1, app_id);
  return Collect<Domain>(stmt, ReadDomain);
}

}  // namespace

Result<std::vector<Domain>> ListDomains(SqliteAccess& access, const std::string& app_id) {
  return access.Read([&](Db& db) { return ListOn(db, app_id); });
}

Result<std::vector<Domain>> ListAllDomains(SqliteAccess& access) {
  return access.Read([&](Db& db) -> Result<std::vector<Domain>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListAllDomains));
    return Collect<Domain>(stmt, ReadDomain);
  });
}

Status SetDomains(SqliteAccess& access, const std::string& workspace_id, const std::string& app_id,
                  const std::vector<Domain>& domains, const Event& event) {
  return access.Write([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kAppInWorkspace));
      KILN_ASSIGN_OR_RETURN(bool found, stmt.Bind(1, app_id).Bind(2, workspace_id).Step());
      if (!found) {
        return Status::NotFound("APP_NOT_FOUND", "no app " + app_id + " in this workspace");
      }
    }
    std::set<std::string> wanted;
    for (const Domain& d : domains) {
      wanted.insert(d.domain);
    }
    KILN_ASSIGN_OR_RETURN(std::vector<Domain> current, ListOn(db, app_id));
    std::set<std::string> kept;
    for (const Domain& d : current) {
      if (wanted.contains(d.domain)) {
        kept.insert(d.domain);  // its certificate fields stay as they are
        continue;
      }
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kDeleteDomain));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, d.domain).Bind(2, app_id).Run());
    }
    for (const Domain& d : domains) {
      if (kept.contains(d.domain)) {
        continue;
      }
      {
        KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kDomainOwner));
        KILN_ASSIGN_OR_RETURN(bool taken, stmt.Bind(1, d.domain).Step());
        if (taken) {
          // Another app's (of any workspace): which one is not said, it may not be the caller's.
          return Status::Conflict("DOMAIN_TAKEN", d.domain + " is attached to another app",
                                  "remove it from that app first (PUT /v1/apps/APP/domains)");
        }
      }
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertDomain));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, d.domain)
                               .Bind(2, app_id)
                               .Bind(3, workspace_id)
                               .Bind(4, d.created_ms)
                               .Bind(5, d.cert_source)
                               .Bind(6, d.cert_status)
                               .Bind(7, d.cert_error)
                               .Bind(8, d.cert_expires_ms)
                               .Run());
      kept.insert(d.domain);  // a domain listed twice is inserted once
    }
    return InsertEventRow(db, event);
  });
}

Status UpdateDomain(SqliteAccess& access, const Domain& domain) {
  return access.WriteOne([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpdateDomain));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, domain.cert_source)
                               .Bind(2, domain.cert_status)
                               .Bind(3, domain.cert_error)
                               .Bind(4, domain.cert_expires_ms)
                               .Bind(5, domain.domain)
                               .Run());
    }
    if (db.Changes() == 0) {
      return Status::NotFound("DOMAIN_NOT_FOUND", "no app has the domain " + domain.domain);
    }
    return Status::Ok();
  });
}

}  // namespace kiln::store::gateway_tables

#include <filesystem>

#include "auth/auth.h"

namespace kiln::auth {

Result<std::optional<std::string>> Bootstrap(store::Store& store, const std::string& data_dir,
                                             const Clock& clock) {
  KILN_ASSIGN_OR_RETURN(int64_t count, store.CountWorkspaces());
  if (count > 0) {
    return std::optional<std::string>();
  }

  int64_t now = clock.NowMs();
  store::Workspace ws;
  ws.id = NewId("ws");
  ws.slug = "default";
  ws.name = "Default";
  ws.root = true;
  ws.created_ms = now;

  GeneratedKey generated = GenerateKey();
  store::ApiKey key;
  key.id = NewId("key");
  key.workspace_id = ws.id;
  key.name = "admin";
  key.prefix = generated.prefix;
  key.hash = generated.hash;
  key.scopes = ScopeNames(kAllScopes);
  key.created_ms = now;

  store::Event event;
  event.id = NewId("evt");
  event.workspace_id = ws.id;
  event.type = "workspace.created";
  event.subject = ws.id;
  event.data = R"({"slug":"default","bootstrap":true})";
  event.created_ms = now;

  // The key file is written before the rows commit: a crash in between leaves a key file
  // that a retry overwrites, never a workspace whose admin key nobody has.
  std::filesystem::path path = std::filesystem::path(data_dir) / "admin.key";
  KILN_RETURN_IF_ERROR(crypto::WriteFileAtomic(path, generated.secret + "\n", 0600));
  KILN_RETURN_IF_ERROR(store.CreateWorkspace(ws, key, event));
  return std::optional<std::string>(generated.secret);
}

}  // namespace kiln::auth

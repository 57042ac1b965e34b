#include <cstdio>
#include <cstdlib>

#include "service/access.h"
#include "service/apps.h"
#include "service/domains.h"
#include "service/operations.h"
#include "service/sandboxes.h"
#include "service/service.h"

namespace kiln::service {

json::object Schema(std::string_view text) {
  boost::system::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    std::fprintf(stderr, "bad schema literal (%s): %.*s\n", ec.message().c_str(),
                 static_cast<int>(text.size()), text.data());
    std::abort();
  }
  return std::move(v.as_object());
}

Service::Service(Deps deps)
    : deps_(deps),
      sandboxes_(std::make_unique<SandboxManager>(deps_)),
      apps_(std::make_unique<AppManager>(deps_)),
      access_(std::make_unique<AccessManager>(deps_, *apps_, *sandboxes_)),
      domains_(std::make_unique<DomainManager>(deps_, *apps_)) {
  AddTenancyOperations(deps_, operations_);
  AddSandboxOperations(deps_, *sandboxes_, operations_);
  AddTemplateOperations(deps_, *sandboxes_, operations_);
  AddAppOperations(deps_, *apps_, operations_);
  AddDeployOperations(deps_, *apps_, operations_);
  AddEnvOperations(deps_, *apps_, operations_);
  AddAccessOperations(deps_, *access_, *apps_, *sandboxes_, operations_);
  AddDomainOperations(deps_, *domains_, *apps_, operations_);
}

Service::~Service() { Stop(); }

void Service::Start() {
  sandboxes_->Start();
  apps_->Start();
}

void Service::Stop() {
  apps_->Stop();
  sandboxes_->Stop();
}

std::shared_ptr<const AppRoute> Service::FindRoute(std::string_view name) const {
  return apps_->FindRoute(name);
}

std::shared_ptr<const AppRoute> Service::FindSandboxRoute(std::string_view sandbox_id,
                                                          uint16_t port) const {
  return sandboxes_->FindRoute(sandbox_id, port);
}

std::string Service::AppStatus(std::string_view name) const {
  auto apps = deps_.store.ListAllApps();
  if (apps.ok()) {
    for (const auto& app : *apps) {
      if (app.name == name) {
        return app.status;
      }
    }
  }
  return {};
}

Status Service::WakeApp(const std::string& app_id) { return apps_->WakeById(app_id); }

void Service::TouchApp(const std::string& app_id) { apps_->Touch(app_id); }

void Service::SetListenPort(uint16_t port) { apps_->SetListenPort(port); }

void Service::SetTrafficSource(
    std::function<std::optional<Traffic>(const std::string& app_id)> source) {
  apps_->SetTrafficSource(std::move(source));
}

size_t Service::PooledSandboxes() const { return sandboxes_->pooled(); }

const Operation* Service::Find(std::string_view name) const {
  for (const auto& op : operations_) {
    if (op.name == name) {
      return &op;
    }
  }
  return nullptr;
}

json::object ErrorEnvelope(const Status& status, const std::string& request_id) {
  std::string message = ValidUtf8(status.message());
  std::string hint = ValidUtf8(status.hint());
  if (status.Is(Code::kInternal)) {
    // Internal details (database messages, paths) go to the log, not to the client.
    log::Error("internal error", {{"request_id", request_id}, {"error", status.ToString()}});
    message = "internal error";
    hint = "retry; if it keeps failing, report request id " + request_id +
           " (details are in the server log)";
  }
  json::object error{{"code", status.error_code().empty() ? std::string(CodeName(status.code()))
                                                          : status.error_code()},
                     {"message", message},
                     {"requestId", request_id}};
  if (!hint.empty()) {
    error["hint"] = hint;
  }
  return json::object{{"error", std::move(error)}};
}

Result<json::value> Service::Call(const Operation& op, Context& ctx,
                                  const json::object& input) const {
  // An X-Kiln-Auth token only tells an app who called it: it opens GET /v1/me and nothing
  // else, also where an operation asks for no scope.
  if (ctx.principal.via == auth::Principal::Via::kGateway && op.name != "me.get") {
    return Status::PermissionDenied(
        "GATEWAY_TOKEN_IDENTITY_ONLY",
        "an X-Kiln-Auth token can only verify the caller (GET /v1/me), not call " + op.name,
        "call the API with an API key or a JWT from POST /v1/auth/token");
  }
  if (!auth::HasScopes(ctx.principal.scopes, op.scopes)) {
    std::string needed;
    for (const auto& s : auth::ScopeNames(op.scopes)) {
      needed += (needed.empty() ? "" : ", ") + s;
    }
    return Status::PermissionDenied(
        "MISSING_SCOPE", op.name + " needs the " + needed + " scope",
        "use a key with that scope, or ask a workspace admin for one (`kiln keys create`)");
  }
  KILN_RETURN_IF_ERROR(Validate(op.input, input, ""));
  return op.run(ctx, input);
}

}  // namespace kiln::service

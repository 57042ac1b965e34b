// Placeholder until AppManager lands.
#include "service/service.h"

namespace kiln::service {
std::shared_ptr<const AppRoute> Service::FindRoute(std::string_view) const { return nullptr; }
Status Service::WakeApp(const std::string&) { return Status::Ok(); }
void Service::TouchApp(const std::string&) {}
}  // namespace kiln::service

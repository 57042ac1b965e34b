// Placeholder while the module is written: claims nothing.
#include "web/web.h"

namespace kiln::web {

struct Dashboard::Impl {
  std::string dir;
};

Dashboard::Dashboard(std::string dir) : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
}
Dashboard::~Dashboard() = default;
bool Dashboard::Claims(const http::Request& /*request*/) const { return false; }
void Dashboard::Handle(const http::Request& /*request*/, http::Response& response) const {
  response.status = 404;
}

}  // namespace kiln::web

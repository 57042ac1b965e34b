#pragma once
// Module-private: apps (placeholder until AppManager lands).
#include "service/service.h"
namespace kiln::service {
class AppManager {};
}  // namespace kiln::service

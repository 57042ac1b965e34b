#pragma once
// tls: HTTPS for app hosts and custom domains (DESIGN.md §6). Placeholder until step 4's TLS
// work lands.

namespace kiln::tls {}  // namespace kiln::tls

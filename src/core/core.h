#pragma once
// core: the module everything else stands on (DESIGN.md §2). Errors, ids, time, logs,
// configuration, crypto and metrics; no dependencies on other Kiln modules.
// JSON helpers are in core/json.h, included only where JSON is spoken.

#include "core/clock.h"
#include "core/config.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/status.h"

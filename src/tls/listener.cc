// Placeholder: filled in by the step 4 TLS work.
#include "tls/tls.h"

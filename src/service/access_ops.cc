// Placeholder: filled in by the step 4 work.
#include "service/operations.h"

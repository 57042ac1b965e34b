#include "api/api.h"

namespace kiln::api {

int HttpStatus(Code code) {
  switch (code) {
    case Code::kOk:
      return 200;
    case Code::kInvalidArgument:
      return 400;
    case Code::kUnauthenticated:
      return 401;
    case Code::kPermissionDenied:
      return 403;
    case Code::kNotFound:
      return 404;
    case Code::kTimeout:
      return 408;
    case Code::kConflict:
      return 409;
    case Code::kPayloadTooLarge:
      return 413;
    case Code::kUnprocessable:
      return 422;
    case Code::kRateLimited:
      return 429;
    case Code::kInternal:
      return 500;
    case Code::kUnavailable:
      return 503;
  }
  return 500;
}

}  // namespace kiln::api

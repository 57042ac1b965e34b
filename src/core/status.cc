#include "core/status.h"

#include <cstring>

namespace kiln {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "OK";
    case Code::kInvalidArgument:
      return "INVALID_ARGUMENT";
    case Code::kUnauthenticated:
      return "UNAUTHENTICATED";
    case Code::kPermissionDenied:
      return "PERMISSION_DENIED";
    case Code::kNotFound:
      return "NOT_FOUND";
    case Code::kConflict:
      return "CONFLICT";
    case Code::kTimeout:
      return "TIMEOUT";
    case Code::kPayloadTooLarge:
      return "PAYLOAD_TOO_LARGE";
    case Code::kUnprocessable:
      return "UNPROCESSABLE";
    case Code::kRateLimited:
      return "RATE_LIMITED";
    case Code::kInternal:
      return "INTERNAL";
    case Code::kUnavailable:
      return "UNAVAILABLE";
  }
  return "UNKNOWN";
}

Status Status::FromErrno(std::string_view what, int err) {
  std::string message(what);
  message += ": ";
  message += std::strerror(err);
  return Internal(std::move(message));
}

std::string Status::ToString() const {
  if (ok()) {
    return "OK";
  }
  std::string out = error_code_.empty() ? std::string(CodeName(code_)) : error_code_;
  out += ": ";
  out += message_;
  if (!hint_.empty()) {
    out += " (hint: " + hint_ + ")";
  }
  return out;
}

}  // namespace kiln

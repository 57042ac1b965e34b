#pragma once
// Errors as values (STYLE.md "Errors"). A Status carries a category (Code), a stable
// machine-readable error code for clients ("KEY_NOT_FOUND"), a message that says what went
// wrong and a hint that says what to do next. The API layer maps each Code to one HTTP status.

#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace kiln {

enum class Code {
  kOk,
  kInvalidArgument,   // 400: the request is malformed or fails validation
  kUnauthenticated,   // 401: no, unknown, revoked or expired credential
  kPermissionDenied,  // 403: the credential lacks a scope
  kNotFound,          // 404: no such resource in the caller's workspace
  kConflict,          // 409: state conflict, missing confirmation, already exists
  kTimeout,           // 408: the client was too slow
  kPayloadTooLarge,   // 413
  kUnprocessable,     // 422: well-formed but cannot be applied (idempotency key reuse)
  kRateLimited,       // 429
  kInternal,          // 500: a bug or an environment fault (disk, database)
  kUnavailable,       // 503: shutting down or a dependency is missing
};

std::string_view CodeName(Code code);

class Status {
 public:
  Status() = default;  // OK
  Status(Code code, std::string error_code, std::string message, std::string hint = {})
      : code_(code),
        error_code_(std::move(error_code)),
        message_(std::move(message)),
        hint_(std::move(hint)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string error_code, std::string message,
                                std::string hint = {}) {
    return {Code::kInvalidArgument, std::move(error_code), std::move(message), std::move(hint)};
  }
  static Status Unauthenticated(std::string error_code, std::string message,
                                std::string hint = {}) {
    return {Code::kUnauthenticated, std::move(error_code), std::move(message), std::move(hint)};
  }
  static Status PermissionDenied(std::string error_code, std::string message,
                                 std::string hint = {}) {
    return {Code::kPermissionDenied, std::move(error_code), std::move(message), std::move(hint)};
  }
  static Status NotFound(std::string error_code, std::string message, std::string hint = {}) {
    return {Code::kNotFound, std::move(error_code), std::move(message), std::move(hint)};
  }
  static Status Conflict(std::string error_code, std::string message, std::string hint = {}) {
    return {Code::kConflict, std::move(error_code), std::move(message), std::move(hint)};
  }
  static Status Unprocessable(std::string error_code, std::string message, std::string hint = {}) {
    return {Code::kUnprocessable, std::move(error_code), std::move(message), std::move(hint)};
  }
  static Status RateLimited(std::string message, std::string hint = {}) {
    return {Code::kRateLimited, "RATE_LIMITED", std::move(message), std::move(hint)};
  }
  static Status Internal(std::string message, std::string hint = {}) {
    return {Code::kInternal, "INTERNAL", std::move(message), std::move(hint)};
  }
  static Status Unavailable(std::string error_code, std::string message, std::string hint = {}) {
    return {Code::kUnavailable, std::move(error_code), std::move(message), std::move(hint)};
  }
  // errno turned into a Status in one place: `what` names the call and its argument,
  // e.g. FromErrno("open(\"/x/y\")", errno) -> `open("/x/y"): Permission denied`.
  static Status FromErrno(std::string_view what, int err);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& error_code() const { return error_code_; }
  const std::string& message() const { return message_; }
  const std::string& hint() const { return hint_; }
  bool Is(Code code) const { return code_ == code; }

  // "KEY_NOT_FOUND: no key key_x in this workspace (hint: ...)"; for logs and the CLI.
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string error_code_;
  std::string message_;
  std::string hint_;
};

// A value or the Status that explains why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: implicit by design
  // Anything T can be built from (a json::object for a Result<json::value>).
  template <typename U>
  requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, T> &&
           !std::is_same_v<std::decay_t<U>, Status>) Result(U&& value)
      : value_(T(std::forward<U>(value))) {}  // NOLINT: implicit by design

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace kiln

// Early-return helpers; the only macros in the code base.
#define KILN_CONCAT_INNER(a, b) a##b
#define KILN_CONCAT(a, b) KILN_CONCAT_INNER(a, b)
#define KILN_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::kiln::Status kiln_status_ = (expr);        \
    if (!kiln_status_.ok()) return kiln_status_; \
  } while (0)
#define KILN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()
#define KILN_ASSIGN_OR_RETURN(lhs, expr) \
  KILN_ASSIGN_OR_RETURN_IMPL(KILN_CONCAT(kiln_result_, __LINE__), lhs, expr)

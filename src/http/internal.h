#pragma once
// Helpers shared by the http module's .cc files; not part of the public interface.

#include <string>
#include <string_view>

namespace kiln::http::internal {

inline char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Percent-decodes `text` into `out` (reusing its capacity); '+' becomes ' ' when
// `plus_as_space` (query strings). False on a bad escape; `out` is then unspecified.
bool DecodeInto(std::string_view text, bool plus_as_space, std::string& out);

}  // namespace kiln::http::internal

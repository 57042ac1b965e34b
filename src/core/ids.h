#pragma once
// Resource ids: a type prefix and 20 random lowercase base32 characters ("key_3kq...").

#include <string>
#include <string_view>

namespace kiln {

std::string NewId(std::string_view prefix);
// True when `id` is `prefix_` followed by 1..64 characters of [a-z0-9].
bool LooksLikeId(std::string_view id, std::string_view prefix);

}  // namespace kiln

#pragma once
// Resource ids: a type prefix and 20 random lowercase base32 characters ("key_3kq...").

#include <string>
#include <string_view>

namespace kiln {

std::string NewId(std::string_view prefix);
// "req_" + 20 base32 characters for request ids: unique, but from a per-thread generator
// seeded once from the CSPRNG, since request ids are labels, not secrets, and one is made
// for every request. Never use it for anything a client must not guess.
std::string NewRequestId();
// True when `id` is `prefix_` followed by 1..64 characters of [a-z0-9].
bool LooksLikeId(std::string_view id, std::string_view prefix);

}  // namespace kiln

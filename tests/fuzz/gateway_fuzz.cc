// libFuzzer target for the gateway's parsers of client input (Host matching, share-token
// removal, cookie filtering): see src/gateway/fuzz_checks.h. Built only with
// `cmake -DKILN_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++`; run `build-fuzz/kiln_gateway_fuzz`.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gateway/fuzz_checks.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kiln::gateway::fuzz::CheckOne(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

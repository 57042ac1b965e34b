#pragma once
// cli: the `kiln` command (DESIGN.md §2). `kiln server` runs the daemon; every other
// command is a client of the REST API, using the URL and key from `kiln login`
// (~/.config/kiln/config.toml), overridden by KILN_URL / KILN_API_KEY.
//
// Exit codes: 0 success, 1 the server answered an error, 2 usage error, 3 the server could
// not be reached or no credentials are configured.

namespace kiln::cli {

int Main(int argc, char** argv);

}  // namespace kiln::cli

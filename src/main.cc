// `kiln`: one binary for the server and the client commands (DESIGN.md §2).
#include "cli/cli.h"

int main(int argc, char** argv) { return kiln::cli::Main(argc, argv); }

// kiln-init is built with -fno-exceptions, but libstdc++.a's own code still throws: from
// operator new and from the std::__throw_* helpers its containers call on misuse. Linking
// those pulls in the unwinder, the exception runtime, the verbose terminate handler and the
// demangler, about a third of the binary and of its resident memory. Defining them here,
// ending the process as an uncaught exception would, keeps those objects out of the link.

#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <new>

namespace {

[[noreturn]] void Die(const char* what) {
  // No stdio: write(2) is all a PID 1 can count on here.
  size_t n = 0;
  while (what[n] != '\0') {
    ++n;
  }
  (void)!write(STDERR_FILENO, "kiln-init: fatal: ", 18);
  (void)!write(STDERR_FILENO, what, n);
  (void)!write(STDERR_FILENO, "\n", 1);
  abort();
}

void* Allocate(std::size_t size) {
  void* p = malloc(size == 0 ? 1 : size);
  if (p == nullptr) {
    Die("out of memory");
  }
  return p;
}

}  // namespace

void* operator new(std::size_t size) { return Allocate(size); }
void* operator new[](std::size_t size) { return Allocate(size); }
void operator delete(void* p) noexcept { free(p); }
void operator delete[](void* p) noexcept { free(p); }
void operator delete(void* p, std::size_t) noexcept { free(p); }
void operator delete[](void* p, std::size_t) noexcept { free(p); }

namespace std {

void __throw_bad_alloc() { Die("out of memory"); }
void __throw_bad_array_new_length() { Die("bad array new length"); }
void __throw_length_error(const char* what) { Die(what); }
void __throw_logic_error(const char* what) { Die(what); }
void __throw_out_of_range_fmt(const char* what, ...) { Die(what); }

}  // namespace std

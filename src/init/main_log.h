#pragma once
// The main process's output, kept in DIR/main.log as one record per line:
//   <unix_ms> o <text>      a line the main process wrote to stdout
//   <unix_ms> e <text>      ... to stderr
//   <unix_ms> x <how>       it ended: "exit code 3" or "killed by signal 9 (SIGKILL)"
// A line still open after 100 ms of silence, or 16 KiB long, is written as a record of its
// own. When the file would pass its cap it is renamed to main.log.1 (replacing the previous
// one) and a new main.log is started, so the logs of one instance never take more than twice
// the cap.

#include <cstdint>
#include <string>
#include <string_view>

#include "init/util.h"

namespace kiln::init {

class MainLog {
 public:
  // `dir` empty disables the log (the main process then writes to kiln-init's stdout/stderr).
  MainLog(std::string dir, int64_t max_bytes);

  bool enabled() const { return !dir_.empty(); }
  // Bytes read from the main process's stdout ('o') or stderr ('e').
  void Append(char stream, std::string_view data, int64_t now_ms);
  // Writes partial lines that have been silent for 100 ms (monotonic `now_ms`).
  void FlushIdle(int64_t now_ms);
  // When FlushIdle next has something to do (monotonic ms), or -1.
  int64_t NextDeadline() const;
  // Writes every partial line, then the exit record.
  void RecordExit(std::string_view description);

 private:
  struct Partial {
    std::string text;
    int64_t last_ms = 0;
    // The line was already written in pieces (silence or 16 KiB): its newline ends it
    // without adding an empty record.
    bool written_in_part = false;
  };
  Partial& PartialOf(char stream) { return stream == 'o' ? out_ : err_; }
  void Flush(char stream);
  void WriteRecord(char stream, std::string_view text);
  bool Open();

  std::string dir_;
  int64_t max_bytes_;
  UniqueFd file_;
  int64_t size_ = 0;
  bool open_failed_ = false;
  Partial out_;
  Partial err_;
};

}  // namespace kiln::init

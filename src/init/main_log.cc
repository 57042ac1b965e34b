#include "init/main_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace kiln::init {

namespace {

constexpr int64_t kSilenceMs = 100;
constexpr size_t kMaxLine = 16 * 1024;

}  // namespace

MainLog::MainLog(std::string dir, int64_t max_bytes)
    : dir_(std::move(dir)), max_bytes_(max_bytes) {}

bool MainLog::Open() {
  if (file_.valid()) {
    return true;
  }
  if (open_failed_) {
    return false;
  }
  mkdir(dir_.c_str(), 0755);  // usually there already; the open below reports real problems
  std::string path = dir_ + "/main.log";
  file_.Reset(open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!file_.valid()) {
    // Logged once: a broken log directory must not flood kiln-init's own stderr.
    open_failed_ = true;
    LogError("cannot open " + path + ": " + std::string(ErrnoText(errno)) +
             "; the main process's output is dropped");
    return false;
  }
  struct stat st {};
  size_ = fstat(file_.get(), &st) == 0 ? st.st_size : 0;
  return true;
}

void MainLog::WriteRecord(char stream, std::string_view text) {
  std::string record;
  record.reserve(text.size() + 20);
  AppendInt(record, UnixMs());
  record.push_back(' ');
  record.push_back(stream);
  record.push_back(' ');
  record.append(text);
  record.push_back('\n');
  if (!Open()) {
    return;
  }
  auto length = static_cast<int64_t>(record.size());
  if (size_ > 0 && size_ + length > max_bytes_) {
    std::string path = dir_ + "/main.log";
    std::string rotated = path + ".1";
    rename(path.c_str(), rotated.c_str());
    file_.Reset();
    if (!Open()) {
      return;
    }
    size_ = 0;
  }
  // One write() per record with O_APPEND: a reader never sees half a record interleaved.
  if (WriteAll(file_.get(), record)) {
    size_ += length;
  }
}

void MainLog::Flush(char stream) {
  Partial& partial = PartialOf(stream);
  if (!partial.text.empty()) {
    WriteRecord(stream, partial.text);
    partial.text.clear();
    partial.written_in_part = true;
  }
}

void MainLog::Append(char stream, std::string_view data, int64_t now_ms) {
  if (!enabled()) {
    return;
  }
  Partial& partial = PartialOf(stream);
  partial.last_ms = now_ms;
  while (!data.empty()) {
    if (partial.written_in_part && data.front() == '\n') {
      data.remove_prefix(1);
      partial.written_in_part = false;
      continue;
    }
    partial.written_in_part = false;
    size_t newline = data.find('\n');
    size_t take = newline == std::string_view::npos ? data.size() : newline;
    size_t room = kMaxLine - partial.text.size();
    if (take > room) {
      // A line longer than 16 KiB becomes several records.
      partial.text.append(data.substr(0, room));
      data.remove_prefix(room);
      Flush(stream);
      continue;
    }
    partial.text.append(data.substr(0, take));
    if (newline == std::string_view::npos) {
      if (partial.text.size() >= kMaxLine) {
        Flush(stream);
      }
      break;
    }
    data.remove_prefix(take + 1);
    WriteRecord(stream, partial.text);
    partial.text.clear();
  }
  if (partial.text.empty() && partial.text.capacity() > 4096) {
    std::string().swap(partial.text);  // give a long line's buffer back while idle
  }
}

void MainLog::FlushIdle(int64_t now_ms) {
  for (char stream : {'o', 'e'}) {
    Partial& partial = PartialOf(stream);
    if (!partial.text.empty() && now_ms - partial.last_ms >= kSilenceMs) {
      Flush(stream);
    }
  }
}

int64_t MainLog::NextDeadline() const {
  int64_t next = -1;
  for (const Partial* partial : {&out_, &err_}) {
    if (!partial->text.empty()) {
      int64_t due = partial->last_ms + kSilenceMs;
      next = next < 0 || due < next ? due : next;
    }
  }
  return next;
}

void MainLog::RecordExit(std::string_view description) {
  if (!enabled()) {
    return;
  }
  Flush('o');
  Flush('e');
  WriteRecord('x', description);
}

}  // namespace kiln::init

// Sessions (Mcp-Session-Id), their SSE event streams and the questions they ask clients.
#include <algorithm>
#include <charconv>

#include "mcp/internal.h"

namespace kiln::mcp {
namespace {

std::string EventText(const std::string& stream, size_t index, const std::string& data) {
  std::string out = "id: ";
  out += stream;
  out += '_';
  out += std::to_string(index);
  if (data.empty()) {
    // The priming event: an id to resume from, and how long to wait before reconnecting.
    out += "\nretry: 1000\ndata: \n\n";
    return out;
  }
  out += "\nevent: message\ndata: ";
  out += data;  // JSON text: never a raw newline
  out += "\n\n";
  return out;
}

}  // namespace

int LogLevelIndex(std::string_view name) {
  for (size_t i = 0; i < std::size(kLogLevels); ++i) {
    if (kLogLevels[i] == name) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

bool EventStream::Send(const std::string& message) {
  std::lock_guard lock(mu);
  events.push_back(message);
  if (out == nullptr) {
    return false;
  }
  if (!out->Write(EventText(id, events.size() - 1, message))) {
    out = nullptr;  // the client went away: it may resume
    return false;
  }
  return true;
}

bool EventStream::Answer(const std::string& message) {
  std::lock_guard lock(mu);
  events.push_back(message);
  answered = true;
  if (out == nullptr) {
    return false;
  }
  bool sent = out->Write(EventText(id, events.size() - 1, message));
  out->End();
  out = nullptr;
  return sent;
}

bool EventStream::Attach(std::shared_ptr<http::Stream> next, int64_t after) {
  std::lock_guard lock(mu);
  if (out != nullptr) {
    out->End();  // one connection per stream: the newer one wins
  }
  out = std::move(next);
  for (size_t i = static_cast<size_t>(std::max<int64_t>(after + 1, 0)); i < events.size(); ++i) {
    if (!out->Write(EventText(id, i, events[i]))) {
      out = nullptr;
      return false;
    }
  }
  if (answered) {
    out->End();
    out = nullptr;
    return true;
  }
  return false;
}

void EventStream::Detach() {
  std::lock_guard lock(mu);
  if (out != nullptr) {
    out->End();
    out = nullptr;
  }
}

std::shared_ptr<EventStream> Session::NewStream() {
  auto s = std::make_shared<EventStream>();
  std::lock_guard lock(mu);
  int64_t number = next_stream++;
  s->id = std::to_string(number);
  // Streams left unresumed (a client that went away for good) are bounded per session.
  constexpr size_t kMaxStreams = 64;
  while (streams.size() >= kMaxStreams) {
    streams.erase(streams.begin());  // the oldest
  }
  streams[number] = s;
  return s;
}

std::shared_ptr<EventStream> Session::FindStream(const std::string& stream_id) {
  int64_t number = 0;
  if (std::from_chars(stream_id.data(), stream_id.data() + stream_id.size(), number).ec !=
      std::errc()) {
    return nullptr;
  }
  std::lock_guard lock(mu);
  auto it = streams.find(number);
  return it == streams.end() ? nullptr : it->second;
}

void Session::DropStream(const std::string& stream_id) {
  std::lock_guard lock(mu);
  std::erase_if(streams, [&](const auto& entry) { return entry.second->id == stream_id; });
}

std::shared_ptr<Session> SessionTable::Create(const std::string& key_id,
                                              const std::string& version) {
  auto s = std::make_shared<Session>();
  s->id = crypto::HexEncode(crypto::RandomBytes(16));
  s->key_id = key_id;
  s->version = version;
  int64_t now = clock_.NowMs();
  s->last_used_ms = now;
  std::lock_guard lock(mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    auto next = std::next(it);
    if (now - it->second->last_used_ms.load() > idle_ms_) {
      EndLocked(it);
    }
    it = next;
  }
  if (sessions_.size() >= max_) {
    auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
      return a.second->last_used_ms.load() < b.second->last_used_ms.load();
    });
    EndLocked(oldest);
  }
  sessions_[s->id] = s;
  return s;
}

std::shared_ptr<Session> SessionTable::Find(std::string_view id, const std::string& key_id) {
  int64_t now = clock_.NowMs();
  std::lock_guard lock(mu_);
  auto it = sessions_.find(std::string(id));
  if (it == sessions_.end()) {
    return nullptr;
  }
  if (now - it->second->last_used_ms.load() > idle_ms_) {
    EndLocked(it);
    return nullptr;
  }
  if (it->second->key_id != key_id) {
    return nullptr;
  }
  it->second->last_used_ms = now;
  return it->second;
}

void SessionTable::End(const std::shared_ptr<Session>& session) {
  std::lock_guard lock(mu_);
  if (auto it = sessions_.find(session->id); it != sessions_.end()) {
    EndLocked(it);
  }
}

void SessionTable::EndLocked(
    std::unordered_map<std::string, std::shared_ptr<Session>>::iterator it) {
  std::shared_ptr<Session> s = it->second;
  sessions_.erase(it);
  std::map<int64_t, std::shared_ptr<EventStream>> streams;
  {
    std::lock_guard lock(s->mu);
    s->ended = true;
    streams.swap(s->streams);
  }
  s->answered.notify_all();  // questions waiting for the client give up
  for (auto& [id, stream] : streams) {
    stream->Detach();
  }
}

size_t SessionTable::size() const {
  std::lock_guard lock(mu_);
  return sessions_.size();
}

}  // namespace kiln::mcp

#include "http/stream.h"

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/post.hpp>

namespace kiln::http {
namespace internal {

void StreamWork::Clear() {
  finish.reset();
  begin = false;
  status = 0;
  headers.clear();
  chunks.clear();
  end = false;
  abandoned = false;
  closed = false;
}

StreamState::StreamState(std::optional<Executor> executor)
    : executor_(executor), closed_(!executor.has_value()) {}

void StreamState::Finish(Response response) {
  // Outside the lock: dropping the Response's own stream reference may run Abandon.
  ResponseAccess::Unlink(response);
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || begun_) {
    return;
  }
  finished_ = true;
  if (closed_) {
    return;
  }
  finish_.emplace(std::move(response));
  ArmedWakeLocked();
}

bool StreamState::Begin(int status, Headers headers) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || begun_ || closed_) {
    return false;
  }
  begun_ = true;
  status_ = status;
  headers_ = std::move(headers);
  ArmedWakeLocked();
  return true;
}

bool StreamState::Write(std::string_view data) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!begun_ || ended_ || closed_) {
    return false;
  }
  if (data.empty()) {
    // An empty chunk would read as the end of a chunked body.
    return true;
  }
  chunks_.emplace_back(data);
  unsent_ += data.size();
  ArmedWakeLocked();
  // The connection drains the queue on its own thread: waiting there would never end.
  if (unsent_ > kStreamQueueLimit && !executor_->running_in_this_thread()) {
    drained_.wait(lock, [this] { return closed_ || unsent_ <= kStreamQueueLimit; });
  }
  return !closed_;
}

void StreamState::End() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!begun_ || ended_) {
    return;
  }
  ended_ = true;
  ArmedWakeLocked();
}

bool StreamState::Closed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_ || ended_ || finished_;
}

void StreamState::Abandon() {
  std::lock_guard<std::mutex> lock(mu_);
  abandoned_ = true;
  ArmedWakeLocked();
}

bool StreamState::Take(StreamWork& work) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finish_) {
    work.finish = std::move(finish_);
    finish_.reset();
  }
  if (begun_ && !begin_taken_) {
    begin_taken_ = true;
    work.begin = true;
    work.status = status_;
    work.headers = std::move(headers_);
  }
  work.chunks.swap(chunks_);
  work.end = begun_ && (ended_ || abandoned_);
  work.abandoned = abandoned_ && !begun_ && !finished_;
  work.closed = closed_;
  bool any = work.finish || work.begin || !work.chunks.empty() || work.end || work.abandoned ||
             work.closed;
  waiting_ = !any;
  return any;
}

void StreamState::Sent(size_t bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  unsent_ -= std::min(bytes, unsent_);
  if (unsent_ <= kStreamQueueLimit) {
    drained_.notify_all();
  }
}

void StreamState::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  waiting_ = false;
  drained_.notify_all();
}

bool StreamState::CloseIfBegun() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!begun_) {
    return false;
  }
  closed_ = true;
  waiting_ = false;
  drained_.notify_all();
  return true;
}

void StreamState::Detach() {
  std::lock_guard<std::mutex> lock(mu_);
  closed_ = true;
  waiting_ = false;
  // Nothing queued will be written now; keeping it would only hold memory until the
  // producer lets go.
  chunks_.clear();
  finish_.reset();
  wake_ = nullptr;
  drained_.notify_all();
}

void StreamState::ArmedWakeLocked() {
  if (!waiting_) {
    return;
  }
  waiting_ = false;
  // Posting under the lock is what makes Detach final: a post is either done before Detach
  // takes the lock, or not done at all.
  boost::asio::post(*executor_, [self = shared_from_this()] { self->RunWake(); });
}

void StreamState::RunWake() {
  if (wake_ != nullptr) {
    wake_->cancel();
  }
}

std::shared_ptr<StreamState> ResponseAccess::TakeStream(Response& response) {
  std::shared_ptr<Stream> handle = std::move(response.stream_);
  return static_cast<StreamState*>(handle.get())->shared_from_this();
}

}  // namespace internal

std::shared_ptr<Stream> Response::Defer() {
  if (stream_ != nullptr) {
    return stream_;
  }
  internal::Connection* connection = internal::ResponseAccess::ConnectionOf(*this);
  std::optional<internal::Executor> executor;
  if (connection != nullptr) {
    executor = connection->executor();
  }
  auto state = std::make_shared<internal::StreamState>(executor);
  // The producer's handle is a second owner of the same object, whose "deleter" tells the
  // connection that the producer let go: the connection's own reference must not keep a
  // forgotten stream waiting forever.
  stream_ = std::shared_ptr<Stream>(state.get(), [state](Stream* /*unused*/) mutable {
    state->Abandon();
    state.reset();
  });
  return stream_;
}

}  // namespace kiln::http

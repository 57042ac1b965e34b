#include "auth/auth.h"

namespace kiln::auth {
namespace {

std::string Aad(const std::string& key_id, const std::string& idem_key) {
  return "idempotency:" + key_id + ":" + idem_key;
}

}  // namespace

Idempotency::Idempotency(store::Store& store, const crypto::SecretBox& box, const Clock& clock)
    : store_(store), box_(box), clock_(clock) {}

Result<std::optional<Idempotency::Replay>> Idempotency::Begin(const std::string& key_id,
                                                              const std::string& idem_key,
                                                              const std::string& request_hash) {
  std::string slot = key_id + '\n' + idem_key;
  {
    std::lock_guard lock(mu_);
    if (in_flight_.contains(slot)) {
      return Status::Conflict("IDEMPOTENCY_IN_PROGRESS",
                              "a request with this Idempotency-Key is still running",
                              "wait for it to finish, then retry to get its response");
    }
    in_flight_.insert(slot);
  }
  auto record = store_.GetIdempotency(key_id, idem_key);
  if (!record.ok()) {
    Abandon(key_id, idem_key);
    return record.status();
  }
  if (!record->has_value() || clock_.NowMs() - (*record)->created_ms >= kTtlMs) {
    return std::optional<Replay>();  // the slot stays held until Finish or Abandon
  }
  Abandon(key_id, idem_key);
  const store::IdempotencyRecord& r = **record;
  if (r.request_hash != request_hash) {
    return Status::Unprocessable("IDEMPOTENCY_KEY_REUSED",
                                 "this Idempotency-Key was used with a different request",
                                 "use a new Idempotency-Key for a different request");
  }
  KILN_ASSIGN_OR_RETURN(std::string body, box_.Open(r.sealed_body, Aad(key_id, idem_key)));
  return std::optional<Replay>(Replay{r.status, std::move(body)});
}

void Idempotency::Finish(const std::string& key_id, const std::string& idem_key,
                         const std::string& request_hash, int status, const std::string& body) {
  store::IdempotencyRecord r;
  r.key_id = key_id;
  r.idem_key = idem_key;
  r.request_hash = request_hash;
  r.status = status;
  r.sealed_body = box_.Seal(body, Aad(key_id, idem_key));
  r.created_ms = clock_.NowMs();
  Status s = store_.PutIdempotency(r);
  if (!s.ok()) {
    log::Warn("could not store idempotent response", {{"error", s.ToString()}});
  }
  Abandon(key_id, idem_key);
}

void Idempotency::Abandon(const std::string& key_id, const std::string& idem_key) {
  std::lock_guard lock(mu_);
  in_flight_.erase(key_id + '\n' + idem_key);
}

Result<int64_t> Idempotency::Purge() { return store_.PurgeIdempotency(clock_.NowMs() - kTtlMs); }

}  // namespace kiln::auth

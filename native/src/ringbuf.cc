// SPDX-License-Identifier: Apache-2.0
// RingBufferReader: consumes a BPF ring buffer on its own thread and delivers records to JS in
// batches. Each batch is one Buffer of [u32 length][record bytes] items. The thread polls with a
// timeout and also consumes on timeout, so records submitted without a wake-up are never stranded.
// When JS falls behind, delivery blocks, the ring fills, and the datapath counts lost events.
#include <bpf/libbpf.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "common.h"

namespace ds {
namespace {

constexpr size_t kBatchBytes = 256 * 1024;
constexpr int kPollMs = 50;

class RingBufferReader : public Napi::ObjectWrap<RingBufferReader> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingBufferReader",
                       {
                           InstanceMethod("close", &RingBufferReader::Close),
                           InstanceMethod("ref", &RingBufferReader::Ref),
                           InstanceMethod("unref", &RingBufferReader::Unref),
                       });
  }

  // new RingBufferReader(mapFd, onBatch(buffer, count))
  explicit RingBufferReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBufferReader>(info) {
    Napi::Env env = info.Env();
    int fd = GetInt(info, 0, "mapFd");
    if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "onBatch must be a function");
    rb_ = ring_buffer__new(fd, &RingBufferReader::OnSample, this, nullptr);
    if (!rb_) ThrowErrno(env, "ring_buffer__new", errno);
    tsfn_ = Napi::ThreadSafeFunction::New(env, info[1].As<Napi::Function>(), "doorstep-ringbuf", 16, 1);
    pending_.reserve(kBatchBytes + 4096);
    thread_ = std::thread([this] { Run(); });
  }

  ~RingBufferReader() override { Stop(); }

 private:
  struct Batch {
    std::vector<uint8_t> bytes;
    uint32_t count;
  };

  static int OnSample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingBufferReader*>(ctx);
    uint32_t len = static_cast<uint32_t>(size);
    size_t at = self->pending_.size();
    self->pending_.resize(at + 4 + size);
    memcpy(self->pending_.data() + at, &len, 4);
    memcpy(self->pending_.data() + at + 4, data, size);
    self->pending_count_++;
    if (self->pending_.size() >= kBatchBytes) self->Flush();
    return 0;
  }

  void Flush() {
    if (pending_count_ == 0) return;
    auto* batch = new Batch{std::move(pending_), pending_count_};
    pending_ = std::vector<uint8_t>();
    pending_.reserve(kBatchBytes + 4096);
    pending_count_ = 0;
    napi_status status = tsfn_.BlockingCall(batch, [](Napi::Env env, Napi::Function fn, Batch* b) {
      auto* owned = new std::vector<uint8_t>(std::move(b->bytes));
      uint32_t count = b->count;
      delete b;
      Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(
          env, owned->data(), owned->size(), [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, owned);
      fn.Call({buf, Napi::Number::New(env, count)});
    });
    if (status != napi_ok) delete batch;
  }

  void Run() {
    while (!stop_.load()) {
      int n = ring_buffer__poll(rb_, kPollMs);
      if (n == 0) ring_buffer__consume(rb_);
      Flush();
    }
    ring_buffer__consume(rb_);
    Flush();
  }

  // Records still in flight at close are dropped: aborting first makes a BlockingCall that waits
  // on this (JS) thread return instead of deadlocking the join.
  void Stop() {
    if (stopped_) return;
    stopped_ = true;
    stop_.store(true);
    tsfn_.Abort();
    if (thread_.joinable()) thread_.join();
    ring_buffer__free(rb_);
    rb_ = nullptr;
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  Napi::Value Ref(const Napi::CallbackInfo& info) {
    if (!stopped_) tsfn_.Ref(info.Env());
    return info.Env().Undefined();
  }

  Napi::Value Unref(const Napi::CallbackInfo& info) {
    if (!stopped_) tsfn_.Unref(info.Env());
    return info.Env().Undefined();
  }

  ring_buffer* rb_ = nullptr;
  Napi::ThreadSafeFunction tsfn_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool stopped_ = false;
  std::vector<uint8_t> pending_;
  uint32_t pending_count_ = 0;
};

}  // namespace

void InitRingBuffer(Napi::Env env, Napi::Object exports) {
  exports.Set("RingBufferReader", RingBufferReader::Define(env));
}

}  // namespace ds

// SPDX-License-Identifier: Apache-2.0
// RingBufferReader: consumes a BPF ring buffer on its own thread and delivers records to JS in
// batches. Each batch is one Buffer of [u32 length][record bytes] items. The thread polls with a
// timeout and also consumes on timeout, so records submitted without a wake-up are never stranded.
// When JS falls behind, delivery blocks, the ring fills, and the datapath counts lost events.
#include <bpf/libbpf.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "common.h"

namespace ds {
namespace {

constexpr size_t kBatchBytes = 256 * 1024;
constexpr size_t kMaxRecord = 4096;
constexpr int kPollMs = 50;
constexpr int kPauseUs = 1000;

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
    pending_ = NewBytes();
    thread_ = std::thread([this] { Run(); });
  }

  ~RingBufferReader() override { Stop(); }

 private:
  // A batch's bytes: allocated once with room for kBatchBytes plus one record, never zero-filled
  // (a std::vector resize would clear every byte it is about to overwrite).
  struct Batch {
    uint8_t* bytes;
    size_t size;
    uint32_t count;
  };

  static uint8_t* NewBytes() { return static_cast<uint8_t*>(malloc(kBatchBytes + kMaxRecord)); }

  static int OnSample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingBufferReader*>(ctx);
    if (size > kMaxRecord - 4) return 0;  // no ds_event is this large
    uint32_t len = static_cast<uint32_t>(size);
    uint8_t* at = self->pending_ + self->pending_size_;
    memcpy(at, &len, 4);
    memcpy(at + 4, data, size);
    self->pending_size_ += 4 + size;
    self->pending_count_++;
    if (self->pending_size_ >= kBatchBytes) self->Flush();
    return 0;
  }

  void Flush() {
    if (pending_count_ == 0) return;
    auto* batch = new Batch{pending_, pending_size_, pending_count_};
    pending_ = NewBytes();
    pending_size_ = 0;
    pending_count_ = 0;
    napi_status status = tsfn_.BlockingCall(batch, [](Napi::Env env, Napi::Function fn, Batch* b) {
      uint32_t count = b->count;
      Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, b->bytes, b->size, [](Napi::Env, uint8_t* bytes) { free(bytes); });
      delete b;
      fn.Call({buf, Napi::Number::New(env, count)});
    });
    if (status != napi_ok) {
      free(batch->bytes);
      delete batch;
    }
  }

  void Run() {
    while (!stop_.load()) {
      int n = ring_buffer__poll(rb_, kPollMs);
      if (n == 0) ring_buffer__consume(rb_);
      Flush();
      // Batch wake-ups: the kernel wakes a reader that has caught up on every next record, so a
      // reader that drains and waits again pays a context switch per few records. Pausing after
      // a drain lets records gather (at 1M/s, ~1,000 per pause; the ring holds ~170,000).
      if (n > 0 && !stop_.load()) std::this_thread::sleep_for(std::chrono::microseconds(kPauseUs));
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
    free(pending_);
    pending_ = nullptr;
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
  uint8_t* pending_ = nullptr;
  size_t pending_size_ = 0;
  uint32_t pending_count_ = 0;
};

}  // namespace

void InitRingBuffer(Napi::Env env, Napi::Object exports) {
  exports.Set("RingBufferReader", RingBufferReader::Define(env));
}

}  // namespace ds

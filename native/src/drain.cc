// SPDX-License-Identifier: Apache-2.0
// On-demand readers for the summary path, called from JS in bounded slices (no thread, no
// wake-ups): RingDrain consumes a BPF ring buffer up to N records per call (ds_dirty, which the
// datapath writes without waking anyone), mapLookupMany looks many keys up in one call, and
// mapReadBatch walks a hash map a slice at a time from an opaque cursor.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common.h"

namespace ds {
namespace {

class RingDrain : public Napi::ObjectWrap<RingDrain> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingDrain",
                       {InstanceMethod("drain", &RingDrain::Drain), InstanceMethod("pending", &RingDrain::Pending),
                        InstanceMethod("close", &RingDrain::Close)});
  }

  // new RingDrain(mapFd)
  explicit RingDrain(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingDrain>(info) {
    Napi::Env env = info.Env();
    int fd = GetInt(info, 0, "mapFd");
    bpf_map_info mi{};
    uint32_t len = sizeof mi;
    int err = bpf_obj_get_info_by_fd(fd, &mi, &len);
    if (err) ThrowErrno(env, "bpf_obj_get_info_by_fd", err);
    if (mi.type != BPF_MAP_TYPE_RINGBUF) throw Napi::TypeError::New(env, "not a ring buffer");
    page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_ = mi.max_entries;
    mask_ = size_ - 1;
    void* c = mmap(nullptr, page_, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (c == MAP_FAILED) ThrowErrno(env, "mmap(ring consumer)", errno);
    void* p = mmap(nullptr, page_ + 2 * size_, PROT_READ, MAP_SHARED, fd, static_cast<off_t>(page_));
    if (p == MAP_FAILED) {
      int e = errno;
      munmap(c, page_);
      ThrowErrno(env, "mmap(ring producer)", e);
    }
    consumer_ = static_cast<uint8_t*>(c);
    producer_ = static_cast<uint8_t*>(p);
  }

  ~RingDrain() override { Unmap(); }

 private:
  void Unmap() {
    if (consumer_) munmap(consumer_, page_);
    if (producer_) munmap(producer_, page_ + 2 * size_);
    consumer_ = producer_ = nullptr;
  }

  unsigned long* ConsPos() { return reinterpret_cast<unsigned long*>(consumer_); }
  unsigned long* ProdPos() { return reinterpret_cast<unsigned long*>(producer_); }

  // drain(maxRecords, recordSize) → { records: Buffer (count × recordSize), count }: consumes up
  // to maxRecords whole records (shorter ones are zero-padded, longer ones cut) and releases
  // their space to the producer.
  Napi::Value Drain(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!consumer_) throw Napi::Error::New(env, "the ring drain is closed");
    uint32_t max = GetUint(info, 0, "maxRecords");
    uint32_t rec = GetUint(info, 1, "recordSize");
    std::vector<uint8_t> out;
    out.reserve(static_cast<size_t>(std::min<uint32_t>(max, 65536)) * rec);
    uint32_t count = 0;
    unsigned long cons = __atomic_load_n(ConsPos(), __ATOMIC_ACQUIRE);
    unsigned long prod = __atomic_load_n(ProdPos(), __ATOMIC_ACQUIRE);
    uint8_t* data = producer_ + page_;
    while (cons < prod && count < max) {
      uint32_t* hdr = reinterpret_cast<uint32_t*>(data + (cons & mask_));
      uint32_t len = __atomic_load_n(hdr, __ATOMIC_ACQUIRE);
      if (len & BPF_RINGBUF_BUSY_BIT) break;  // still being written: the next call takes it
      uint32_t sz = len & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
      if (!(len & BPF_RINGBUF_DISCARD_BIT)) {
        size_t at = out.size();
        out.resize(at + rec, 0);
        memcpy(out.data() + at, reinterpret_cast<uint8_t*>(hdr) + BPF_RINGBUF_HDR_SZ, std::min(sz, rec));
        count++;
      }
      cons += (static_cast<unsigned long>(sz) + BPF_RINGBUF_HDR_SZ + 7) & ~7UL;
      __atomic_store_n(ConsPos(), cons, __ATOMIC_RELEASE);
    }
    Napi::Object result = Napi::Object::New(env);
    result.Set("records", Napi::Buffer<uint8_t>::Copy(env, out.data(), out.size()));
    result.Set("count", Napi::Number::New(env, count));
    return result;
  }

  // pending() → bytes written and not yet consumed
  Napi::Value Pending(const Napi::CallbackInfo& info) {
    if (!consumer_) return Napi::Number::New(info.Env(), 0);
    unsigned long cons = __atomic_load_n(ConsPos(), __ATOMIC_ACQUIRE);
    unsigned long prod = __atomic_load_n(ProdPos(), __ATOMIC_ACQUIRE);
    return Napi::Number::New(info.Env(), static_cast<double>(prod - cons));
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Unmap();
    return info.Env().Undefined();
  }

  size_t page_ = 0;
  size_t size_ = 0;
  unsigned long mask_ = 0;
  uint8_t* consumer_ = nullptr;
  uint8_t* producer_ = nullptr;
};

// mapLookupMany(fds[], keys, count, keySize, valueSize) → { values: Buffer (count × valueSize),
// found: Buffer (count bytes: 1 + the index in fds of the map that holds the key, 0 = none) }.
// The maps are tried in order; one call for many keys.
Napi::Value MapLookupMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "fds must be an array");
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<int> fds;
  for (uint32_t i = 0; i < list.Length(); i++) fds.push_back(list.Get(i).As<Napi::Number>().Int32Value());
  Bytes keys = GetBytes(info, 1, "keys");
  uint32_t count = GetUint(info, 2, "count");
  uint32_t key_size = GetUint(info, 3, "keySize");
  uint32_t value_size = GetUint(info, 4, "valueSize");
  for (int fd : fds) CheckEntrySizes(env, GetMapShape(env, fd), "mapLookupMany", key_size, value_size);
  if (static_cast<uint64_t>(count) * key_size > keys.size) throw Napi::RangeError::New(env, "keys is smaller than count keys");
  Napi::Buffer<uint8_t> values = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(count) * value_size);
  Napi::Buffer<uint8_t> found = Napi::Buffer<uint8_t>::New(env, count);
  for (uint32_t i = 0; i < count; i++) {
    found.Data()[i] = 0;
    for (size_t m = 0; m < fds.size(); m++) {
      int err = bpf_map_lookup_elem(fds[m], keys.data + static_cast<size_t>(i) * key_size, values.Data() + static_cast<size_t>(i) * value_size);
      if (err == 0) {
        found.Data()[i] = static_cast<uint8_t>(m + 1);
        break;
      }
      if (err != -ENOENT) ThrowErrno(env, "bpf_map_lookup_elem", err);
    }
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("values", values);
  out.Set("found", found);
  return out;
}

// mapReadBatch(fd, keySize, valueSize, maxCount, cursor | null, countOnly = false, presentAt = -1)
// → { keys, values, count, cursor }: one slice of a map's entries (BPF_MAP_LOOKUP_BATCH) from
// `cursor` (null: the start); cursor null in the result = the walk is over. maxCount must exceed a
// hash map's longest bucket (any value ≥ 256 does in practice). countOnly: read into a buffer of
// this thread's and return only the count (keys and values empty). presentAt ≥ 0: only the
// entries whose value has a non-zero byte there (an array's used entries), packed, are returned
// and counted. Entries racing with the datapath may be missed.
Napi::Value MapReadBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = GetInt(info, 0, "fd");
  uint32_t key_size = GetUint(info, 1, "keySize");
  uint32_t value_size = GetUint(info, 2, "valueSize");
  uint32_t max = GetUint(info, 3, "maxCount");
  CheckEntrySizes(env, GetMapShape(env, fd), "mapReadBatch", key_size, value_size);
  uint8_t in_batch[8] = {0}, out_batch[8] = {0};
  bool first = true;
  if (info.Length() > 4 && info[4].IsTypedArray()) {
    Bytes c = GetBytes(info, 4, "cursor", 8);
    memcpy(in_batch, c.data, 8);
    first = false;
  }
  bool count_only = info.Length() > 5 && info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
  static thread_local std::vector<uint8_t> scratch_keys, scratch_values;
  Napi::Buffer<uint8_t> keys, values;
  uint8_t *key_data, *value_data;
  if (count_only) {
    scratch_keys.resize(static_cast<size_t>(max) * key_size);
    scratch_values.resize(static_cast<size_t>(max) * value_size);
    key_data = scratch_keys.data();
    value_data = scratch_values.data();
    keys = Napi::Buffer<uint8_t>::New(env, 0);
    values = Napi::Buffer<uint8_t>::New(env, 0);
  } else {
    keys = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(max) * key_size);
    values = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(max) * value_size);
    key_data = keys.Data();
    value_data = values.Data();
  }
  int64_t present_at = info.Length() > 6 && info[6].IsNumber() ? info[6].As<Napi::Number>().Int64Value() : -1;
  if (present_at >= static_cast<int64_t>(value_size)) throw Napi::RangeError::New(env, "presentAt is past the value");
  uint32_t n = max;
  LIBBPF_OPTS(bpf_map_batch_opts, opts);
  int err = bpf_map_lookup_batch(fd, first ? nullptr : in_batch, out_batch, key_data, value_data, &n, &opts);
  if (err && err != -ENOENT) ThrowErrno(env, "bpf_map_lookup_batch", err);
  if (present_at >= 0) {
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
      if (!value_data[static_cast<size_t>(i) * value_size + present_at]) continue;
      if (kept != i) {
        memmove(key_data + static_cast<size_t>(kept) * key_size, key_data + static_cast<size_t>(i) * key_size, key_size);
        memmove(value_data + static_cast<size_t>(kept) * value_size, value_data + static_cast<size_t>(i) * value_size, value_size);
      }
      kept++;
    }
    n = kept;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", keys);
  out.Set("values", values);
  out.Set("count", Napi::Number::New(env, n));
  if (err == -ENOENT) {
    out.Set("cursor", env.Null());
  } else {
    out.Set("cursor", Napi::Buffer<uint8_t>::Copy(env, out_batch, 8));
  }
  return out;
}

}  // namespace

void InitDrain(Napi::Env env, Napi::Object exports) {
  exports.Set("RingDrain", RingDrain::Define(env));
  exports.Set("mapLookupMany", Napi::Function::New(env, MapLookupMany));
  exports.Set("mapReadBatch", Napi::Function::New(env, MapReadBatch));
}

}  // namespace ds

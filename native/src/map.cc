// SPDX-License-Identifier: Apache-2.0
// Map operations on raw fds: create, lookup, update (single and batch), delete, iterate, dump,
// freeze, pin and open pins, info. Keys and values are Buffers laid out per bpf/include/abi.h,
// each checked against the map's own key and value sizes first (map_shape.cc).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "common.h"

namespace ds {
namespace {

// The kernel's internal ENOTSUPP (524) is what a map type without batch operations returns.
constexpr int kKernelEnotsupp = 524;

bool IsUnsupported(int err) {
  return err == -EINVAL || err == -ENOTSUP || err == -EOPNOTSUPP || err == -kKernelEnotsupp;
}

// mapCreate(type, keySize, valueSize, maxEntries, flags, innerMapFd = -1, name = "") → fd
Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  opts.map_flags = GetUint(info, 4, "flags");
  if (info.Length() > 5 && info[5].IsNumber()) {
    int inner = info[5].As<Napi::Number>().Int32Value();
    if (inner >= 0) opts.inner_map_fd = inner;
  }
  std::string name;
  if (info.Length() > 6 && info[6].IsString()) name = info[6].As<Napi::String>();
  int fd = bpf_map_create(static_cast<bpf_map_type>(GetUint(info, 0, "type")), name.empty() ? nullptr : name.c_str(),
                          GetUint(info, 1, "keySize"), GetUint(info, 2, "valueSize"), GetUint(info, 3, "maxEntries"),
                          &opts);
  if (fd < 0) ThrowErrno(env, "bpf_map_create(" + name + ")", fd);
  return Napi::Number::New(env, fd);
}

// mapLookup(fd, key, valueOut) → boolean (false when the key is absent)
Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  int fd = GetInt(info, 0, "fd");
  Bytes key = GetBytes(info, 1, "key");
  Bytes value = GetBytes(info, 2, "value");
  MapShape shape = GetMapShape(info.Env(), fd);
  CheckKey(info.Env(), shape, "mapLookup", key);
  CheckValue(info.Env(), shape, "mapLookup", value);
  int err = bpf_map_lookup_elem(fd, key.data, value.data);
  if (err == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  if (err) ThrowErrno(info.Env(), "bpf_map_lookup_elem", err);
  return Napi::Boolean::New(info.Env(), true);
}

// mapUpdate(fd, key, value, flags = BPF_ANY)
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  int fd = GetInt(info, 0, "fd");
  Bytes key = GetBytes(info, 1, "key");
  Bytes value = GetBytes(info, 2, "value");
  MapShape shape = GetMapShape(info.Env(), fd);
  CheckKey(info.Env(), shape, "mapUpdate", key);
  CheckValue(info.Env(), shape, "mapUpdate", value);
  uint64_t flags = info.Length() > 3 ? GetUint(info, 3, "flags") : static_cast<uint64_t>(BPF_ANY);
  int err = bpf_map_update_elem(fd, key.data, value.data, flags);
  if (err) ThrowErrno(info.Env(), "bpf_map_update_elem", err);
  return info.Env().Undefined();
}

// mapUpdateFd(outerFd, key, innerFd): store a map in an ARRAY_OF_MAPS/HASH_OF_MAPS slot.
Napi::Value MapUpdateFd(const Napi::CallbackInfo& info) {
  int fd = GetInt(info, 0, "fd");
  Bytes key = GetBytes(info, 1, "key");
  CheckKey(info.Env(), GetMapShape(info.Env(), fd), "mapUpdateFd", key);
  uint32_t inner = GetUint(info, 2, "innerFd");
  int err = bpf_map_update_elem(fd, key.data, &inner, BPF_ANY);
  if (err) ThrowErrno(info.Env(), "bpf_map_update_elem(map-in-map)", err);
  return info.Env().Undefined();
}

// Map-in-map writes (innerFd -1 = delete), one thread each. The kernel waits an RCU grace period
// after every map-in-map write; issued together, the waits overlap, so N writes cost about one
// grace period instead of N.
struct FdWrite {
  int outer;
  std::vector<uint8_t> key;
  int inner;
  int err;
};

std::vector<FdWrite> GetFdWrites(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArray()) throw Napi::TypeError::New(env, "writes must be an array");
  Napi::Array list = info[0].As<Napi::Array>();
  std::vector<FdWrite> writes;
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Array item = list.Get(i).As<Napi::Array>();
    Napi::Buffer<uint8_t> key = item.Get(1u).As<Napi::Buffer<uint8_t>>();
    int outer = item.Get(0u).As<Napi::Number>().Int32Value();
    CheckKey(env, GetMapShape(env, outer), "mapUpdateFdMany", Bytes{key.Data(), key.Length()});
    writes.push_back({outer, std::vector<uint8_t>(key.Data(), key.Data() + key.Length()), item.Get(2u).As<Napi::Number>().Int32Value(), 0});
  }
  return writes;
}

void RunFdWrites(std::vector<FdWrite>& writes) {
  std::vector<std::thread> threads;
  for (FdWrite& w : writes) {
    threads.emplace_back([&w] {
      if (w.inner < 0) {
        w.err = bpf_map_delete_elem(w.outer, w.key.data());
        if (w.err == -ENOENT) w.err = 0;
      } else {
        uint32_t inner = static_cast<uint32_t>(w.inner);
        w.err = bpf_map_update_elem(w.outer, w.key.data(), &inner, BPF_ANY);
      }
    });
  }
  for (std::thread& t : threads) t.join();
}

// mapUpdateFdMany([[outerFd, key, innerFd | -1], …]): the writes, waited for here.
Napi::Value MapUpdateFdMany(const Napi::CallbackInfo& info) {
  std::vector<FdWrite> writes = GetFdWrites(info);
  RunFdWrites(writes);
  for (const FdWrite& w : writes)
    if (w.err) ThrowErrno(info.Env(), "bpf_map_update_elem(map-in-map)", w.err);
  return info.Env().Undefined();
}

// mapDelete(fd, key) → boolean (false when absent)
Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  int fd = GetInt(info, 0, "fd");
  Bytes key = GetBytes(info, 1, "key");
  CheckKey(info.Env(), GetMapShape(info.Env(), fd), "mapDelete", key);
  int err = bpf_map_delete_elem(fd, key.data);
  if (err == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  if (err) ThrowErrno(info.Env(), "bpf_map_delete_elem", err);
  return Napi::Boolean::New(info.Env(), true);
}

// A batch of entries to write into one map: kernel batch update where the map type supports it,
// else one update per element. skip_zero: leave out entries whose value is all zero bytes; only for
// a fresh array map, whose every slot already reads as zero, so writing only the rest gives the
// same map.
struct BatchUpdate {
  int fd;
  const uint8_t* keys;
  const uint8_t* values;
  uint32_t count;
  uint32_t key_size;
  uint32_t value_size;
  bool skip_zero;
};

bool AllZero(const uint8_t* v, uint32_t size) {
  for (uint32_t b = 0; b < size; b++)
    if (v[b]) return false;
  return true;
}

// Performs `u`; returns 0 or a negative errno, with the failing call in `op`. Touches no JS.
int RunBatchUpdate(BatchUpdate u, const char** op) {
  std::vector<uint8_t> kept_keys, kept_values;
  if (u.skip_zero) {
    for (uint32_t i = 0; i < u.count; i++) {
      const uint8_t* v = u.values + static_cast<size_t>(i) * u.value_size;
      if (AllZero(v, u.value_size)) continue;
      kept_keys.insert(kept_keys.end(), u.keys + static_cast<size_t>(i) * u.key_size, u.keys + static_cast<size_t>(i + 1) * u.key_size);
      kept_values.insert(kept_values.end(), v, v + u.value_size);
    }
    u.count = static_cast<uint32_t>(kept_values.size() / std::max<uint32_t>(u.value_size, 1));
    u.keys = kept_keys.data();
    u.values = kept_values.data();
  }
  constexpr uint32_t kChunk = 65536;
  uint32_t done = 0;
  while (done < u.count) {
    uint32_t n = std::min(kChunk, u.count - done);
    LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = BPF_ANY);
    int err = bpf_map_update_batch(u.fd, u.keys + static_cast<size_t>(done) * u.key_size,
                                   u.values + static_cast<size_t>(done) * u.value_size, &n, &opts);
    if (IsUnsupported(err)) break;  // e.g. LPM tries: single updates from `done` (repeats are harmless)
    if (err) {
      *op = "bpf_map_update_batch";
      return err;
    }
    done += n;
  }
  for (; done < u.count; done++) {
    int err = bpf_map_update_elem(u.fd, u.keys + static_cast<size_t>(done) * u.key_size,
                                  u.values + static_cast<size_t>(done) * u.value_size, BPF_ANY);
    if (err) {
      *op = "bpf_map_update_elem";
      return err;
    }
  }
  return 0;
}

BatchUpdate GetBatchUpdate(const Napi::CallbackInfo& info) {
  Bytes keys = GetBytes(info, 1, "keys");
  Bytes values = GetBytes(info, 2, "values");
  BatchUpdate u{GetInt(info, 0, "fd"), keys.data, values.data, GetUint(info, 3, "count"), GetUint(info, 4, "keySize"),
                GetUint(info, 5, "valueSize"), info.Length() > 6 && info[6].IsBoolean() && info[6].As<Napi::Boolean>().Value()};
  CheckEntrySizes(info.Env(), GetMapShape(info.Env(), u.fd), "mapUpdateBatch", u.key_size, u.value_size);
  if (static_cast<uint64_t>(u.count) * u.key_size > keys.size || static_cast<uint64_t>(u.count) * u.value_size > values.size)
    throw Napi::RangeError::New(info.Env(), "batch buffers are smaller than count entries");
  return u;
}

// mapUpdateBatch(fd, keys, values, count, keySize, valueSize, skipZeroValues = false): `BatchUpdate`.
Napi::Value MapUpdateBatch(const Napi::CallbackInfo& info) {
  const char* op = "";
  int err = RunBatchUpdate(GetBatchUpdate(info), &op);
  if (err) ThrowErrno(info.Env(), op, err);
  return info.Env().Undefined();
}

// An AsyncWorker for map work that answers 0 or a negative errno (with the failing call's name):
// the work on a libuv pool thread, then a promise settled with undefined or an errno-carrying Error.
class ErrnoWorker : public Napi::AsyncWorker {
 public:
  ErrnoWorker(Napi::Env env, const char* name) : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}

  // Queue the work; the worker deletes itself when it has settled the promise.
  Napi::Promise Start() {
    Napi::Promise p = deferred_.Promise();
    Queue();
    return p;
  }

 protected:
  virtual int Run(const char** op) = 0;

 private:
  void Execute() override { err_ = Run(&op_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (!err_) {
      deferred_.Resolve(env.Undefined());
      return;
    }
    deferred_.Reject(ErrnoError(env, op_, err_).Value());
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  int err_ = 0;
  const char* op_ = "";
  Napi::Promise::Deferred deferred_;
};

// The map-in-map writes on a pool thread, so the event loop never waits for the grace periods.
class FdWritesWorker : public ErrnoWorker {
 public:
  FdWritesWorker(Napi::Env env, std::vector<FdWrite> writes) : ErrnoWorker(env, "doorstep-map-in-map"), writes_(std::move(writes)) {}

 private:
  int Run(const char** op) override {
    *op = "bpf_map_update_elem(map-in-map)";
    try {
      RunFdWrites(writes_);
    } catch (const std::system_error&) {  // no thread could be made
      return -EAGAIN;
    }
    for (const FdWrite& w : writes_)
      if (w.err) return w.err;
    return 0;
  }

  std::vector<FdWrite> writes_;
};

// mapUpdateFdManyAsync([[outerFd, key, innerFd | -1], …]) → Promise<void>. The caller keeps the
// inner fds open until it settles.
Napi::Value MapUpdateFdManyAsync(const Napi::CallbackInfo& info) { return (new FdWritesWorker(info.Env(), GetFdWrites(info)))->Start(); }

// A BatchUpdate on a pool thread: a large table (65,536 entries) takes the kernel ~10–30 ms to
// fill, which the event loop should not wait out. The worker holds the key and value buffers.
class BatchUpdateWorker : public ErrnoWorker {
 public:
  explicit BatchUpdateWorker(const Napi::CallbackInfo& info) : ErrnoWorker(info.Env(), "doorstep-map-fill"), update_(GetBatchUpdate(info)) {
    keys_ = Napi::Persistent(info[1].As<Napi::Object>());
    values_ = Napi::Persistent(info[2].As<Napi::Object>());
  }

 private:
  int Run(const char** op) override { return RunBatchUpdate(update_, op); }

  BatchUpdate update_;
  Napi::ObjectReference keys_, values_;
};

// mapUpdateBatchAsync(fd, keys, values, count, keySize, valueSize, skipZeroValues = false) → Promise<void>.
// The caller keeps the map's fd open until it settles.
Napi::Value MapUpdateBatchAsync(const Napi::CallbackInfo& info) { return (new BatchUpdateWorker(info))->Start(); }

// Zero the bytes [offset, offset + width) of every value of an ARRAY map with u32 keys (one field
// of every entry, the others kept): a batch read, then a batch write. With `summary_fd` (an ARRAY
// of u64 words, -1: none), then write its summary: bit k of word k / 64 set where entry k's value
// is not all zero after the clear. Returns 0 or a negative errno, with the failing call in `op`.
// Touches no JS. Writes the datapath makes between the read and the writes are lost: for maps
// where that costs nothing but work.
int RunClearBytes(int fd, uint32_t value_size, uint32_t entries, uint32_t offset, uint32_t width, int summary_fd, const char** op) {
  if (offset + width > value_size) {
    *op = "clear bytes (past the value)";
    return -EINVAL;
  }
  std::vector<uint32_t> keys(entries);
  std::vector<uint8_t> values(static_cast<size_t>(entries) * value_size);
  uint32_t done = 0, in = 0, out = 0;
  bool first = true;
  while (done < entries) {
    uint32_t n = entries - done;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : &in, &out, keys.data() + done,
                                   values.data() + static_cast<size_t>(done) * value_size, &n, &opts);
    if (err && err != -ENOENT) {
      *op = "bpf_map_lookup_batch";
      return err;
    }
    done += n;
    if (err == -ENOENT || n == 0) break;
    in = out;
    first = false;
  }
  for (uint32_t i = 0; i < done; i++) memset(values.data() + static_cast<size_t>(i) * value_size + offset, 0, width);
  BatchUpdate u{fd, reinterpret_cast<const uint8_t*>(keys.data()), values.data(), done, 4, value_size, false};
  int err = RunBatchUpdate(u, op);
  if (err || summary_fd < 0) return err;
  uint32_t words = (entries + 63) / 64;
  std::vector<uint64_t> summary(words, 0);
  std::vector<uint32_t> word_keys(words);
  for (uint32_t w = 0; w < words; w++) word_keys[w] = w;
  for (uint32_t i = 0; i < done; i++) {
    if (!AllZero(values.data() + static_cast<size_t>(i) * value_size, value_size) && keys[i] < entries)
      summary[keys[i] / 64] |= 1ULL << (keys[i] % 64);
  }
  BatchUpdate su{summary_fd, reinterpret_cast<const uint8_t*>(word_keys.data()), reinterpret_cast<const uint8_t*>(summary.data()), words, 4, 8, false};
  return RunBatchUpdate(su, op);
}

struct ClearBytes {
  int fd;
  uint32_t value_size, entries, offset, width;
  int summary_fd;
};

ClearBytes GetClearBytes(const Napi::CallbackInfo& info) {
  int summary = info.Length() > 5 && info[5].IsNumber() ? info[5].As<Napi::Number>().Int32Value() : -1;
  ClearBytes c{GetInt(info, 0, "fd"), GetUint(info, 1, "valueSize"), GetUint(info, 2, "entries"), GetUint(info, 3, "offset"), GetUint(info, 4, "width"), summary};
  // u32 keys, and the summary's u64 words: RunClearBytes reads and writes whole entries of both
  CheckEntrySizes(info.Env(), GetMapShape(info.Env(), c.fd), "mapClearBytes", 4, c.value_size);
  if (summary >= 0) CheckEntrySizes(info.Env(), GetMapShape(info.Env(), summary), "mapClearBytes (summary)", 4, 8);
  return c;
}

// mapClearBytes(fd, valueSize, entries, offset, width, summaryFd = -1): `RunClearBytes`.
Napi::Value MapClearBytes(const Napi::CallbackInfo& info) {
  ClearBytes c = GetClearBytes(info);
  const char* op = "";
  int err = RunClearBytes(c.fd, c.value_size, c.entries, c.offset, c.width, c.summary_fd, &op);
  if (err) ThrowErrno(info.Env(), op, err);
  return info.Env().Undefined();
}

// The same on a pool thread (a 32,768-entry array is ~10–30 ms of reading, zeroing and writing).
class ClearBytesWorker : public ErrnoWorker {
 public:
  explicit ClearBytesWorker(const Napi::CallbackInfo& info) : ErrnoWorker(info.Env(), "doorstep-map-clear"), clear_(GetClearBytes(info)) {}

 private:
  int Run(const char** op) override { return RunClearBytes(clear_.fd, clear_.value_size, clear_.entries, clear_.offset, clear_.width, clear_.summary_fd, op); }

  ClearBytes clear_;
};

// mapClearBytesAsync(fd, valueSize, entries, offset, width, summaryFd = -1) → Promise<void>; the caller keeps fd open until it settles.
Napi::Value MapClearBytesAsync(const Napi::CallbackInfo& info) { return (new ClearBytesWorker(info))->Start(); }

// mapNextKey(fd, key | null, nextOut) → boolean (false at the end)
Napi::Value MapNextKey(const Napi::CallbackInfo& info) {
  int fd = GetInt(info, 0, "fd");
  MapShape shape = GetMapShape(info.Env(), fd);
  Bytes next = GetBytes(info, 2, "next");
  CheckKey(info.Env(), shape, "mapNextKey", next);
  const void* key = nullptr;
  if (info[1].IsTypedArray()) {
    Bytes k = GetBytes(info, 1, "key");
    CheckKey(info.Env(), shape, "mapNextKey", k);
    key = k.data;
  }
  int err = bpf_map_get_next_key(fd, key, next.data);
  if (err == -ENOENT) return Napi::Boolean::New(info.Env(), false);
  if (err) ThrowErrno(info.Env(), "bpf_map_get_next_key", err);
  return Napi::Boolean::New(info.Env(), true);
}

// Walks a map's entries in batches (batch lookup where supported, else key iteration), handing
// each batch to `take`; buffers grow with what is found, so a large `max_count` costs nothing
// until the map is that full. Entries racing with the datapath may be missed.
namespace {
constexpr uint32_t kDumpChunk = 4096;

// `take(n, values)` hears each batch: n entries, their values from `values`. Returns 0 or the
// negative errno of bpf_map_lookup_batch. Touches no JS: pool threads walk maps with it too.
template <typename Take>
int WalkMapRaw(int fd, uint32_t key_size, uint32_t value_size, uint32_t max_count, const uint8_t* after,
               std::vector<uint8_t>& keys, std::vector<uint8_t>& values, bool keep, Take take) {
  uint32_t total = 0;  // entries kept in keys/values (keep) or walked (not keep)
  std::vector<uint8_t> in_batch(std::max<uint32_t>(key_size, 8)), out_batch(std::max<uint32_t>(key_size, 8));
  if (after) memcpy(in_batch.data(), after, key_size);
  bool first = after == nullptr;
  bool batch_ok = true;
  uint32_t walked = 0;
  while (walked < max_count) {
    uint32_t n = std::min(kDumpChunk, max_count - walked);
    size_t at = keep ? total : 0;
    keys.resize((at + n) * key_size);
    values.resize((at + n) * value_size);
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    int err = bpf_map_lookup_batch(fd, first ? nullptr : in_batch.data(), out_batch.data(), keys.data() + at * key_size,
                                   values.data() + at * value_size, &n, &opts);
    if (err && err != -ENOENT) {
      if (first && IsUnsupported(err)) {
        batch_ok = false;
        break;
      }
      return err;
    }
    take(n, values.data() + at * value_size);
    walked += n;
    if (keep) total += n;
    if (err == -ENOENT) break;
    in_batch.swap(out_batch);
    first = false;
  }
  if (!batch_ok) {
    walked = 0;
    total = 0;
    std::vector<uint8_t> cur(key_size), prev_key(key_size);
    bool have_prev = after != nullptr;
    if (after) memcpy(prev_key.data(), after, key_size);
    while (walked < max_count && bpf_map_get_next_key(fd, have_prev ? prev_key.data() : nullptr, cur.data()) == 0) {
      size_t at = keep ? total : 0;
      keys.resize((at + 1) * key_size);
      values.resize((at + 1) * value_size);
      memcpy(keys.data() + at * key_size, cur.data(), key_size);
      if (bpf_map_lookup_elem(fd, cur.data(), values.data() + at * value_size) == 0) {
        take(1, values.data() + at * value_size);
        walked++;
        if (keep) total++;
      }
      memcpy(prev_key.data(), cur.data(), key_size);
      have_prev = true;
    }
  }
  if (keep) {
    keys.resize(static_cast<size_t>(total) * key_size);
    values.resize(static_cast<size_t>(total) * value_size);
  }
  return 0;
}

template <typename Take>
void WalkMap(Napi::Env env, int fd, uint32_t key_size, uint32_t value_size, uint32_t max_count, const uint8_t* after,
             std::vector<uint8_t>& keys, std::vector<uint8_t>& values, bool keep, Take take) {
  int err = WalkMapRaw(fd, key_size, value_size, max_count, after, keys, values, keep, take);
  if (err) ThrowErrno(env, "bpf_map_lookup_batch", err);
}

// Entries of a walk whose value's byte `present_at` is not zero (present_at < 0: every entry).
uint32_t CountPresent(uint32_t n, const uint8_t* values, uint32_t value_size, int64_t present_at) {
  if (present_at < 0) return n;
  uint32_t kept = 0;
  for (uint32_t i = 0; i < n; i++) kept += values[static_cast<size_t>(i) * value_size + present_at] != 0;
  return kept;
}

// A pool thread's own descriptor of the caller's map: the caller may close its fd while the walk
// runs, and the map lives until the walk is over.
int DupFd(Napi::Env env, int fd) {
  int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (own < 0) ThrowErrno(env, "fcntl(F_DUPFD_CLOEXEC)", -errno);
  return own;
}

// Keep, in place, only the first `n` entries of keys/values whose value has a byte that is not
// zero; returns how many.
uint32_t KeepNonZero(uint32_t n, std::vector<uint8_t>& keys, std::vector<uint8_t>& values, uint32_t key_size, uint32_t value_size) {
  uint32_t kept = 0;
  for (uint32_t i = 0; i < n; i++) {
    const uint8_t* v = values.data() + static_cast<size_t>(i) * value_size;
    if (std::all_of(v, v + value_size, [](uint8_t b) { return b == 0; })) continue;
    if (kept != i) {
      memmove(keys.data() + static_cast<size_t>(kept) * key_size, keys.data() + static_cast<size_t>(i) * key_size, key_size);
      memmove(values.data() + static_cast<size_t>(kept) * value_size, v, value_size);
    }
    kept++;
  }
  return kept;
}

// A walk of a map on a pool thread, with its own descriptor of the map (the caller may close its
// fd meanwhile): settles its promise with Result(), or rejects with the walk's errno.
class MapWalkWorker : public Napi::AsyncWorker {
 public:
  Napi::Promise Start() {
    Napi::Promise p = deferred_.Promise();
    Queue();
    return p;
  }

 protected:
  MapWalkWorker(Napi::Env env, const char* name, int fd, uint32_t key_size, uint32_t value_size, uint32_t max_count)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), fd_(DupFd(env, fd)), key_size_(key_size),
        value_size_(value_size), max_count_(max_count) {}
  ~MapWalkWorker() override { close(fd_); }

  virtual Napi::Value Result(Napi::Env env) = 0;

  void OnOK() override {
    Napi::Env env = Env();
    if (err_) deferred_.Reject(ErrnoError(env, "bpf_map_lookup_batch", err_).Value());
    else deferred_.Resolve(Result(env));
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

  Napi::Promise::Deferred deferred_;
  int fd_;
  uint32_t key_size_, value_size_, max_count_;
  uint32_t total_ = 0;
  int err_ = 0;
};

// mapDump on a pool thread: settles with { keys, values, count, walked }; with `skip_zero`, of the
// entries walked only those whose value is not all zero bytes are handed back (`count` of `walked`).
class DumpWorker : public MapWalkWorker {
 public:
  DumpWorker(Napi::Env env, int fd, uint32_t key_size, uint32_t value_size, uint32_t max_count, std::vector<uint8_t> after, bool skip_zero)
      : MapWalkWorker(env, "doorstep-map-dump", fd, key_size, value_size, max_count), after_(std::move(after)), skip_zero_(skip_zero) {}

 private:
  void Execute() override {
    err_ = WalkMapRaw(fd_, key_size_, value_size_, max_count_, after_.empty() ? nullptr : after_.data(), keys_, values_, true,
                      [&](uint32_t n, const uint8_t*) { total_ += n; });
    walked_ = total_;
    if (!err_ && skip_zero_) total_ = KeepNonZero(total_, keys_, values_, key_size_, value_size_);
  }

  Napi::Value Result(Napi::Env env) override {
    Napi::Object out = Napi::Object::New(env);
    out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys_.data(), static_cast<size_t>(total_) * key_size_));
    out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values_.data(), static_cast<size_t>(total_) * value_size_));
    out.Set("count", Napi::Number::New(env, total_));
    out.Set("walked", Napi::Number::New(env, walked_));
    return out;
  }

  std::vector<uint8_t> after_, keys_, values_;
  bool skip_zero_;
  uint32_t walked_ = 0;
};

// mapCount, with presentAt, on a pool thread: settles with the number of entries.
class CountWorker : public MapWalkWorker {
 public:
  CountWorker(Napi::Env env, int fd, uint32_t key_size, uint32_t value_size, uint32_t max_count, int64_t present_at)
      : MapWalkWorker(env, "doorstep-map-count", fd, key_size, value_size, max_count), present_at_(present_at) {}

 private:
  void Execute() override {
    std::vector<uint8_t> keys, values;
    err_ = WalkMapRaw(fd_, key_size_, value_size_, max_count_, nullptr, keys, values, false,
                      [&](uint32_t n, const uint8_t* v) { total_ += CountPresent(n, v, value_size_, present_at_); });
  }

  Napi::Value Result(Napi::Env env) override { return Napi::Number::New(env, total_); }

  int64_t present_at_;
};

// The arguments every walk starts with: (fd, keySize, valueSize, maxCount), the sizes checked
// against the map's; and, at `after_at`, an optional key to start after.
struct WalkArgs {
  int fd;
  uint32_t key_size, value_size, max_count;
  std::vector<uint8_t> after;
};

WalkArgs GetWalkArgs(const Napi::CallbackInfo& info, const char* op, int after_at = -1) {
  Napi::Env env = info.Env();
  WalkArgs a{GetInt(info, 0, "fd"), GetUint(info, 1, "keySize"), GetUint(info, 2, "valueSize"), GetUint(info, 3, "maxCount"), {}};
  CheckEntrySizes(env, GetMapShape(env, a.fd), op, a.key_size, a.value_size);
  if (after_at >= 0 && info.Length() > static_cast<size_t>(after_at) && info[after_at].IsTypedArray()) {
    Bytes k = GetBytes(info, after_at, "after", a.key_size);
    a.after.assign(k.data, k.data + a.key_size);
  }
  return a;
}
}  // namespace

// mapDump(fd, keySize, valueSize, maxCount, after = null) → { keys, values, count }: entries (after
// the key `after`, when given).
Napi::Value MapDump(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  WalkArgs a = GetWalkArgs(info, "mapDump", 4);
  std::vector<uint8_t> keys, values;
  uint32_t total = 0;
  WalkMap(env, a.fd, a.key_size, a.value_size, a.max_count, a.after.empty() ? nullptr : a.after.data(), keys, values, true,
          [&](uint32_t n, const uint8_t*) { total += n; });
  if (env.IsExceptionPending()) return env.Undefined();
  Napi::Object out = Napi::Object::New(env);
  out.Set("keys", Napi::Buffer<uint8_t>::Copy(env, keys.data(), static_cast<size_t>(total) * a.key_size));
  out.Set("values", Napi::Buffer<uint8_t>::Copy(env, values.data(), static_cast<size_t>(total) * a.value_size));
  out.Set("count", Napi::Number::New(env, total));
  return out;
}

// mapDumpAsync(fd, keySize, valueSize, maxCount, after = null, skipZero = false) → Promise<{ keys,
// values, count, walked }>: mapDump on a pool thread (ten thousand rows of an array are ~10–30 ms
// of the kernel's copying). The walk holds its own descriptor of the map. With skipZero, only the
// entries whose value is not all zero come back (`count` of the `walked`): a 10,000-rule version's
// per-rule counters are 1.6 MB, mostly zeros, that the event loop need not allocate to skip.
Napi::Value MapDumpAsync(const Napi::CallbackInfo& info) {
  WalkArgs a = GetWalkArgs(info, "mapDumpAsync", 4);
  bool skip_zero = info.Length() > 5 && info[5].IsBoolean() && info[5].As<Napi::Boolean>().Value();
  return (new DumpWorker(info.Env(), a.fd, a.key_size, a.value_size, a.max_count, std::move(a.after), skip_zero))->Start();
}

// mapCountAsync(fd, keySize, valueSize, maxCount, presentAt = -1) → Promise<number>: the entries
// (those whose value's byte presentAt is not zero, when given), counted on a pool thread in
// fixed-size batches; nothing reaches JavaScript but the number. The walk holds its own
// descriptor of the map.
Napi::Value MapCountAsync(const Napi::CallbackInfo& info) {
  WalkArgs a = GetWalkArgs(info, "mapCountAsync");
  int64_t present_at = info.Length() > 4 && info[4].IsNumber() ? info[4].As<Napi::Number>().Int64Value() : -1;
  if (present_at >= static_cast<int64_t>(a.value_size)) throw Napi::RangeError::New(info.Env(), "presentAt is past the value");
  return (new CountWorker(info.Env(), a.fd, a.key_size, a.value_size, a.max_count, present_at))->Start();
}

Napi::Value MapFreeze(const Napi::CallbackInfo& info) {
  int err = bpf_map_freeze(GetInt(info, 0, "fd"));
  if (err) ThrowErrno(info.Env(), "bpf_map_freeze", err);
  return info.Env().Undefined();
}

// mapInfo(fd) → { id, type, keySize, valueSize, maxEntries, flags, name }
Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_map_info mi = GetMapInfo(env, GetInt(info, 0, "fd"));
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, mi.id));
  out.Set("type", Napi::Number::New(env, mi.type));
  out.Set("keySize", Napi::Number::New(env, mi.key_size));
  out.Set("valueSize", Napi::Number::New(env, mi.value_size));
  out.Set("maxEntries", Napi::Number::New(env, mi.max_entries));
  out.Set("flags", Napi::Number::New(env, mi.map_flags));
  out.Set("name", Napi::String::New(env, mi.name));
  return out;
}

Napi::Value MapFdById(const Napi::CallbackInfo& info) {
  int fd = bpf_map_get_fd_by_id(GetUint(info, 0, "id"));
  if (fd < 0) ThrowErrno(info.Env(), "bpf_map_get_fd_by_id", fd);
  return Napi::Number::New(info.Env(), fd);
}

// objPin(fd, path): pin a map, program or link in bpffs.
Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  std::string path = info[1].As<Napi::String>();
  int err = bpf_obj_pin(GetInt(info, 0, "fd"), path.c_str());
  if (err) ThrowErrno(info.Env(), "bpf_obj_pin(" + path + ")", err);
  return info.Env().Undefined();
}

// objGet(path) → fd of a pinned object.
Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  std::string path = info[0].As<Napi::String>();
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(info.Env(), "bpf_obj_get(" + path + ")", fd);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  close(GetInt(info, 0, "fd"));
  return info.Env().Undefined();
}

}  // namespace

void InitMap(Napi::Env env, Napi::Object exports) {
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
  exports.Set("mapUpdateFd", Napi::Function::New(env, MapUpdateFd));
  exports.Set("mapUpdateFdMany", Napi::Function::New(env, MapUpdateFdMany));
  exports.Set("mapUpdateFdManyAsync", Napi::Function::New(env, MapUpdateFdManyAsync));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, MapUpdateBatch));
  exports.Set("mapUpdateBatchAsync", Napi::Function::New(env, MapUpdateBatchAsync));
  exports.Set("mapClearBytes", Napi::Function::New(env, MapClearBytes));
  exports.Set("mapClearBytesAsync", Napi::Function::New(env, MapClearBytesAsync));
  exports.Set("mapNextKey", Napi::Function::New(env, MapNextKey));
  exports.Set("mapDump", Napi::Function::New(env, MapDump));
  exports.Set("mapDumpAsync", Napi::Function::New(env, MapDumpAsync));
  exports.Set("mapCountAsync", Napi::Function::New(env, MapCountAsync));
  exports.Set("mapFreeze", Napi::Function::New(env, MapFreeze));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo));
  exports.Set("mapFdById", Napi::Function::New(env, MapFdById));
  exports.Set("objPin", Napi::Function::New(env, ObjPin));
  exports.Set("objGet", Napi::Function::New(env, ObjGet));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
}

}  // namespace ds

// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the addon: errno-carrying JS errors, buffer access, the libbpf log capture.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

struct btf;           // libbpf's (bpf/btf.h)
struct bpf_map_info;  // the kernel's (linux/bpf.h)

namespace ds {

// Throws a JS Error "<op>: <strerror>" with `errno` (positive) and `op` properties.
// `err` may be negative (libbpf convention) or positive.
[[noreturn]] void ThrowErrno(Napi::Env env, const std::string& op, int err);

// The same error, not thrown (a worker's promise rejects with it); `detail` follows the message.
Napi::Error ErrnoError(Napi::Env env, const std::string& op, int err, const std::string& detail = "");

// Bytes of a Buffer/TypedArray argument, with a size check against `expected` (0 = any).
struct Bytes {
  uint8_t* data;
  size_t size;
};
Bytes GetBytes(const Napi::CallbackInfo& info, size_t index, const char* name, size_t expected = 0);

int GetInt(const Napi::CallbackInfo& info, size_t index, const char* name);
uint32_t GetUint(const Napi::CallbackInfo& info, size_t index, const char* name);

// A map's own shape as the kernel reports it (native/src/map_shape.cc). value_bytes: what one
// value takes in a lookup or update buffer (per-CPU maps: 8-byte-aligned value_size × possible CPUs).
struct MapShape {
  uint32_t id, type, key_size, value_size, value_bytes;
  char name[16];
};
MapShape GetMapShape(Napi::Env env, int fd);
// The kernel's bpf_map_info of a map fd (throws an errno error).
::bpf_map_info GetMapInfo(Napi::Env env, int fd);
// Throw a RangeError naming the map unless the buffer (or the per-entry sizes of a batch) match
// the map's own key size and value bytes: a syscall would read or write past a shorter buffer.
void CheckKey(Napi::Env env, const MapShape& s, const char* op, const Bytes& key);
void CheckValue(Napi::Env env, const MapShape& s, const char* op, const Bytes& value);
void CheckEntrySizes(Napi::Env env, const MapShape& s, const char* op, uint64_t key_size, uint64_t value_size);

// The name a BTF type is declared by (a typedef's own: __u32), through const and volatile.
std::string BtfTypeName(const ::btf* types, uint32_t id);

// libbpf's log lines since the last call (warnings and info), for error messages.
std::string TakeLibbpfLog();
void InstallLibbpfLog();

void InitObject(Napi::Env env, Napi::Object exports);
void InitMap(Napi::Env env, Napi::Object exports);
void InitLink(Napi::Env env, Napi::Object exports);
void InitRingBuffer(Napi::Env env, Napi::Object exports);
void InitTestRun(Napi::Env env, Napi::Object exports);
void InitFlood(Napi::Env env, Napi::Object exports);
void InitDrain(Napi::Env env, Napi::Object exports);
void InitMapShape(Napi::Env env, Napi::Object exports);

}  // namespace ds

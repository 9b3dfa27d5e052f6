// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the addon: errno-carrying JS errors, buffer access, the libbpf log capture.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>

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

}  // namespace ds

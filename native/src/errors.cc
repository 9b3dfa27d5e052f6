// SPDX-License-Identifier: Apache-2.0
// Error and argument helpers, and the capture of libbpf's log output.
#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "common.h"

namespace ds {

namespace {
std::mutex log_mutex;
std::string log_text;
constexpr size_t kMaxLog = 64 * 1024;

int CaptureLibbpf(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[1024];
  int n = vsnprintf(line, sizeof line, format, args);
  std::lock_guard<std::mutex> lock(log_mutex);
  if (log_text.size() < kMaxLog) log_text.append(line);
  return n;
}
}  // namespace

void InstallLibbpfLog() { libbpf_set_print(CaptureLibbpf); }

std::string TakeLibbpfLog() {
  std::lock_guard<std::mutex> lock(log_mutex);
  std::string out;
  out.swap(log_text);
  return out;
}

Napi::Error ErrnoError(Napi::Env env, const std::string& op, int err, const std::string& detail) {
  if (err < 0) err = -err;
  std::string message = op + ": " + strerror(err);
  if (!detail.empty()) message += "\n" + detail;
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("op", Napi::String::New(env, op));
  return error;
}

void ThrowErrno(Napi::Env env, const std::string& op, int err) { throw ErrnoError(env, op, err, TakeLibbpfLog()); }

Bytes GetBytes(const Napi::CallbackInfo& info, size_t index, const char* name, size_t expected) {
  Napi::Env env = info.Env();
  if (index >= info.Length() || !info[index].IsTypedArray())
    throw Napi::TypeError::New(env, std::string(name) + " must be a Buffer");
  Napi::TypedArray array = info[index].As<Napi::TypedArray>();
  Napi::ArrayBuffer backing = array.ArrayBuffer();
  Bytes bytes{static_cast<uint8_t*>(backing.Data()) + array.ByteOffset(), array.ByteLength()};
  if (expected != 0 && bytes.size != expected)
    throw Napi::RangeError::New(env, std::string(name) + " has " + std::to_string(bytes.size) +
                                         " bytes, expected " + std::to_string(expected));
  return bytes;
}

int GetInt(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (index >= info.Length() || !info[index].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[index].As<Napi::Number>().Int32Value();
}

uint32_t GetUint(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (index >= info.Length() || !info[index].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[index].As<Napi::Number>().Uint32Value();
}

}  // namespace ds

// SPDX-License-Identifier: Apache-2.0
// BPF_PROG_TEST_RUN for XDP programs: run a frame through a program, return the verdict, the
// output frame and the kernel-measured duration (ns per run, excluding syscall overhead).
#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <vector>

#include "common.h"

namespace ds {
namespace {

// testRun(progFd, frame, repeat = 1, ingressIfindex = 0) → { retval, duration, data }
Napi::Value TestRun(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = GetInt(info, 0, "progFd");
  Bytes frame = GetBytes(info, 1, "frame");
  uint32_t repeat = info.Length() > 2 ? GetUint(info, 2, "repeat") : 1;
  uint32_t ifindex = info.Length() > 3 ? GetUint(info, 3, "ingressIfindex") : 0;

  std::vector<uint8_t> out(frame.size + 256);
  xdp_md ctx{};
  ctx.data_end = static_cast<uint32_t>(frame.size);
  ctx.ingress_ifindex = ifindex;

  LIBBPF_OPTS(bpf_test_run_opts, opts);
  opts.data_in = frame.data;
  opts.data_size_in = static_cast<uint32_t>(frame.size);
  opts.data_out = out.data();
  opts.data_size_out = static_cast<uint32_t>(out.size());
  opts.repeat = repeat;
  if (ifindex) {
    opts.ctx_in = &ctx;
    opts.ctx_size_in = sizeof ctx;
  }
  int err = bpf_prog_test_run_opts(fd, &opts);
  if (err) ThrowErrno(env, "bpf_prog_test_run", err);

  Napi::Object result = Napi::Object::New(env);
  result.Set("retval", Napi::Number::New(env, opts.retval));
  result.Set("duration", Napi::Number::New(env, opts.duration));
  result.Set("data", Napi::Buffer<uint8_t>::Copy(env, out.data(), opts.data_size_out));
  return result;
}

// testRunEach(progFd, frames, frameSize, count) → { retvals: Uint32 per frame, duration: total ns }
// Runs `count` equal-sized frames once each: for benchmarks that need a new flow per run.
Napi::Value TestRunEach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = GetInt(info, 0, "progFd");
  Bytes frames = GetBytes(info, 1, "frames");
  uint32_t size = GetUint(info, 2, "frameSize");
  uint32_t count = GetUint(info, 3, "count");
  if (static_cast<uint64_t>(size) * count > frames.size) throw Napi::RangeError::New(env, "frames too short");

  Napi::Buffer<uint32_t> retvals = Napi::Buffer<uint32_t>::New(env, count);
  double total = 0;
  std::vector<uint8_t> out(size + 256);
  for (uint32_t i = 0; i < count; i++) {
    LIBBPF_OPTS(bpf_test_run_opts, opts);
    opts.data_in = frames.data + static_cast<size_t>(i) * size;
    opts.data_size_in = size;
    opts.data_out = out.data();
    opts.data_size_out = static_cast<uint32_t>(out.size());
    opts.repeat = 1;
    int err = bpf_prog_test_run_opts(fd, &opts);
    if (err) ThrowErrno(env, "bpf_prog_test_run", err);
    retvals.Data()[i] = opts.retval;
    total += opts.duration;
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("retvals", retvals);
  result.Set("duration", Napi::Number::New(env, total));
  return result;
}

}  // namespace

void InitTestRun(Napi::Env env, Napi::Object exports) {
  exports.Set("testRun", Napi::Function::New(env, TestRun));
  exports.Set("testRunEach", Napi::Function::New(env, TestRunEach));
}

}  // namespace ds

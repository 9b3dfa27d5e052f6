// SPDX-License-Identifier: Apache-2.0
// doorstep's native binding: a thin N-API layer over libbpf. No policy logic lives here;
// src/engine/ is its only importer.
#include <bpf/libbpf.h>

#include "common.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ds::InstallLibbpfLog();
  ds::InitObject(env, exports);
  ds::InitMap(env, exports);
  ds::InitLink(env, exports);
  ds::InitRingBuffer(env, exports);
  ds::InitTestRun(env, exports);
  ds::InitFlood(env, exports);
  ds::InitDrain(env, exports);
  ds::InitMapShape(env, exports);
  exports.Set("numPossibleCpus", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
                int n = libbpf_num_possible_cpus();
                if (n < 0) ds::ThrowErrno(info.Env(), "libbpf_num_possible_cpus", n);
                return Napi::Number::New(info.Env(), n);
              }));
  return exports;
}

}  // namespace

NODE_API_MODULE(doorstep, Init)

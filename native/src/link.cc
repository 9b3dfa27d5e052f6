// SPDX-License-Identifier: Apache-2.0
// XDP attachment through a bpf_link (so a pinned link keeps the program attached after the
// agent exits), link detach, and the attachment query.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <net/if.h>

#include "common.h"

namespace ds {
namespace {

const char* ModeName(uint32_t mode) {
  switch (mode) {
    case XDP_ATTACHED_DRV: return "native";
    case XDP_ATTACHED_SKB: return "generic";
    case XDP_ATTACHED_HW: return "offload";
    case XDP_ATTACHED_MULTI: return "multi";
    default: return "none";
  }
}

// xdpAttach(progFd, ifindex, mode: "native" | "generic") → link fd
Napi::Value XdpAttach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string mode = info[2].As<Napi::String>();
  LIBBPF_OPTS(bpf_link_create_opts, opts);
  opts.flags = mode == "generic" ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  int fd = bpf_link_create(GetInt(info, 0, "progFd"), GetUint(info, 1, "ifindex"), BPF_XDP, &opts);
  if (fd < 0) ThrowErrno(env, "bpf_link_create(xdp, " + mode + ")", fd);
  return Napi::Number::New(env, fd);
}

// linkDetach(linkFd): detach now, even if the link is pinned.
Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  int err = bpf_link_detach(GetInt(info, 0, "linkFd"));
  if (err) ThrowErrno(info.Env(), "bpf_link_detach", err);
  return info.Env().Undefined();
}

// xdpQuery(ifindex) → { mode, progId }: what is attached to the interface right now.
Napi::Value XdpQuery(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  LIBBPF_OPTS(bpf_xdp_query_opts, opts);
  int err = bpf_xdp_query(GetInt(info, 0, "ifindex"), 0, &opts);
  if (err) ThrowErrno(env, "bpf_xdp_query", err);
  Napi::Object out = Napi::Object::New(env);
  out.Set("mode", Napi::String::New(env, ModeName(opts.attach_mode)));
  uint32_t id = opts.prog_id;
  if (opts.attach_mode == XDP_ATTACHED_DRV) id = opts.drv_prog_id;
  if (opts.attach_mode == XDP_ATTACHED_SKB) id = opts.skb_prog_id;
  out.Set("progId", Napi::Number::New(env, id));
  return out;
}

// progInfo(fd) → { id, name, verifiedInsns, runTimeNs, runCount }: instructions the verifier
// processed at load; the time the program ran and how often, counted while run-time statistics
// are enabled (enableRunTimeStats; both 0 otherwise)
Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_prog_info pi{};
  uint32_t len = sizeof pi;
  int err = bpf_obj_get_info_by_fd(GetInt(info, 0, "fd"), &pi, &len);
  if (err) ThrowErrno(env, "bpf_obj_get_info_by_fd(prog)", err);
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, pi.id));
  out.Set("name", Napi::String::New(env, pi.name));
  out.Set("verifiedInsns", Napi::Number::New(env, pi.verified_insns));
  out.Set("runTimeNs", Napi::Number::New(env, static_cast<double>(pi.run_time_ns)));
  out.Set("runCount", Napi::Number::New(env, static_cast<double>(pi.run_cnt)));
  return out;
}

// enableRunTimeStats() → an fd: the kernel counts every BPF program's run time and runs
// (BPF_ENABLE_STATS) until it is closed (closeFd, or the process ends), like the sysctl
// kernel.bpf_stats_enabled but never left on by a process that died. Each run then pays two clock reads.
Napi::Value EnableRunTimeStats(const Napi::CallbackInfo& info) {
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) ThrowErrno(info.Env(), "bpf_enable_stats(BPF_STATS_RUN_TIME)", fd);
  return Napi::Number::New(info.Env(), fd);
}

// progFdById(id) → a new fd for a loaded program (a program another tool loaded, e.g. for a
// BPF_PROG_TEST_RUN beside ours); close it with closeFd.
Napi::Value ProgFdById(const Napi::CallbackInfo& info) {
  int fd = bpf_prog_get_fd_by_id(GetUint(info, 0, "id"));
  if (fd < 0) ThrowErrno(info.Env(), "bpf_prog_get_fd_by_id", fd);
  return Napi::Number::New(info.Env(), fd);
}

// linkInfo(fd) → { id, progId, ifindex }
Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_link_info li{};
  uint32_t len = sizeof li;
  int err = bpf_obj_get_info_by_fd(GetInt(info, 0, "fd"), &li, &len);
  if (err) ThrowErrno(env, "bpf_obj_get_info_by_fd(link)", err);
  Napi::Object out = Napi::Object::New(env);
  out.Set("id", Napi::Number::New(env, li.id));
  out.Set("progId", Napi::Number::New(env, li.prog_id));
  out.Set("ifindex", Napi::Number::New(env, li.type == BPF_LINK_TYPE_XDP ? li.xdp.ifindex : 0));
  return out;
}

// ifNameToIndex(name) → ifindex, or 0 when no such interface exists in this network namespace.
// (/sys/class/net shows the namespace sysfs was mounted in, which nsenter --net does not change.)
Napi::Value IfNameToIndex(const Napi::CallbackInfo& info) {
  std::string name = info[0].As<Napi::String>();
  return Napi::Number::New(info.Env(), if_nametoindex(name.c_str()));
}

}  // namespace

void InitLink(Napi::Env env, Napi::Object exports) {
  exports.Set("xdpAttach", Napi::Function::New(env, XdpAttach));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach));
  exports.Set("xdpQuery", Napi::Function::New(env, XdpQuery));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo));
  exports.Set("progFdById", Napi::Function::New(env, ProgFdById));
  exports.Set("enableRunTimeStats", Napi::Function::New(env, EnableRunTimeStats));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo));
  exports.Set("ifNameToIndex", Napi::Function::New(env, IfNameToIndex));
}

}  // namespace ds

// SPDX-License-Identifier: Apache-2.0
// A map's own shape as the kernel reports it (type, key and value sizes, the bytes a value takes
// in a lookup or update: per-CPU maps hold one 8-byte-aligned copy per possible CPU), the checks
// that hold every key and value buffer from JavaScript to it before a syscall may read or write
// past the buffer, and BTF type names (of an object's maps, of a live map's kernel BTF).
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cstring>
#include <memory>

#include "common.h"

namespace ds {
namespace {

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
         type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

std::string Describe(const MapShape& s) { return "map " + std::string(s.name) + " (id " + std::to_string(s.id) + ")"; }

// mapBtfTypes(fd) → { key, value }: the names of the key and value types in the map's kernel BTF
// (a typedef keeps its name: __u32); null where the map has none (created without BTF, a map of
// maps' values, a ring buffer).
Napi::Value MapBtfTypes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_map_info mi = GetMapInfo(env, GetInt(info, 0, "fd"));
  std::unique_ptr<btf, void (*)(btf*)> types(nullptr, btf__free);
  if (mi.btf_id) {
    types.reset(btf__load_from_kernel_by_id(mi.btf_id));
    if (!types) ThrowErrno(env, "btf__load_from_kernel_by_id", errno);
  }
  auto name = [&](uint32_t id) -> Napi::Value {
    if (!types || !id) return env.Null();
    return Napi::String::New(env, BtfTypeName(types.get(), id));
  };
  Napi::Object out = Napi::Object::New(env);
  out.Set("key", name(mi.btf_key_type_id));
  out.Set("value", name(mi.btf_value_type_id));
  return out;
}

}  // namespace

bpf_map_info GetMapInfo(Napi::Env env, int fd) {
  bpf_map_info mi{};
  uint32_t len = sizeof mi;
  int err = bpf_obj_get_info_by_fd(fd, &mi, &len);
  if (err) ThrowErrno(env, "bpf_obj_get_info_by_fd", err);
  return mi;
}

MapShape GetMapShape(Napi::Env env, int fd) {
  bpf_map_info mi = GetMapInfo(env, fd);
  MapShape s{};
  s.id = mi.id;
  s.type = mi.type;
  s.key_size = mi.key_size;
  s.value_size = mi.value_size;
  s.value_bytes = mi.value_size;
  if (IsPerCpu(mi.type)) {
    int cpus = libbpf_num_possible_cpus();
    if (cpus < 0) ThrowErrno(env, "libbpf_num_possible_cpus", cpus);
    s.value_bytes = ((mi.value_size + 7) / 8 * 8) * static_cast<uint32_t>(cpus);
  }
  memcpy(s.name, mi.name, sizeof s.name - 1);
  return s;
}

void CheckEntrySizes(Napi::Env env, const MapShape& s, const char* op, uint64_t key_size, uint64_t value_size) {
  if (key_size != s.key_size)
    throw Napi::RangeError::New(env, std::string(op) + ": keys of " + std::to_string(key_size) + " bytes for " + Describe(s) +
                                         ", whose keys have " + std::to_string(s.key_size) + " bytes");
  if (value_size != s.value_bytes)
    throw Napi::RangeError::New(env, std::string(op) + ": values of " + std::to_string(value_size) + " bytes for " + Describe(s) +
                                         ", whose values take " + std::to_string(s.value_bytes) + " bytes" +
                                         (s.value_bytes != s.value_size ? " (" + std::to_string(s.value_size) + " per CPU, 8-byte aligned)" : ""));
}

void CheckKey(Napi::Env env, const MapShape& s, const char* op, const Bytes& key) {
  if (key.size != s.key_size)
    throw Napi::RangeError::New(env, std::string(op) + ": a " + std::to_string(key.size) + "-byte key for " + Describe(s) +
                                         ", whose keys have " + std::to_string(s.key_size) + " bytes");
}

void CheckValue(Napi::Env env, const MapShape& s, const char* op, const Bytes& value) { CheckEntrySizes(env, s, op, s.key_size, value.size); }

std::string BtfTypeName(const ::btf* types, uint32_t id) {
  const btf_type* t = btf__type_by_id(types, id);
  while (t && (btf_is_const(t) || btf_is_volatile(t))) t = btf__type_by_id(types, t->type);
  if (!t) return "";
  const char* name = btf__name_by_offset(types, t->name_off);
  return name ? name : "";
}

void InitMapShape(Napi::Env env, Napi::Object exports) { exports.Set("mapBtfTypes", Napi::Function::New(env, MapBtfTypes)); }

}  // namespace ds

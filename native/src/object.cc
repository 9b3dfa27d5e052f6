// SPDX-License-Identifier: Apache-2.0
// BpfObject: open an ELF object, size or reuse its maps, load it, hand out map and program fds.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common.h"

namespace ds {
namespace {

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BpfObject",
                       {
                           InstanceMethod("load", &BpfObject::Load),
                           InstanceMethod("mapNames", &BpfObject::MapNames),
                           InstanceMethod("mapFd", &BpfObject::MapFd),
                           InstanceMethod("mapSpec", &BpfObject::MapSpec),
                           InstanceMethod("innerSpec", &BpfObject::InnerSpec),
                           InstanceMethod("setMaxEntries", &BpfObject::SetMaxEntries),
                           InstanceMethod("reuseMapFd", &BpfObject::ReuseMapFd),
                           InstanceMethod("programFd", &BpfObject::ProgramFd),
                           InstanceMethod("close", &BpfObject::Close),
                       });
  }

  // new BpfObject(path)
  explicit BpfObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BpfObject>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "path must be a string");
    std::string path = info[0].As<Napi::String>();
    obj_ = bpf_object__open_file(path.c_str(), nullptr);
    int err = libbpf_get_error(obj_);
    if (err) {
      obj_ = nullptr;
      ThrowErrno(env, "bpf_object__open_file(" + path + ")", err);
    }
  }

  ~BpfObject() override {
    if (obj_) bpf_object__close(obj_);
  }

 private:
  bpf_object* Obj(Napi::Env env) {
    if (!obj_) throw Napi::Error::New(env, "BpfObject is closed");
    return obj_;
  }

  bpf_map* Map(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "map name must be a string");
    std::string name = info[0].As<Napi::String>();
    bpf_map* map = bpf_object__find_map_by_name(Obj(env), name.c_str());
    if (!map) ThrowErrno(env, "no map named " + name, ENOENT);
    return map;
  }

  // The map's type, sizes and flags, and the BTF names of its key and value types (null where the
  // object gives a size only: inner-map templates, a ring buffer, a map of maps' values).
  Napi::Object Spec(Napi::Env env, const bpf_map* map) {
    Napi::Object spec = Napi::Object::New(env);
    const btf* types = bpf_object__btf(Obj(env));
    auto name = [&](uint32_t id) -> Napi::Value { return types && id ? Napi::String::New(env, BtfTypeName(types, id)) : env.Null(); };
    spec.Set("keyType", name(bpf_map__btf_key_type_id(map)));
    spec.Set("valueType", name(bpf_map__btf_value_type_id(map)));
    spec.Set("type", Napi::Number::New(env, bpf_map__type(map)));
    spec.Set("keySize", Napi::Number::New(env, bpf_map__key_size(map)));
    spec.Set("valueSize", Napi::Number::New(env, bpf_map__value_size(map)));
    spec.Set("maxEntries", Napi::Number::New(env, bpf_map__max_entries(map)));
    spec.Set("flags", Napi::Number::New(env, bpf_map__map_flags(map)));
    return spec;
  }

  Napi::Value Load(const Napi::CallbackInfo& info) {
    TakeLibbpfLog();
    int err = bpf_object__load(Obj(info.Env()));
    if (err) ThrowErrno(info.Env(), "bpf_object__load", err);
    return info.Env().Undefined();
  }

  Napi::Value MapNames(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Array names = Napi::Array::New(env);
    bpf_map* map;
    uint32_t i = 0;
    bpf_object__for_each_map(map, Obj(env)) names.Set(i++, Napi::String::New(env, bpf_map__name(map)));
    return names;
  }

  Napi::Value MapFd(const Napi::CallbackInfo& info) {
    int fd = bpf_map__fd(Map(info));
    if (fd < 0) ThrowErrno(info.Env(), "bpf_map__fd", fd);
    return Napi::Number::New(info.Env(), fd);
  }

  Napi::Value MapSpec(const Napi::CallbackInfo& info) { return Spec(info.Env(), Map(info)); }

  // The inner-map template of an ARRAY_OF_MAPS: the controller creates inner maps to match it.
  Napi::Value InnerSpec(const Napi::CallbackInfo& info) {
    bpf_map* inner = bpf_map__inner_map(Map(info));
    if (!inner) ThrowErrno(info.Env(), "bpf_map__inner_map", EINVAL);
    return Spec(info.Env(), inner);
  }

  Napi::Value SetMaxEntries(const Napi::CallbackInfo& info) {
    int err = bpf_map__set_max_entries(Map(info), GetUint(info, 1, "maxEntries"));
    if (err) ThrowErrno(info.Env(), "bpf_map__set_max_entries", err);
    return info.Env().Undefined();
  }

  // Use an existing (pinned) map instead of creating one at load: how an agent adopts its pins.
  Napi::Value ReuseMapFd(const Napi::CallbackInfo& info) {
    int err = bpf_map__reuse_fd(Map(info), GetInt(info, 1, "fd"));
    if (err) ThrowErrno(info.Env(), "bpf_map__reuse_fd", err);
    return info.Env().Undefined();
  }

  Napi::Value ProgramFd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) throw Napi::TypeError::New(env, "program name must be a string");
    std::string name = info[0].As<Napi::String>();
    bpf_program* prog = bpf_object__find_program_by_name(Obj(env), name.c_str());
    if (!prog) ThrowErrno(env, "no program named " + name, ENOENT);
    int fd = bpf_program__fd(prog);
    if (fd < 0) ThrowErrno(env, "bpf_program__fd", fd);
    return Napi::Number::New(env, fd);
  }

  // Closes the object and every fd it owns (maps and programs stay alive while pinned or attached).
  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
    return info.Env().Undefined();
  }

  bpf_object* obj_ = nullptr;
};

}  // namespace

void InitObject(Napi::Env env, Napi::Object exports) { exports.Set("BpfObject", BpfObject::Define(env)); }

}  // namespace ds

// SPDX-License-Identifier: Apache-2.0
// packetFlood: a bounded AF_PACKET traffic generator for benchmarks and tests (bench/flood.ts,
// test/e2e/packet-flood.test.ts). On this project's kernels BPF_PROG_RUN's live-frame mode answers
// EPERM, and Node has no AF_PACKET, so frames are written here: raw Ethernet frames through one
// AF_PACKET socket with PACKET_QDISC_BYPASS (straight to the driver's xmit, no qdisc), in
// batches of sendmmsg. The send runs on a thread of its own (never the event loop, never a libuv
// pool thread): that thread may enter another network namespace (setns only moves the calling
// thread) and pin itself to one CPU, and it ends with the flood, so neither leaks into the process.
// No policy logic lives here; it reports what it sent and what the send cost its own thread.
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "common.h"

namespace ds {
namespace {

constexpr unsigned kBatch = 64;  // frames per sendmmsg

struct FloodOptions {
  std::string netns;   // /run/netns/NAME to send from, or "" for the caller's namespace
  std::string ifname;  // the interface the frames leave through
  std::vector<uint8_t> frames;  // templates, back to back, all frameSize long; sent round robin
  uint32_t frameSize = 0;
  uint64_t count = 0;        // frames to send (the flood's bound)
  double maxSeconds = 10;    // ... and its time bound
  int cpu = -1;              // pin the sending thread to this CPU (-1: leave it)
  int nice = 0;              // the sending thread's nice value (0: leave it; 19: yield to everything else on its CPU)
  // Spoofing: per frame, the low `spoofBits` bits of the IPv4 source address at `spoofOffset`
  // (the template's source gives the network) and the 16-bit source port at `spoofOffset + 8`
  // (IPv4 without options: the L4 header follows the 4-byte destination) come from a xorshift
  // generator, and the IPv4 header checksum is computed afresh (the stack drops a frame whose
  // header checksum is wrong before netfilter's first hook). UDP checksums stay 0 ("none").
  uint32_t spoofBits = 0;
  uint32_t spoofOffset = 26;  // Ethernet (14) + the IPv4 source's offset (12)
};

struct FloodResult {
  uint64_t sent = 0;
  uint64_t userNs = 0;
  uint64_t systemNs = 0;
  uint64_t wallNs = 0;
  uint64_t retries = 0;  // sendmmsg calls that answered ENOBUFS/EAGAIN and were repeated
  int err = 0;           // errno of the step that failed (0: none)
  std::string op;        // ... and its name
};

// The IPv4 header checksum (RFC 791) of the header at `ip`, written in place.
void Ipv4Checksum(uint8_t* ip) {
  const size_t len = (ip[0] & 0x0f) * 4u;
  ip[10] = ip[11] = 0;
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < len; i += 2) sum += (static_cast<uint32_t>(ip[i]) << 8) | ip[i + 1];
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  const uint16_t c = static_cast<uint16_t>(~sum);
  ip[10] = static_cast<uint8_t>(c >> 8);
  ip[11] = static_cast<uint8_t>(c & 0xff);
}

uint64_t TimevalNs(const timeval& tv) { return static_cast<uint64_t>(tv.tv_sec) * 1000000000ull + tv.tv_usec * 1000ull; }

// The whole send, on its own thread. Fills `r`; never throws.
void Send(const FloodOptions& o, FloodResult& r) {
  auto fail = [&r](const char* op) {
    r.err = errno;
    r.op = op;
  };
  if (o.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) return fail("sched_setaffinity");
  }
  if (o.nice != 0 && setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), o.nice) != 0) return fail("setpriority");
  if (!o.netns.empty()) {
    int nsfd = open(o.netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (nsfd < 0) return fail("open netns");
    int rc = setns(nsfd, CLONE_NEWNET);  // this thread only
    close(nsfd);
    if (rc != 0) return fail("setns");
  }
  // protocol 0: the socket receives nothing, it only sends
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket(AF_PACKET)");
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) != 0) {
    fail("PACKET_QDISC_BYPASS");
    close(fd);
    return;
  }
  unsigned ifindex = if_nametoindex(o.ifname.c_str());
  if (ifindex == 0) {
    fail("if_nametoindex");
    close(fd);
    return;
  }
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_ifindex = static_cast<int>(ifindex);
  addr.sll_halen = ETH_ALEN;

  const size_t templates = o.frames.size() / o.frameSize;
  const bool spoof = o.spoofBits > 0;
  // spoofed frames need a buffer per message of a batch; others point straight at the templates
  std::vector<uint8_t> scratch(spoof ? static_cast<size_t>(kBatch) * o.frameSize : 0);
  std::vector<iovec> iov(kBatch);
  std::vector<mmsghdr> msgs(kBatch);
  const uint32_t mask = o.spoofBits >= 32 ? 0xffffffffu : ((1u << o.spoofBits) - 1);
  uint64_t x = 0x9e3779b97f4a7c15ull ^ static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  auto next = [&x] {  // xorshift64
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };

  rusage before{}, after{};
  getrusage(RUSAGE_THREAD, &before);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(o.maxSeconds);
  size_t t = 0;  // next template
  while (r.sent < o.count) {
    const unsigned n = static_cast<unsigned>(std::min<uint64_t>(kBatch, o.count - r.sent));
    for (unsigned i = 0; i < n; i++) {
      const uint8_t* tpl = o.frames.data() + t * o.frameSize;
      t = (t + 1) % templates;
      uint8_t* data = const_cast<uint8_t*>(tpl);
      if (spoof) {
        data = scratch.data() + static_cast<size_t>(i) * o.frameSize;
        memcpy(data, tpl, o.frameSize);
        uint64_t rnd = next();
        uint32_t src;
        memcpy(&src, data + o.spoofOffset, 4);
        src = htonl((ntohl(src) & ~mask) | (static_cast<uint32_t>(rnd) & mask));
        memcpy(data + o.spoofOffset, &src, 4);
        uint16_t sport = htons(static_cast<uint16_t>(1024 + (rnd >> 32) % 64000));
        memcpy(data + o.spoofOffset + 8, &sport, 2);
        Ipv4Checksum(data + o.spoofOffset - 12);
      }
      iov[i] = {data, o.frameSize};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_name = &addr;
      msgs[i].msg_hdr.msg_namelen = sizeof addr;
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
    }
    int done = sendmmsg(fd, msgs.data(), n, 0);
    if (done < 0) {
      if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) {
        r.retries++;
        std::this_thread::yield();
      } else {
        fail("sendmmsg");
        break;
      }
    } else {
      r.sent += static_cast<uint64_t>(done);
      // a short batch: the unsent frames' templates come round again, counts stay exact
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
  }
  const auto end = std::chrono::steady_clock::now();
  getrusage(RUSAGE_THREAD, &after);
  close(fd);
  r.wallNs = std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count();
  r.userNs = TimevalNs(after.ru_utime) - TimevalNs(before.ru_utime);
  r.systemNs = TimevalNs(after.ru_stime) - TimevalNs(before.ru_stime);
}

// Runs the flood on a fresh std::thread (joined here, on a libuv pool thread) and settles a promise.
class FloodWorker : public Napi::AsyncWorker {
 public:
  FloodWorker(Napi::Env env, FloodOptions options)
      : Napi::AsyncWorker(env, "doorstep-flood"), options_(std::move(options)), deferred_(Napi::Promise::Deferred::New(env)) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      std::thread sender([this] { Send(options_, result_); });
      sender.join();
    } catch (const std::system_error& e) {  // no thread could be made
      SetError(std::string("std::thread: ") + e.what());
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (result_.err) {
      deferred_.Reject(ErrnoError(env, result_.op, result_.err).Value());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("sent", Napi::Number::New(env, static_cast<double>(result_.sent)));
    o.Set("userNs", Napi::Number::New(env, static_cast<double>(result_.userNs)));
    o.Set("systemNs", Napi::Number::New(env, static_cast<double>(result_.systemNs)));
    o.Set("wallNs", Napi::Number::New(env, static_cast<double>(result_.wallNs)));
    o.Set("retries", Napi::Number::New(env, static_cast<double>(result_.retries)));
    deferred_.Resolve(o);
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  FloodOptions options_;
  FloodResult result_;
  Napi::Promise::Deferred deferred_;
};

// packetFlood({ netns?, ifname, frames, frameSize, count, maxSeconds?, cpu?, nice?, spoofBits?, spoofOffset? })
//   → Promise<{ sent, userNs, systemNs, wallNs, retries }>
Napi::Value PacketFlood(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "options must be an object");
  Napi::Object in = info[0].As<Napi::Object>();
  auto num = [&](const char* key, double fallback) {
    Napi::Value v = in.Get(key);
    if (v.IsUndefined()) return fallback;
    if (!v.IsNumber()) throw Napi::TypeError::New(env, std::string(key) + " must be a number");
    return v.As<Napi::Number>().DoubleValue();
  };
  FloodOptions o;
  if (in.Has("netns") && in.Get("netns").IsString()) o.netns = in.Get("netns").As<Napi::String>();
  if (!in.Get("ifname").IsString()) throw Napi::TypeError::New(env, "ifname must be a string");
  o.ifname = in.Get("ifname").As<Napi::String>();
  Napi::Value frames = in.Get("frames");
  if (!frames.IsBuffer()) throw Napi::TypeError::New(env, "frames must be a Buffer");
  Napi::Buffer<uint8_t> buf = frames.As<Napi::Buffer<uint8_t>>();
  o.frameSize = static_cast<uint32_t>(num("frameSize", 0));
  if (o.frameSize < ETH_HLEN || buf.Length() < o.frameSize || buf.Length() % o.frameSize != 0) {
    throw Napi::RangeError::New(env, "frames must hold one or more frames of frameSize (≥ 14) bytes");
  }
  o.frames.assign(buf.Data(), buf.Data() + buf.Length());
  o.count = static_cast<uint64_t>(num("count", 0));
  o.maxSeconds = num("maxSeconds", 10);
  o.cpu = static_cast<int>(num("cpu", -1));
  o.nice = static_cast<int>(num("nice", 0));
  if (o.nice < -20 || o.nice > 19) throw Napi::RangeError::New(env, "nice must be from -20 to 19");
  o.spoofBits = static_cast<uint32_t>(num("spoofBits", 0));
  o.spoofOffset = static_cast<uint32_t>(num("spoofOffset", 26));
  if (o.spoofBits > 32 || (o.spoofBits && (o.spoofOffset < 12 || o.spoofOffset + 10 > o.frameSize))) {
    throw Napi::RangeError::New(env, "spoofBits ≤ 32, and the source address and port must lie inside the frame");
  }
  auto* worker = new FloodWorker(env, std::move(o));
  Napi::Promise p = worker->Promise();
  worker->Queue();
  return p;
}

}  // namespace

void InitFlood(Napi::Env env, Napi::Object exports) { exports.Set("packetFlood", Napi::Function::New(env, PacketFlood)); }

}  // namespace ds

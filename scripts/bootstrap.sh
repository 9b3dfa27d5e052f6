#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs everything doorstep needs on a fresh Debian 12 machine (apt and npm) and builds it.
# Idempotent: when everything is present it only runs the (incremental) build.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(clang-16 llvm-16 libbpf-dev libelf-dev zlib1g-dev bpftool iproute2 make g++ python3 pkg-config nats-server openssl golang-github-google-gopacket-dev python3-scapy tcpdump xdp-tools nftables iptables ethtool wireguard-tools wireguard-go iperf3 chromium systemd)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

make -s -C bpf
if [ ! -f build/Release/doorstep.node ] || [ -n "$(find native binding.gyp -newer build/Release/doorstep.node -print -quit)" ]; then
  echo "bootstrap: building the native addon"
  # against the system's Node headers, offline
  npx node-gyp rebuild --nodedir=/usr --loglevel=error >/dev/null
fi
npx tsc -p tsconfig.json
# the web UI's page (web/ → dist/ui, bundled with esbuild; no CDN at run time)
if [ ! -f dist/ui/app.js ] || [ -n "$(find web -newer dist/ui/app.js -print -quit)" ]; then npm run -s build:ui; fi
echo "bootstrap: ready"

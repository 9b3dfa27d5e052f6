#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `npm run package`: build doorstep_<version>_<arch>.deb with dpkg-deb, offline, into build/deb/.
# The program (dist/src), the native addon, the BPF objects and the production node_modules (a
# copy pruned of dev dependencies) go to /usr/lib/doorstep; /usr/bin/doorstep, the unit, the
# example config and policy (conffiles), the man page and bash completion generated from the
# CLI's own --help, and the docs. The layout is in docs/operations.md ("Install the package").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-built.sh

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
out=build/deb
stage=$(mktemp -d "${TMPDIR:-/tmp}/doorstep-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
lib=$root/usr/lib/doorstep

install -d "$lib/build/Release" "$lib/bpf/build" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/etc/doorstep/policy" "$root/var/lib/doorstep" "$root/usr/share/man/man1" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/doc/doorstep" "$root/DEBIAN"

# the program: compiled TypeScript (not the tests or benches), the addon, the BPF objects
cp package.json package-lock.json "$lib/"
mkdir -p "$lib/dist" && cp -r dist/src "$lib/dist/src"
cp build/Release/doorstep.node "$lib/build/Release/"
cp bpf/build/engine.bpf.o bpf/build/floor.bpf.o bpf/build/abi_btf.o "$lib/bpf/build/"
cp -r examples "$lib/examples"
# production dependencies: a copy of node_modules pruned of the dev ones, without the network
cp -a node_modules "$lib/node_modules"
(cd "$lib" && npm prune --omit=dev --offline --no-audit --no-fund --loglevel=error >/dev/null)
rm -f "$lib/node_modules/.package-lock.json"
find "$lib/node_modules" -type d -empty -delete

install -m 0755 packaging/doorstep.sh "$root/usr/bin/doorstep"
install -m 0755 packaging/prepare-bpffs packaging/wait-ready packaging/detach-engine "$lib/"
install -m 0644 packaging/doorstep.service "$root/lib/systemd/system/"
install -m 0644 packaging/etc/agent.yaml "$root/etc/doorstep/"
install -m 0644 packaging/etc/policy/example.yaml "$root/etc/doorstep/policy/"

# the man page and completion from the CLI's help, so they cannot drift from it
node dist/scripts/gen-cli-docs.js "$stage/doorstep.1" "$root/usr/share/bash-completion/completions/doorstep" "$lib/dist/src/cli/main.js" >/dev/null
gzip -9n -c "$stage/doorstep.1" >"$root/usr/share/man/man1/doorstep.1.gz"
cp README.md docs/*.md "$root/usr/share/doc/doorstep/"
cp LICENSE "$root/usr/share/doc/doorstep/copyright"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control >"$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"

mkdir -p "$out"
deb=$out/doorstep_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"

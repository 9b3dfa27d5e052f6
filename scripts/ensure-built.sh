#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bootstrap quietly when something is missing or stale; the entry point of npm start/test/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh | grep -v '^bootstrap: ready' || true
test -f build/Release/doorstep.node && test -f bpf/build/engine.bpf.o && test -f dist/src/engine/engine.js && test -f dist/ui/app.js

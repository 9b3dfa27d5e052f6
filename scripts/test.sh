#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `npm test [tier…]`: build, then run the chosen tiers (default: unit datapath e2e) with node's
# test runner, one tier after another. The unit tier needs no root. The privileged tiers
# (datapath, e2e) need root: asked for by name without it, or in CI (CI=true), that is an error,
# never a skip; only a plain `npm test` outside CI runs the unit tier alone and says what it left
# out. Each test file has a deadline (--test-timeout, per file in Node 20), so a hang fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# per-file deadlines in ms: several times the slowest file of each tier on a 2-core VM
declare -A TIMEOUT_MS=([unit]=180000 [datapath]=600000 [e2e]=600000)

if (($# > 0)); then tiers=("$@"); named=1; else tiers=(unit datapath e2e); named=0; fi
for tier in "${tiers[@]}"; do
  if [ -z "${TIMEOUT_MS[$tier]:-}" ]; then
    echo "test: no tier \"$tier\" (tiers: unit, datapath, e2e)" >&2
    exit 1
  fi
done

if [ "$(id -u)" -ne 0 ]; then
  privileged=()
  for tier in "${tiers[@]}"; do [ "$tier" = unit ] || privileged+=("$tier"); done
  if ((${#privileged[@]} > 0)); then
    if [ "${CI:-}" = true ] || ((named)); then
      echo "test: the ${privileged[*]} tests need root (BPF, XDP, network namespaces); run them as root, or run \`npm test unit\`" >&2
      exit 1
    fi
    echo "test: not root: running the unit tier only; the ${privileged[*]} tests need root" >&2
    tiers=(unit)
  fi
fi

bash scripts/ensure-built.sh

status=0
for tier in "${tiers[@]}"; do
  files=()
  while IFS= read -r f; do files+=("$f"); done < <(find "dist/test/$tier" -name '*.test.js' 2>/dev/null | sort)
  if ((${#files[@]} == 0)); then
    echo "test: no test files found in dist/test/$tier" >&2
    exit 1
  fi
  node --test --test-concurrency=1 --test-timeout="${TIMEOUT_MS[$tier]}" --test-reporter=spec "${files[@]}" || status=1
done
exit "$status"

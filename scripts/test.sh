#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `npm test`: build, then run every tier with node's test runner. Privileged tiers (datapath,
# e2e) need root; in CI (CI=true) running without root is an error, never a skip.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-built.sh

if [ "$(id -u)" -ne 0 ]; then
  echo "test: the datapath and e2e tests need root (BPF, XDP, network namespaces)" >&2
  exit 1
fi

tiers=("${@:-unit datapath e2e}")
files=()
for tier in ${tiers[*]}; do
  while IFS= read -r f; do files+=("$f"); done < <(find "dist/test/$tier" -name '*.test.js' 2>/dev/null | sort)
done
if ((${#files[@]} == 0)); then
  echo "test: no test files found" >&2
  exit 1
fi
exec node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"

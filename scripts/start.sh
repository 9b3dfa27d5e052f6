#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `npm start`: build if needed, then the demo (enforcement on a veth pair between two namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-built.sh
exec node dist/src/cli/main.js demo "$@"

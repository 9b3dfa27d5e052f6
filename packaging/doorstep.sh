#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# /usr/bin/doorstep: runs the packaged CLI with the system's Node. The program is found beside
# this script (../lib/doorstep), so an unpacked package (dpkg -x) runs from where it lies.
here=$(dirname "$(readlink -f "$0")")
exec node "$here/../lib/doorstep/dist/src/cli/main.js" "$@"

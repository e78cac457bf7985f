#!/usr/bin/env bash
# test_install.sh: `cmake --install` into a temporary prefix, the prefix moved elsewhere, then the
# moved lat: --version names the installed Lua library, a script runs, liblat comes from the
# moved lib/, LAT_LUA_DIR overrides, and the installed Jupyter kernel spec starts the moved lat.
# The build tree's own lat names its tree's Lua files.
#   BUILD=build tests/test_install.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${BUILD:-$here/../build}
fail() { echo "FAIL: $*"; exit 1; }
tmp=$(mktemp -d "${LAT_TEST_TMP:-/tmp}/install.XXXXXX") || fail "no temporary folder"
trap 'rm -rf "$tmp"' EXIT

cmake --install "$BUILD" --prefix "$tmp/first" > "$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }
for f in bin/lat lib/liblat.so share/lat/lua/lat/init.lua share/jupyter/kernels/lat/kernel.json \
         share/jupyter/kernels/lat/lat_kernel.py; do
  [ -e "$tmp/first/$f" ] || fail "the install has no $f"
done
mv "$tmp/first" "$tmp/moved"
lat=$tmp/moved/bin/lat
echo "ok   installed and moved"

version=$(cd / && "$lat" --version) || fail "lat --version: $version"
grep -q "^Lua library: $tmp/moved/share/lat/lua (installed)" <<< "$version" || fail "--version: $version"
grep -q "^liblat: $tmp/moved/" <<< "$version" || fail "liblat not from the moved prefix: $version"
grep -q "^CPU: [0-9]* cores" <<< "$version" || fail "--version has no CPU line: $version"
echo "ok   --version names the moved install"

cat > "$tmp/script.lua" <<'LUA'
local lat = require 'lat'
local src = debug.getinfo(lat.ones, 'S').source
print(lat.ones(2, 3):sum():item(), src, os.getenv('LAT_LIBRARY'))
LUA
out=$(cd / && "$lat" "$tmp/script.lua") || fail "the script failed: $out"
[[ "$out" == "6"*"@$tmp/moved/share/lat/lua/lat/"*"$tmp/moved/"*liblat.so ]] || fail "the script did not use the moved files: $out"
echo "ok   a script runs on the installed files"

# a long prefix: Lua shortens the library's file names in tracebacks to their last 60 characters
deep=$tmp/moved/share/lat/lua/lat/nn/module.lua
echo 'local lat = require "lat"; lat.nn.Linear(2, 3)(lat.zeros(4, 5))' > "$tmp/fails.lua"
out=$("$lat" "$tmp/fails.lua" 2>&1) && fail "the failing script succeeded: $out"
grep -q "fails.lua:1: in main chunk" <<< "$out" || fail "the user's frame is missing: $out"
grep -q "/lat/lua/lat/\|\[C\]" <<< "$out" && fail "internal frames shown (${#deep} characters in a name): $out"
out=$(LAT_TRACEBACK=full "$lat" "$tmp/fails.lua" 2>&1)
grep -q "/share/lat/lua/lat/" <<< "$out" || fail "LAT_TRACEBACK=full hides frames: $out"
echo "ok   tracebacks hide the installed library's frames, even under a long prefix"

out=$(LAT_LUA_DIR="$here/../lua" "$lat" --version) || fail "LAT_LUA_DIR: $out"
grep -q "(LAT_LUA_DIR)" <<< "$out" || fail "LAT_LUA_DIR not used: $out"
out=$(LAT_LUA_DIR="$tmp/nowhere" "$lat" -e 'print(1)' 2>&1) && fail "a missing LAT_LUA_DIR ran: $out"
grep -q "cannot find lat's Lua library" <<< "$out" || fail "a missing LAT_LUA_DIR: $out"
echo "ok   LAT_LUA_DIR overrides, and a wrong one is an error naming it"

out=$("$BUILD/lat" --version)
src=$(cd "$here/.." && pwd -P)
grep -q "^Lua library: $src/lua (build tree)" <<< "$out" || fail "the build tree's lat: $out"
echo "ok   the build tree's lat uses its own tree"

out=$(JUPYTER_PATH="$tmp/moved/share/jupyter" LAT= /usr/bin/python3 - <<'PY' 2>&1
import jupyter_client
km, kc = jupyter_client.manager.start_new_kernel(kernel_name="lat", startup_timeout=60)
try:
    kc.execute("local x = 20\n")
    kc.get_shell_msg(timeout=60)
    msg_id = kc.execute("x + 1")
    while True:
        msg = kc.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "execute_result":
            print("result", msg["content"]["data"]["text/plain"])
            break
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
PY
)
grep -q "^result 21$" <<< "$out" || fail "the installed kernel spec: $out"
echo "ok   the installed kernel spec runs the moved lat"
echo "7 passed"

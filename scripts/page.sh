#!/usr/bin/env bash
# Builds the browser app into dist/ without Trunk, for the demo: what `trunk build --release`
# does with Trunk.toml and web/index.html (cargo for wasm32 with the wasm-release profile,
# wasm-bindgen --target web, wasm-opt -Oz, content-hashed names, an index.html that starts the
# app), so a fresh machine need not compile Trunk (~7 min on 2 cores) to run the demo. Trunk
# stays for `trunk serve`; CI builds the page both ways and runs the browser tests on this one.
#   scripts/page.sh [OUT]    (default dist)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
target=${CARGO_TARGET_DIR:-target}
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

cargo build -q -p cashflow-web --bin cashflow-web --target wasm32-unknown-unknown --profile wasm-release
# Nothing changed since the last build into OUT (the same wasm from cargo, the same page files
# and scripts): the page there is current, and a warm start of the demo skips the ~15 s of
# wasm-bindgen, wasm-opt and compression.
built="$target/wasm32-unknown-unknown/wasm-release/cashflow-web.wasm"
stamp=$(cat "$built" web/index.html web/style.css "$0" scripts/compress.mjs | sha256sum | cut -c1-32)
if [ -f "$out/index.html" ] && [ "$(cat "$out/.built-from" 2>/dev/null)" = "$stamp" ]; then
  echo "[page] $out is current" >&2
  exit 0
fi
# The same page built before into another folder (another clone: CI's are fresh each run) is
# kept beside cargo's output: copied, not built again.
cache="$target/page-cache/$stamp"
clear_out() { mkdir -p "$out"; rm -f "$out"/cashflow-web-*.js* "$out"/cashflow-web-*_bg.wasm* "$out"/style-*.css* "$out"/index.html*; }
if [ -f "$cache/index.html" ]; then
  clear_out
  cp "$cache"/* "$out"/
  echo "$stamp" >"$out/.built-from"
  echo "[page] $out from the build of the same sources in $cache" >&2
  exit 0
fi
wasm-bindgen --target web --no-typescript --out-dir "$stage" --out-name cashflow-web \
  "$target/wasm32-unknown-unknown/wasm-release/cashflow-web.wasm"
# The npm binaryen that setup.sh pins (Debian's wasm-opt 108 breaks the page).
wasm-opt -Oz --enable-reference-types --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-multivalue \
  -o "$stage/cashflow-web_bg.opt.wasm" "$stage/cashflow-web_bg.wasm"

hash() { sha256sum "$1" | cut -c1-16; }
js="cashflow-web-$(hash "$stage/cashflow-web.js").js"
wasm="cashflow-web-$(hash "$stage/cashflow-web_bg.opt.wasm")_bg.wasm"
css="style-$(hash web/style.css).css"

clear_out
cp "$stage/cashflow-web.js" "$out/$js"
cp "$stage/cashflow-web_bg.opt.wasm" "$out/$wasm"
cp web/style.css "$out/$css"
# web/index.html's head without Trunk's <link data-trunk> lines, then the styles and the loader.
{
  grep -v 'data-trunk' web/index.html | sed '/<\/head>/,$d'
  echo "    <link rel=\"stylesheet\" href=\"/$css\" />"
  echo "    <link rel=\"modulepreload\" href=\"/$js\" />"
  echo "    <link rel=\"preload\" as=\"fetch\" type=\"application/wasm\" crossorigin href=\"/$wasm\" />"
  echo "    <script type=\"module\">"
  echo "      import init, * as bindings from \"/$js\";"
  echo "      const wasm = await init({ module_or_path: \"/$wasm\" });"
  echo "      window.wasmBindings = bindings;"
  echo "      dispatchEvent(new CustomEvent(\"TrunkApplicationStarted\", { detail: { wasm } }));"
  echo "    </script>"
  sed -n '/<\/head>/,$p' web/index.html
} >"$out/index.html"
# Brotli and gzip copies beside each file: the server sends them to browsers that accept them.
node scripts/compress.mjs "$out"
echo "$stamp" >"$out/.built-from"
# Only the newest build is kept.
rm -rf "$target/page-cache" && mkdir -p "$cache"
cp "$out"/index.html* "$out/$js"* "$out/$wasm"* "$out/$css"* "$cache"/
echo "[page] $out/index.html, $js, $wasm ($(($(stat -c %s "$out/$wasm") / 1024)) KiB, gzip $(($(stat -c %s "$out/$wasm.gz") / 1024)) KiB, brotli $(($(stat -c %s "$out/$wasm.br") / 1024)) KiB), $css" >&2

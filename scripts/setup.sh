#!/usr/bin/env bash
# Installs what cashflow needs on a fresh machine, idempotently; a warm run takes seconds.
#   scripts/setup.sh rust   the pinned toolchain with the wasm target, and the C build tools
#   scripts/setup.sh page   the page's tools: wasm-bindgen-cli, wasm-opt (binaryen)
#   scripts/setup.sh kafka  Java (a headless JRE >= 17 when missing or older) and the Apache
#                           Kafka jars, resolved with mvn: the broker cashflow runs itself
#   scripts/setup.sh demo   rust + page + kafka: what scripts/run.sh needs (no Trunk)
#   scripts/setup.sh test   all of the above plus Trunk (for `trunk serve`), cargo-nextest
#                           (runs the Rust tests several at a time), chromium +
#                           chromedriver, Playwright, confluent-kafka (in a virtual
#                           environment: Debian's Python refuses system-wide pip installs)
# Tools are installed under $CASHFLOW_TOOLS (default ~/.cache/cashflow/tools), outside the
# checkout, so every clone on this machine (CI's too) shares them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
what=${1:-demo}
TOOLS=${CASHFLOW_TOOLS:-$HOME/.cache/cashflow/tools}
mkdir -p "$TOOLS/bin"
export PATH="$TOOLS/bin:$TOOLS/npm/node_modules/.bin:$HOME/.cargo/bin:$PATH"

TRUNK_VERSION=0.22.1
NEXTEST_VERSION=0.9.133
BINARYEN_VERSION=132   # Debian's binaryen (108) builds a page that dies in the browser
PLAYWRIGHT_VERSION=1.64.1

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
# npm's errors (an unreachable registry, a certificate it does not trust) are shown, not only
# written to its log.
npm_install() {
  npm install --loglevel=error --no-audit --no-fund --prefix "$TOOLS/npm" "$1" >/dev/null || {
    say "npm could not install $1 (its error is above; NODE_EXTRA_CA_CERTS names a CA file npm should trust)"
    exit 1
  }
}

want() { # want STEP: whether this run installs STEP (rust, page, trunk or test)
  case "$what:$1" in
    rust:rust | page:page | kafka:kafka | demo:rust | demo:page | demo:kafka | test:*) return 0 ;;
    *) return 1 ;;
  esac
}
case "$what" in rust | page | kafka | demo | test) ;; *)
  echo "usage: scripts/setup.sh rust|page|kafka|demo|test" >&2; exit 2 ;;
esac
if want rust && ! command -v rustup >/dev/null; then
  say "rustup is not on PATH: install it first (https://rustup.rs, or the system's rustup package), then run this again"
  exit 1
fi
# The major version of the java on PATH (0 when there is none).
java_major() {
  local v
  v=$(java -version 2>&1 | sed -n '1s/[^"]*"\([0-9][0-9.]*\).*/\1/p')
  case "$v" in 1.*) v=${v#1.} ;; esac
  echo "${v%%.*}" | grep -E '^[0-9]+$' || echo 0
}
apt_install() {
  say "apt-get install $*"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

if want rust; then
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup toolchain list | grep -q "^$toolchain"; then
  say "installing Rust $toolchain (once, ~1 min)"
  RUSTUP_AUTO_INSTALL=0 rustup toolchain install "$toolchain" --profile minimal \
    -c clippy -c rustfmt -t wasm32-unknown-unknown
fi
if ! rustup +"$toolchain" target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add --toolchain "$toolchain" wasm32-unknown-unknown
fi

apt_need=()
command -v cc >/dev/null || apt_need+=(gcc)
command -v make >/dev/null || apt_need+=(make)
command -v pkg-config >/dev/null || apt_need+=(pkg-config)
# librdkafka's TLS (and SASL SCRAM) links the system OpenSSL.
dpkg -s libssl-dev >/dev/null 2>&1 || apt_need+=(libssl-dev)
if [ "$what" = test ]; then
  command -v chromium >/dev/null || apt_need+=(chromium)
  command -v chromedriver >/dev/null || apt_need+=(chromium-driver)
  # scripts/kafka.sh makes the test broker's TLS certificate with it.
  command -v openssl >/dev/null || apt_need+=(openssl)
  command -v python3 >/dev/null || apt_need+=(python3)
  # The interop tests' client lives in a virtual environment; Debian splits venv out.
  python3 -c 'import ensurepip' 2>/dev/null || apt_need+=(python3-venv)
fi
if [ ${#apt_need[@]} -gt 0 ]; then
  apt_install "${apt_need[@]}"
fi

fi

if want kafka; then
  need=()
  # The distribution's default headless JRE: 17 on Debian 12, 21 on Debian 13.
  [ "$(java_major)" -ge 17 ] || need+=(default-jre-headless)
  command -v mvn >/dev/null || need+=(maven)
  if [ ${#need[@]} -gt 0 ]; then
    apt_install "${need[@]}"
    [ "$(java_major)" -ge 17 ] || { say "java on PATH is still older than 17: $(java -version 2>&1 | head -1)"; exit 1; }
  fi
  # The jars, listed in $TOOLS/kafka-classpath.txt for the cashflow binary.
  "$here/scripts/kafka.sh" fetch
fi

# `cargo install` builds in a temporary folder of its own unless CARGO_TARGET_DIR is set; set,
# the install would wait for the lock of the server build that scripts/run.sh runs beside it.
if want trunk && [ "$(trunk --version 2>/dev/null)" != "trunk $TRUNK_VERSION" ]; then
  say "installing trunk $TRUNK_VERSION (once, a few minutes on 2 cores)"
  # opt-level 1 as wasm-bindgen-cli below (it runs for seconds, builds for minutes), and no
  # update check (Trunk.toml says offline = true); Trunk insists on one TLS stack: rustls.
  env -u CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install --locked \
    --root "$TOOLS" trunk --version "$TRUNK_VERSION" --no-default-features --features rustls
fi

if want test && [ "$(cargo-nextest nextest --version 2>/dev/null | head -1 | cut -d' ' -f1-2)" != "cargo-nextest $NEXTEST_VERSION" ]; then
  say "installing cargo-nextest $NEXTEST_VERSION (once, a few minutes on 2 cores)"
  env -u CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install --locked \
    --root "$TOOLS" cargo-nextest --version "$NEXTEST_VERSION"
fi

if want page; then
if ! command -v npm >/dev/null; then
  say "apt-get install npm (for wasm-opt: npm's binaryen)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
fi
# wasm-bindgen-cli must equal the wasm-bindgen library version in Cargo.lock.
wb=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock 2>/dev/null || true)
if [ -n "$wb" ] && [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wb" ]; then
  say "installing wasm-bindgen-cli $wb (once, ~5 min)"
  # --locked fails: its lock file pins a webpki-roots the registry no longer has.
  # No TLS (--no-default-features: no rustls, ring): its test runner talks only to a local
  # chromedriver over http. opt-level 1: it runs for seconds, builds for minutes. Together a
  # quarter less CPU to build it (BENCHMARKS.md, "First run").
  env -u CARGO_TARGET_DIR CARGO_PROFILE_RELEASE_OPT_LEVEL=1 cargo install --root "$TOOLS" \
    wasm-bindgen-cli --version "$wb" --force --no-default-features
fi

if ! wasm-opt --version 2>/dev/null | grep -q "version $BINARYEN_VERSION"; then
  say "installing wasm-opt $BINARYEN_VERSION (npm binaryen)"
  npm_install "binaryen@$BINARYEN_VERSION"
fi
fi

if [ "$what" = test ]; then
  if [ "$(node -p "require('$TOOLS/npm/node_modules/playwright-core/package.json').version" 2>/dev/null)" != "$PLAYWRIGHT_VERSION" ]; then
    say "installing playwright-core $PLAYWRIGHT_VERSION (drives Debian's chromium; downloads no browser)"
    npm_install "playwright-core@$PLAYWRIGHT_VERSION"
  fi
  # scripts/test.sh and bench.sh put $TOOLS/venv/bin first on PATH, so `python3` is this one.
  [ -x "$TOOLS/venv/bin/python3" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/python3" -c 'import confluent_kafka' 2>/dev/null || {
    say "installing the confluent-kafka Python client into $TOOLS/venv (interop tests)"
    "$TOOLS/venv/bin/python3" -m pip install -q confluent-kafka
  }
fi
say "tools ready"

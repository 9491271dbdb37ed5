#!/usr/bin/env bash
# Builds the example payments v2 processor written in Python, in JavaScript
# and in C into WebAssembly components:
#
#   plugins/build-polyglot.sh OUT_DIR
#
# writes OUT_DIR/payments-v2-python.wasm, OUT_DIR/payments-v2-js.wasm and
# OUT_DIR/payments-v2-c.wasm. The tools are installed on first use, pinned,
# into a cache outside the clone (KAPPA_TOOLS_DIR, default
# ~/.cache/kappa-tools): a Python venv with componentize-py, an npm prefix
# with @bytecodealliance/componentize-js, weval (built by cargo: the
# JavaScript examples are compiled ahead of time, `node build.mjs --aot`), and
# wit-bindgen-cli (built by cargo with its C generator only). The C compiler is Debian's clang-14 with
# wasi-libc and the wasm32 compiler-rt, installed with apt-get when missing
# (as root; otherwise the script stops and names the packages); the linker is
# wasm-component-ld, which ships with the Rust toolchain. Needs python3 (with
# venv and pip), node with npm, and cargo. A component is rebuilt only when
# one of its sources (or the WIT, or this script) is newer than it.
# Python and JavaScript tools do not build the same bytes twice from the same
# sources (see "Rebuilding gives other bytes" in docs/plugins-python.md and
# docs/plugins-js.md), so an unchanged component is kept rather than rebuilt:
# a rebuild is a new version.
set -euo pipefail

COMPONENTIZE_PY_VERSION=0.25.1
COMPONENTIZE_JS_VERSION=0.23.0
# The weval release componentize-js 0.23.0 downloads for `enableAot` (its
# @bytecodealliance/weval 0.5.0), built here from crates.io instead.
WEVAL_VERSION=0.5.0
WIT_BINDGEN_VERSION=0.63.0
# Debian bookworm's packages: the compiler, the C library and compiler-rt.
C_PACKAGES="clang-14 wasi-libc libclang-rt-14-dev-wasm32"

if [ $# -ne 1 ]; then
    echo "usage: $0 OUT_DIR" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$1"
out="$(cd "$1" && pwd)"
tools="${KAPPA_TOOLS_DIR:-$HOME/.cache/kappa-tools}"
venv="$tools/componentize-py-$COMPONENTIZE_PY_VERSION"
npm_prefix="$tools/componentize-js-$COMPONENTIZE_JS_VERSION"
componentize_js="$npm_prefix/node_modules/@bytecodealliance/componentize-js"
wit_bindgen="$tools/wit-bindgen-cli-$WIT_BINDGEN_VERSION/bin/wit-bindgen"
weval="$tools/weval-$WEVAL_VERSION/bin/weval"

say() { echo "build-polyglot: $*"; }

# Whether $1 is missing or older than any file under the other arguments.
stale() {
    local target="$1"
    shift
    [ ! -e "$target" ] && return 0
    [ -n "$(find -L "$@" -type f -not -path '*/__pycache__/*' -newer "$target" -print -quit)" ]
}

install_python_tools() {
    if [ -x "$venv/bin/componentize-py" ]; then
        return
    fi
    say "installing componentize-py==$COMPONENTIZE_PY_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "componentize-py==$COMPONENTIZE_PY_VERSION"
}

install_js_tools() {
    if ! { [ -f "$componentize_js/package.json" ] \
        && grep -q "\"version\": \"$COMPONENTIZE_JS_VERSION\"" "$componentize_js/package.json"; }; then
        say "installing @bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION into $npm_prefix"
        rm -rf "$npm_prefix"
        mkdir -p "$npm_prefix"
        npm install --prefix "$npm_prefix" --no-audit --no-fund --loglevel=error \
            "@bytecodealliance/componentize-js@$COMPONENTIZE_JS_VERSION"
    fi
    if [ ! -x "$weval" ]; then
        say "installing weval $WEVAL_VERSION into $tools (cargo install; a few minutes)"
        local started=$SECONDS
        rm -rf "$tools/weval-$WEVAL_VERSION"
        # Its own temporary target directory, not the project's.
        env -u CARGO_TARGET_DIR cargo install --locked --quiet \
            --root "$tools/weval-$WEVAL_VERSION" "weval@$WEVAL_VERSION"
        say "installed weval in $((SECONDS - started)) s"
    fi
}

script="$root/plugins/build-polyglot.sh"

# Installed even when the components are up to date: the Python and
# JavaScript starter projects of tests/plugin_tooling.rs build with the same
# tools (the JavaScript one with weval too).
install_python_tools
install_js_tools

py_src="$root/plugins/python/payments-v2"
py_out="$out/payments-v2-python.wasm"
# Each example's `wit` links to the contract it speaks.
if stale "$py_out" "$py_src" "$script"; then
    say "building $py_out (componentize-py $COMPONENTIZE_PY_VERSION)"
    start=$SECONDS
    # No bytecode caches in the source tree, and no site-packages: the app
    # uses the standard library only.
    (cd "$py_src" && env -u VIRTUAL_ENV PYTHONDONTWRITEBYTECODE=1 "$venv/bin/componentize-py" \
        -q -d wit -w processor componentize app -p . -o "$py_out.tmp")
    mv "$py_out.tmp" "$py_out"
    say "built $py_out: $(wc -c <"$py_out") bytes in $((SECONDS - start)) s"
else
    say "$py_out is up to date"
fi

# Payments v3 (contract 0.3.0) in Python. It reads payloads with payments
# v2's payments.py, from v2's directory, second on the module path (so v3's own
# app.py and columns.py come first); a change there rebuilds it too.
py3_src="$root/plugins/python/payments-v3"
py3_out="$out/payments-v3-python.wasm"
if stale "$py3_out" "$py3_src" "$py_src/payments.py" "$script"; then
    say "building $py3_out (componentize-py $COMPONENTIZE_PY_VERSION)"
    start=$SECONDS
    (cd "$py3_src" && env -u VIRTUAL_ENV PYTHONDONTWRITEBYTECODE=1 "$venv/bin/componentize-py" \
        -q -d wit -w processor componentize app -p . -p "$py_src" -o "$py3_out.tmp")
    mv "$py3_out.tmp" "$py3_out"
    say "built $py3_out: $(wc -c <"$py3_out") bytes in $((SECONDS - start)) s"
else
    say "$py3_out is up to date"
fi

js_src="$root/plugins/js/payments-v2"
js_out="$out/payments-v2-js.wasm"
if stale "$js_out" "$js_src" "$script"; then
    say "building $js_out (componentize-js $COMPONENTIZE_JS_VERSION, ahead of time with weval $WEVAL_VERSION)"
    start=$SECONDS
    KAPPA_COMPONENTIZE_JS="$componentize_js" WEVAL_BIN="$weval" node "$js_src/build.mjs" --aot "$js_out.tmp"
    mv "$js_out.tmp" "$js_out"
    say "built $js_out: $(wc -c <"$js_out") bytes in $((SECONDS - start)) s"
else
    say "$js_out is up to date"
fi

# Payments v3 (contract 0.3.0) in JavaScript; it imports payments v2's
# payments.js, so a change there rebuilds it too.
js3_src="$root/plugins/js/payments-v3"
js3_out="$out/payments-v3-js.wasm"
if stale "$js3_out" "$js3_src" "$js_src/payments.js" "$script"; then
    say "building $js3_out (componentize-js $COMPONENTIZE_JS_VERSION, ahead of time with weval $WEVAL_VERSION)"
    start=$SECONDS
    KAPPA_COMPONENTIZE_JS="$componentize_js" WEVAL_BIN="$weval" node "$js3_src/build.mjs" --aot "$js3_out.tmp"
    mv "$js3_out.tmp" "$js3_out"
    say "built $js3_out: $(wc -c <"$js3_out") bytes in $((SECONDS - start)) s"
else
    say "$js3_out is up to date"
fi

# The C toolchain: clang-14 for wasm32-wasi (Debian's finds wasi-libc under
# /usr by itself), wit-bindgen for the bindings, wasm-component-ld for the link.
c_tools_present() {
    command -v clang-14 >/dev/null && [ -f /usr/lib/wasm32-wasi/libc.a ] \
        && [ -n "$(find /usr/lib/llvm-14/lib/clang -name libclang_rt.builtins-wasm32.a -print -quit 2>/dev/null)" ]
}

install_c_tools() {
    if ! c_tools_present; then
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            say "installing $C_PACKAGES (apt-get)"
            local started=$SECONDS
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $C_PACKAGES >/dev/null
            say "installed $C_PACKAGES in $((SECONDS - started)) s"
        else
            echo "build-polyglot: the C compiler is missing and this is not root: install the Debian packages $C_PACKAGES" >&2
            exit 1
        fi
    fi
    if [ ! -x "$wit_bindgen" ]; then
        say "installing wit-bindgen-cli $WIT_BINDGEN_VERSION (C generator only) into $tools"
        local started=$SECONDS
        rm -rf "$tools/wit-bindgen-cli-$WIT_BINDGEN_VERSION"
        cargo install --locked --quiet --no-default-features --features c \
            --root "$tools/wit-bindgen-cli-$WIT_BINDGEN_VERSION" "wit-bindgen-cli@$WIT_BINDGEN_VERSION"
        say "installed wit-bindgen-cli in $((SECONDS - started)) s"
    fi
}

c_src="$root/plugins/c/payments-v2"
c_out="$out/payments-v2-c.wasm"
# Installed even when the component is up to date: the C starter project of
# tests/plugin_tooling.rs builds with the same tools.
install_c_tools
if stale "$c_out" "$c_src" "$script"; then
    say "building $c_out (clang-14, wit-bindgen $WIT_BINDGEN_VERSION, wasm-component-ld)"
    start=$SECONDS
    KAPPA_WIT_BINDGEN="$wit_bindgen" "$c_src/build.sh" "$c_out.tmp"
    mv "$c_out.tmp" "$c_out"
    say "built $c_out: $(wc -c <"$c_out") bytes in $((SECONDS - start)) s"
else
    say "$c_out is up to date"
fi

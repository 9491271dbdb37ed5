#!/bin/sh
# Builds the payments v2 processor in C into a WebAssembly component:
#
#   ./build.sh OUT.wasm
#
# 1. wit-bindgen c writes the bindings of the `processor` world (processor.h,
#    processor.c, and processor_component_type.o, which carries the world's
#    types) into a temporary directory;
# 2. clang compiles them with app.c and payments.c for wasm32-wasi (a
#    reactor: no main, the host calls the exports);
# 3. wasm-component-ld, the Rust toolchain's component linker, links the core
#    module with wasi-libc and wraps it, with the WASI preview1 adapter it
#    embeds, into a component.
#
# Tools: $KAPPA_WIT_BINDGEN (else wit-bindgen on PATH), $CC (else clang-14,
# else clang), $WASM_COMPONENT_LD (else the one of `rustc --print sysroot`).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -ne 1 ]; then
    echo "usage: $0 OUT.wasm" >&2
    exit 2
fi
out=$1

wit_bindgen=${KAPPA_WIT_BINDGEN:-wit-bindgen}
cc=${CC:-$(command -v clang-14 || command -v clang || echo clang)}
ld=${WASM_COMPONENT_LD:-$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/wasm-component-ld}
[ -x "$ld" ] || { echo "$0: $ld not found: set WASM_COMPONENT_LD" >&2; exit 1; }
# The wasm-ld that comes with it (rust-lld), unless $WASM_LD names another.
wasm_ld=${WASM_LD:-$(dirname "$ld")/gcc-ld/wasm-ld}

gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$wit_bindgen" c --world processor --out-dir "$gen" "$here/wit" >/dev/null
"$cc" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra \
    -fuse-ld="$ld" -Wl,--wasm-ld-path="$wasm_ld" -Wl,--wasi-adapter=reactor \
    -I "$gen" -o "$out" \
    "$here/app.c" "$here/payments.c" "$gen/processor.c" "$gen/processor_component_type.o"

#!/bin/sh
# Builds the component {{name}}.wasm from plugin.c (and the project's other
# .c files, such as the column reader columns.c):
#
#   sh build.sh [OUT.wasm]
#
# 1. wit-bindgen c writes the bindings of the `processor` world into
#    bindings/ (processor.h declares what plugin.c implements and calls);
# 2. clang compiles the project's .c files and the bindings for wasm32-wasi, as a reactor
#    (no main: the host calls the exports);
# 3. wasm-component-ld, the component linker that ships with Rust, links the
#    module with wasi-libc and turns it into a component.
#
# Tools (see README.md): $WIT_BINDGEN (else wit-bindgen on PATH), $CC (else
# clang-14, else clang), $WASM_COMPONENT_LD (else the one of the Rust
# toolchain, found with rustc).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/{{name}}.wasm}

wit_bindgen=${WIT_BINDGEN:-wit-bindgen}
cc=${CC:-$(command -v clang-14 || command -v clang || echo clang)}
ld=${WASM_COMPONENT_LD:-$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/wasm-component-ld}
if [ ! -x "$ld" ]; then
    echo "build.sh: $ld not found: install Rust (rustup), or set WASM_COMPONENT_LD" >&2
    exit 1
fi
# The wasm-ld that comes with it (rust-lld), unless $WASM_LD names another.
wasm_ld=${WASM_LD:-$(dirname "$ld")/gcc-ld/wasm-ld}

rm -rf "$here/bindings"
"$wit_bindgen" c --world processor --out-dir "$here/bindings" "$here/wit" >/dev/null
"$cc" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra \
    -fuse-ld="$ld" -Wl,--wasm-ld-path="$wasm_ld" -Wl,--wasi-adapter=reactor \
    -I "$here" -I "$here/bindings" -o "$out" \
    "$here"/*.c "$here/bindings/processor.c" "$here/bindings/processor_component_type.o"
echo "built $out ($(wc -c <"$out") bytes)"

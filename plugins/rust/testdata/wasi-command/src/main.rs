//! A WASI command: exports `wasi:cli/run`, not the processor world.

fn main() {}

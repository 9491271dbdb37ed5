//! The `kappa` binary: see `kappa --help`.

// mimalloc rather than the system allocator: a replay allocates and frees
// every event it reads and every row it writes, and with mimalloc the replay
// benchmark (benches/replay.rs, which uses it too) replays 10-20% more events
// per CPU-second, native rules and Wasm plugins alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kappa::cli::main()
}

//! The `kappa` binary: see `kappa --help`.

fn main() -> std::process::ExitCode {
    kappa::cli::main()
}

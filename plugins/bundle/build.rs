//! Compiles the guest workspace `plugins/rust` to wasm32-wasip2 components
//! with a nested `cargo build`, then generates `plugins.rs`, which embeds each
//! component and names its path.
//!
//! The nested build has a target directory of its own under `OUT_DIR`, so it
//! never contends for the lock of the outer build's, and it is incremental:
//! only a change under `plugins/rust` or `wit/` reruns it.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The guest target: a `cdylib` built for it is a component.
const TARGET: &str = "wasm32-wasip2";

/// The plugins embedded: crate name and the name of its constant.
const PLUGINS: &[(&str, &str)] = &[
    ("payments-v1", "PAYMENTS_V1"),
    ("payments-v2", "PAYMENTS_V2"),
    ("starter", "STARTER"),
    ("faulty", "FAULTY"),
    ("echo-v1", "ECHO_V1"),
    ("echo-v2", "ECHO_V2"),
    ("payments-v3", "PAYMENTS_V3"),
];

/// Plugins embedded for the benchmarks only: constants like the others, but
/// not in `ALL`, the examples that `kappa plugin examples` writes.
const BENCHMARK_PLUGINS: &[(&str, &str)] = &[
    ("key-totals", "KEY_TOTALS"),
    ("key-totals-v3", "KEY_TOTALS_V3"),
    ("key-totals-timed", "KEY_TOTALS_TIMED"),
];

/// Plugins of contract 0.3.0-rc.1 and 0.3.0 and test plugins, embedded for the host's
/// tests and benchmarks: constants like the others, not in `ALL`.
const TEST_PLUGINS: &[(&str, &str)] = &[
    ("payments-v2-shards", "PAYMENTS_V2_SHARDS"),
    ("recent-window", "RECENT_WINDOW"),
    ("global-count", "GLOBAL_COUNT"),
    ("range-probe", "RANGE_PROBE"),
    ("timer-probe", "TIMER_PROBE"),
    ("topic-probe", "TOPIC_PROBE"),
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or("plugins/bundle has no workspace root above it")?;
    let guests = root.join("plugins").join("rust");
    let out_dir = PathBuf::from(var("OUT_DIR")?);

    watch(&guests)?;
    println!("cargo:rerun-if-changed={}", root.join("wit").display());

    check_target()?;
    let target_dir = out_dir.join("guest-target");
    build_guests(&guests, &target_dir)?;

    let release = target_dir.join(TARGET).join("release");
    let mut generated = String::new();
    for (name, constant) in PLUGINS.iter().chain(BENCHMARK_PLUGINS).chain(TEST_PLUGINS) {
        let path = release.join(format!("{}.wasm", name.replace('-', "_")));
        if !path.is_file() {
            return Err(format!(
                "the guest build did not produce {}",
                path.display()
            ));
        }
        let path = path
            .to_str()
            .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?;
        // A static holds the bytes so every use of the constant shares one copy.
        write!(
            generated,
            "static {constant}_BYTES: &[u8] = include_bytes!({path:?});\n\
             /// The `{name}` example plugin.\n\
             pub const {constant}: Plugin = Plugin {{ name: {name:?}, path: {path:?}, bytes: {constant}_BYTES }};\n"
        )
        .map_err(|e| e.to_string())?;
    }
    let all: Vec<&str> = PLUGINS.iter().map(|(_, constant)| *constant).collect();
    writeln!(
        generated,
        "/// Every example plugin.\npub const ALL: &[Plugin] = &[{}];",
        all.join(", ")
    )
    .map_err(|e| e.to_string())?;
    let file = out_dir.join("plugins.rs");
    fs::write(&file, generated).map_err(|e| format!("cannot write {}: {e}", file.display()))
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|e| format!("{name}: {e}"))
}

/// Reruns the build when a guest source changes. Each entry of `plugins/rust`
/// is watched (cargo scans directories recursively) except the `target`
/// directory a developer's own build leaves there, which changes with every
/// build and would make this script rerun each time.
fn watch(guests: &Path) -> Result<(), String> {
    let entries =
        fs::read_dir(guests).map_err(|e| format!("cannot read {}: {e}", guests.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {}: {e}", guests.display()))?;
        if entry.file_name() != "target" {
            paths.push(entry.path());
        }
    }
    // Sorted so the script's output, which cargo compares, is stable.
    paths.sort();
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    Ok(())
}

/// The guest build needs the target's standard library; say so plainly
/// instead of letting the nested cargo fail with a missing `core`.
fn check_target() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| OsString::from("rustc"));
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", rustc.to_string_lossy()))?;
    let libdir = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !Path::new(libdir.trim()).is_dir() {
        return Err(format!(
            "the {TARGET} target is not installed: run rustup target add {TARGET}"
        ));
    }
    Ok(())
}

/// Environment variables the outer cargo sets for this script that must not
/// reach the nested one: flags and settings meant for the host target (or
/// for clippy), and the description of this package and its target, which
/// would otherwise leak into the guests' own build scripts. `CARGO_MAKEFLAGS`
/// is kept so the nested build takes its jobs from the outer jobserver, and
/// `RUSTC`/`RUSTUP_TOOLCHAIN` so it uses the same toolchain.
fn leaks(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "TARGET",
        "HOST",
        "OUT_DIR",
        "NUM_JOBS",
        "OPT_LEVEL",
        "DEBUG",
        "PROFILE",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_MANIFEST_LINKS",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_CRATE_NAME",
    ];
    const PREFIXES: &[&str] = &["CARGO_CFG_", "CARGO_FEATURE_", "CARGO_PKG_", "DEP_"];
    EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

fn build_guests(guests: &Path, target_dir: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(&cargo);
    command
        // From the guest workspace, so its cargo configuration applies.
        .current_dir(guests)
        .args([
            "build",
            "--release",
            "--locked",
            "--target",
            TARGET,
            "--manifest-path",
        ])
        .arg(guests.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    for (name, _) in std::env::vars_os() {
        if name.to_str().is_some_and(leaks) {
            command.env_remove(&name);
        }
    }
    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    if !output.status.success() {
        return Err(format!(
            "building the plugins under {} failed ({}):\n{}",
            guests.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

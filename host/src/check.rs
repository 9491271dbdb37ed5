//! `kappa plugin check`: whether a file is a valid processor plugin for this
//! host and, if not, exactly why, without a server.
//!
//! The verdict is the runtime's own (`Runtime::load`, as at deploy). The
//! machine code it compiles goes into the compiled-code cache of the data
//! directory a local `kappa serve` uses ([`check_file`]), so that deploying
//! the same file to that server afterwards loads it instead of compiling it
//! again; without a data directory the cache is a throw-away one. The
//! report adds what the component
//! imports and exports, with types written in WIT, and, for an invalid file,
//! every problem found rather than only the first: the contract version, each
//! import the host does not grant, another world (a WASI command), a missing
//! export, an export of the wrong type.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};
use wasmtime::component::types::{ComponentItem, Type};

use crate::error::{Error, Result};
use crate::runtime::{CONTRACT_PACKAGE, DEFAULT_CONTRACT, Runtime, SUPPORTED_CONTRACTS, validate};

/// The exports of the processor world of contract `version` and their
/// types, as `describe_item` writes them.
pub fn expected_exports(version: &str) -> Vec<(&'static str, &'static str)> {
    let process = match version {
        "0.1.0" => "func(events: list<event>) -> result<_, error>",
        _ => "func(batch: event-batch) -> result<_, error>",
    };
    let mut exports = vec![
        ("init", "func(config: string) -> result<_, error>"),
        ("process", process),
    ];
    if version == "0.3.0" {
        exports.push((
            "fire",
            "func(partition: u32, time: s64, fired: list<timer>) -> result<_, error>",
        ));
    }
    exports
}

/// The named types of the contract, in the structural form `describe_type`
/// writes, each after the types it uses; a structure equal to one is written
/// by its name.
const NAMED_TYPES: &[(&str, &str)] = &[
    ("header", "record { name: string, value: list<u8> }"),
    (
        "event",
        "record { partition: u32, offset: u64, timestamp: s64, key: option<list<u8>>, \
         value: list<u8>, headers: list<header> }",
    ),
    (
        "event-header",
        "record { event: u32, name: string, value: list<u8> }",
    ),
    (
        "event-batch",
        "record { partition: u32, offsets: list<u64>, timestamps: list<s64>, \
         key-lengths: list<s32>, value-lengths: list<u32>, data: list<u8>, \
         headers: list<event-header> }",
    ),
    // Contract 0.3.0's batch and error, with the topic of each event.
    (
        "event-batch",
        "record { partition: u32, topics: list<u32>, offsets: list<u64>, \
         timestamps: list<s64>, key-lengths: list<s32>, value-lengths: list<u32>, \
         data: list<u8>, headers: list<event-header> }",
    ),
    ("event-error", "record { offset: u64, message: string }"),
    (
        "event-error",
        "record { topic: u32, offset: u64, message: string }",
    ),
    ("timer", "record { key: list<u8>, at: s64 }"),
    (
        "error",
        "variant { invalid-config(string), invalid-event(event-error), internal(string) }",
    ),
    ("level", "enum { trace, debug, info, warn, error }"),
];

/// What `kappa plugin check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Whether the host would accept the file as a plugin.
    pub valid: bool,
    /// Why not, one problem each; empty when valid.
    pub reasons: Vec<String>,
    /// sha256 of the file, hex.
    pub digest: String,
    /// Size of the file in bytes.
    pub size: u64,
    /// The contract version the component speaks, when its imports say.
    pub contract: Option<String>,
    /// What the component imports, by kind.
    pub imports: Imports,
    /// What the component exports.
    pub exports: Vec<Export>,
    /// Time spent compiling the component to machine code, ms.
    pub compile_ms: Option<u64>,
}

/// The imports of a component, split by what the host does with them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Imports {
    /// Interfaces of the contract (`kappa:processor/view@0.1.0`, ...).
    pub kappa: Vec<String>,
    /// WASI interfaces, linked inert (frozen clocks, constant-seeded random,
    /// no directories, sockets, environment or arguments).
    pub wasi: Vec<String>,
    /// Anything else: the host does not grant it, and refuses the file.
    pub refused: Vec<String>,
}

/// One export of a component.
#[derive(Debug, Clone, Serialize)]
pub struct Export {
    /// The export's name.
    pub name: String,
    /// Its type, in WIT notation.
    #[serde(rename = "type")]
    pub ty: String,
}

/// The default data directory of `kappa serve` (its `--data-dir`).
pub const DEFAULT_DATA_DIR: &str = "kappa-data";

/// The compiled-code cache `kappa plugin check` shares with `kappa serve`:
/// that of `data_dir` when one was given (`--data-dir` or `KAPPA_DATA_DIR`),
/// else that of [`DEFAULT_DATA_DIR`] in the working directory if a server
/// has made it there; `None` (a throw-away cache) otherwise, so that a check
/// creates no data directory of its own.
pub fn shared_cache_dir(data_dir: Option<&Path>) -> Option<PathBuf> {
    let dir = match data_dir {
        Some(dir) => dir.to_owned(),
        None => Some(PathBuf::from(DEFAULT_DATA_DIR)).filter(|d| d.is_dir())?,
    };
    // The subdirectory `kappa serve` keeps its compiled code in.
    Some(dir.join("compiled"))
}

/// `kappa plugin check FILE`: checks `bytes` (read from `file`) with the
/// cache of [`shared_cache_dir`], and says on stderr, before compiling, that
/// it is compiling and how large the file is, since a large component (a
/// JavaScript one embeds its engine) takes seconds to compile.
pub fn check_file(file: &Path, bytes: &[u8], data_dir: Option<&Path>) -> Result<CheckReport> {
    let cache_dir = shared_cache_dir(data_dir);
    check_with(bytes, cache_dir.as_deref(), || {
        eprintln!(
            "compiling {} ({})...",
            file.display(),
            human_size(bytes.len())
        );
    })
}

/// A size for people: bytes, KiB or MiB.
fn human_size(bytes: usize) -> String {
    match bytes {
        0..1024 => format!("{bytes} bytes"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

/// Checks `bytes` as a plugin for this host, with a throw-away compiled-code
/// cache. Errors only when the check itself cannot run (no temporary
/// directory, say).
pub fn check(bytes: &[u8]) -> Result<CheckReport> {
    check_with(bytes, None, || {})
}

/// Checks `bytes`, keeping the machine code in `cache_dir` (a throw-away
/// directory when `None`); calls `before_compiling` first unless the cache
/// already holds the component's machine code.
pub fn check_with(
    bytes: &[u8],
    cache_dir: Option<&Path>,
    before_compiling: impl FnOnce(),
) -> Result<CheckReport> {
    let digest = hex::encode(Sha256::digest(bytes));
    let scratch;
    let cache_dir = match cache_dir {
        Some(dir) => dir,
        None => {
            scratch = tempfile::tempdir()
                .map_err(|e| Error::Internal(format!("creating a temporary directory: {e}")))?;
            scratch.path()
        }
    };
    let runtime = Runtime::new(cache_dir)?;
    // Only what gets as far as the compiler: a file that is not a component
    // is refused at once.
    if validate::check_header(bytes).is_ok() && !runtime.cache().entry_path(&digest).exists() {
        before_compiling();
    }
    let started = Instant::now();
    let loaded = runtime.load(bytes, &digest);
    let elapsed = started.elapsed();
    let mut report = CheckReport {
        valid: loaded.is_ok(),
        reasons: Vec::new(),
        digest: digest.clone(),
        size: bytes.len() as u64,
        contract: None,
        imports: Imports::default(),
        exports: Vec::new(),
        compile_ms: None,
    };
    // Machine code comes from the cache `load` just filled, so this is cheap;
    // it fails only for what is not a component, which `load` already said.
    let mut unsupported: Vec<(String, Vec<String>)> = Vec::new();
    if let Ok((ty, engine)) = runtime.component_type(bytes, &digest) {
        report.compile_ms = Some(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX));
        for (name, _) in ty.imports(engine) {
            let name = name.to_owned();
            if let Some(rest) = name.strip_prefix(CONTRACT_PACKAGE) {
                let version = rest.rsplit_once('@').map_or("", |(_, v)| v).to_owned();
                if SUPPORTED_CONTRACTS.contains(&version.as_str()) {
                    report.contract.get_or_insert(version);
                } else {
                    match unsupported.iter_mut().find(|(v, _)| *v == version) {
                        Some((_, names)) => names.push(name.clone()),
                        None => unsupported.push((version, vec![name.clone()])),
                    }
                }
                report.imports.kappa.push(name);
            } else if name.starts_with("wasi:") {
                report.imports.wasi.push(name);
            } else {
                report.imports.refused.push(name);
            }
        }
        report.exports = ty
            .exports(engine)
            .map(|(name, item)| Export {
                name: name.to_owned(),
                ty: describe_item(&item.ty),
            })
            .collect();
    }
    match loaded {
        Ok(plugin) => {
            // The version the runtime runs it as: the one its imports name,
            // or the one its exports type-check as.
            report.contract = Some(plugin.contract.version().to_owned());
        }
        Err(e) => {
            if report.contract.is_none() {
                report.contract = unsupported.first().map(|(v, _)| v.clone());
            }
            if report.compile_ms.is_some() {
                report.reasons = reasons(&report, &unsupported);
            }
            let message = e.to_string();
            if report.reasons.is_empty() || message.contains("cannot be satisfied") {
                report.reasons.push(message);
            }
        }
    }
    Ok(report)
}

/// Every problem the imports and exports show, each said precisely.
fn reasons(report: &CheckReport, unsupported: &[(String, Vec<String>)]) -> Vec<String> {
    let supported = SUPPORTED_CONTRACTS
        .iter()
        .map(|v| format!("{CONTRACT_PACKAGE}@{v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut reasons = Vec::new();
    for (version, names) in unsupported {
        let found = if version.is_empty() {
            format!("an unversioned {CONTRACT_PACKAGE}")
        } else {
            format!("{CONTRACT_PACKAGE}@{version}")
        };
        reasons.push(format!(
            "unsupported contract version: the component was built against {found} \
             (it imports {}), but this host supports only {supported}",
            quoted(names)
        ));
    }
    for name in &report.imports.refused {
        reasons.push(format!(
            "the component imports `{name}`, which this host does not grant to plugins: a \
             processor may import only {CONTRACT_PACKAGE}/view and {CONTRACT_PACKAGE}/logging \
             (plus WASI 0.2, linked inert)"
        ));
    }
    // The world to compare with: the version the imports name, else the one
    // `kappa plugin new` writes.
    let version = report
        .contract
        .as_deref()
        .filter(|v| SUPPORTED_CONTRACTS.contains(v))
        .unwrap_or(DEFAULT_CONTRACT);
    let world = format!("{CONTRACT_PACKAGE}/processor@{version}");
    let expected = expected_exports(version);
    let find = |name: &str| report.exports.iter().find(|e| e.name == name);
    let has_processor_export = expected.iter().any(|(n, _)| find(n).is_some());
    if !has_processor_export && !report.exports.is_empty() {
        let names: Vec<String> = report.exports.iter().map(|e| e.name.clone()).collect();
        let what = if names.iter().any(|n| n.starts_with("wasi:cli/run@")) {
            "a WASI command (a program with a `main`), "
        } else {
            ""
        };
        reasons.push(format!(
            "the component implements another world: it is {what}exporting {} instead of the \
             `init` and `process` functions of the world {world}",
            quoted(&names)
        ));
        return reasons;
    }
    for (name, expected) in expected {
        match find(name) {
            None => reasons.push(format!(
                "missing export `{name}`: the world {world} exports `{name}: {expected}`"
            )),
            Some(found) if found.ty != expected => reasons.push(format!(
                "export `{name}` has the wrong type: `{}`, but the world {world} expects \
                 `{expected}`",
                found.ty
            )),
            Some(_) => {}
        }
    }
    reasons
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An export or import, in WIT notation where it has one.
pub fn describe_item(item: &ComponentItem) -> String {
    match item {
        ComponentItem::ComponentFunc(func) => {
            let params: Vec<String> = func
                .params()
                .map(|(name, ty)| format!("{name}: {}", describe_type(&ty)))
                .collect();
            let results: Vec<String> = func.results().map(|ty| describe_type(&ty)).collect();
            let results = match results.len() {
                0 => String::new(),
                1 => format!(" -> {}", results.join("")),
                _ => format!(" -> ({})", results.join(", ")),
            };
            format!("func({}){results}", params.join(", "))
        }
        ComponentItem::CoreFunc(_) => "core func".into(),
        ComponentItem::Module(_) => "core module".into(),
        ComponentItem::Component(_) => "component".into(),
        ComponentItem::ComponentInstance(_) => "instance".into(),
        ComponentItem::Type(ty) => format!("type {}", describe_type(ty)),
        ComponentItem::Resource(_) => "resource".into(),
    }
}

/// A value type in WIT notation. Records, variants and enums are written out
/// in full (a component's types carry no names), except those equal to a
/// type of the contract, which are written by its name.
pub fn describe_type(ty: &Type) -> String {
    let optional = |ty: Option<Type>| ty.map_or_else(|| "_".to_owned(), |t| describe_type(&t));
    let text = match ty {
        Type::Bool => "bool".to_owned(),
        Type::S8 => "s8".to_owned(),
        Type::U8 => "u8".to_owned(),
        Type::S16 => "s16".to_owned(),
        Type::U16 => "u16".to_owned(),
        Type::S32 => "s32".to_owned(),
        Type::U32 => "u32".to_owned(),
        Type::S64 => "s64".to_owned(),
        Type::U64 => "u64".to_owned(),
        Type::Float32 => "f32".to_owned(),
        Type::Float64 => "f64".to_owned(),
        Type::Char => "char".to_owned(),
        Type::String => "string".to_owned(),
        Type::ErrorContext => "error-context".to_owned(),
        Type::List(list) => format!("list<{}>", describe_type(&list.ty())),
        Type::FixedLengthList(list) => {
            format!("list<{}, {}>", describe_type(&list.ty()), list.len())
        }
        Type::Map(map) => format!(
            "map<{}, {}>",
            describe_type(&map.key()),
            describe_type(&map.value())
        ),
        Type::Record(record) => {
            let fields: Vec<String> = record
                .fields()
                .map(|f| format!("{}: {}", f.name, describe_type(&f.ty)))
                .collect();
            format!("record {{ {} }}", fields.join(", "))
        }
        Type::Tuple(tuple) => {
            let types: Vec<String> = tuple.types().map(|t| describe_type(&t)).collect();
            format!("tuple<{}>", types.join(", "))
        }
        Type::Variant(variant) => {
            let cases: Vec<String> = variant
                .cases()
                .map(|c| match c.ty {
                    Some(ty) => format!("{}({})", c.name, describe_type(&ty)),
                    None => c.name.to_owned(),
                })
                .collect();
            format!("variant {{ {} }}", cases.join(", "))
        }
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Option(o) => format!("option<{}>", describe_type(&o.ty())),
        Type::Result(r) => match (r.ok(), r.err()) {
            (None, None) => "result".to_owned(),
            (Some(ok), None) => format!("result<{}>", describe_type(&ok)),
            (ok, Some(err)) => format!("result<{}, {}>", optional(ok), describe_type(&err)),
        },
        Type::Own(_) => "own<resource>".to_owned(),
        Type::Borrow(_) => "borrow<resource>".to_owned(),
        Type::Future(f) => match f.ty() {
            Some(t) => format!("future<{}>", describe_type(&t)),
            None => "future".to_owned(),
        },
        Type::Stream(s) => match s.ty() {
            Some(t) => format!("stream<{}>", describe_type(&t)),
            None => "stream".to_owned(),
        },
    };
    NAMED_TYPES
        .iter()
        .find(|(_, structure)| *structure == text)
        .map_or(text, |(name, _)| (*name).to_owned())
}

/// The report as text for a person: the verdict, the reasons, then what the
/// component holds.
pub fn render(file: &str, report: &CheckReport) -> String {
    let mut out = if report.valid {
        format!("{file}: a valid kappa plugin\n")
    } else {
        let mut out = format!("{file}: not a valid kappa plugin\n");
        for reason in &report.reasons {
            out.push_str(&format!("  - {reason}\n"));
        }
        out
    };
    let row = |out: &mut String, label: &str, items: &[String]| {
        if items.is_empty() {
            out.push_str(&format!("  {label:<16} none\n"));
        }
        for (i, item) in items.iter().enumerate() {
            let label = if i == 0 { label } else { "" };
            out.push_str(&format!("  {label:<16} {item}\n"));
        }
    };
    if let Some(contract) = &report.contract {
        out.push_str(&format!(
            "  {:<16} {CONTRACT_PACKAGE}@{contract}{}\n",
            "contract",
            if SUPPORTED_CONTRACTS.contains(&contract.as_str()) {
                ""
            } else {
                " (not supported)"
            }
        ));
    }
    if report.compile_ms.is_some() {
        let exports: Vec<String> = report
            .exports
            .iter()
            .map(|e| format!("{}: {}", e.name, e.ty))
            .collect();
        row(&mut out, "exports", &exports);
        row(&mut out, "kappa imports", &report.imports.kappa);
        row(&mut out, "inert WASI", &report.imports.wasi);
        if !report.imports.refused.is_empty() {
            row(&mut out, "refused imports", &report.imports.refused);
        }
    }
    out.push_str(&format!("  {:<16} sha256:{}\n", "digest", report.digest));
    out.push_str(&format!("  {:<16} {} bytes\n", "size", report.size));
    if let Some(ms) = report.compile_ms {
        out.push_str(&format!(
            "  {:<16} {ms} ms (to machine code; the host caches it)\n",
            "compiled in"
        ));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn the_starter_has_exactly_the_expected_exports() {
        let report = check(kappa_plugins::STARTER.bytes).unwrap();
        assert!(report.valid, "{report:?}");
        let exports: Vec<(&str, &str)> = report
            .exports
            .iter()
            .map(|e| (e.name.as_str(), e.ty.as_str()))
            .collect();
        assert_eq!(exports, expected_exports("0.1.0"));
        assert_eq!(report.contract.as_deref(), Some("0.1.0"));
        assert!(report.imports.refused.is_empty());
    }

    #[test]
    fn a_plugin_of_contract_0_3_0_is_reported_with_its_timers() {
        let report = check(kappa_plugins::PAYMENTS_V3.bytes).unwrap();
        assert!(report.valid, "{report:?}");
        assert_eq!(report.contract.as_deref(), Some("0.3.0"));
        let exports: Vec<(&str, &str)> = report
            .exports
            .iter()
            .map(|e| (e.name.as_str(), e.ty.as_str()))
            .collect();
        assert_eq!(exports, expected_exports("0.3.0"));
        assert!(
            report
                .imports
                .kappa
                .iter()
                .any(|name| name == "kappa:processor/timers@0.3.0"),
            "{report:?}"
        );
    }

    #[test]
    fn a_plugin_of_contract_0_2_0_is_reported_as_such() {
        let report = check(kappa_plugins::PAYMENTS_V2.bytes).unwrap();
        assert!(report.valid, "{report:?}");
        assert_eq!(report.contract.as_deref(), Some("0.2.0"));
        let exports: Vec<(&str, &str)> = report
            .exports
            .iter()
            .map(|e| (e.name.as_str(), e.ty.as_str()))
            .collect();
        assert_eq!(exports, expected_exports("0.2.0"));
        assert!(
            report
                .imports
                .kappa
                .iter()
                .all(|name| name.ends_with("@0.2.0")),
            "{report:?}"
        );
        let text = render("payments-v2.wasm", &report);
        assert!(
            text.contains("process: func(batch: event-batch) -> result<_, error>"),
            "{text}"
        );
    }

    #[test]
    fn a_check_leaves_machine_code_that_a_deploy_loads() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("compiled");
        let mut compiles = 0;
        let report = check_with(kappa_plugins::STARTER.bytes, Some(&cache), || compiles += 1);
        assert!(report.unwrap().valid);
        let report = check_with(kappa_plugins::STARTER.bytes, Some(&cache), || compiles += 1);
        assert!(report.unwrap().valid);
        assert_eq!(compiles, 1, "the second check found the machine code");
        // The runtime a server opens over the same directory loads it.
        let runtime = Runtime::new(&cache).unwrap();
        let digest = hex::encode(Sha256::digest(kappa_plugins::STARTER.bytes));
        assert!(runtime.cache().entry_path(&digest).is_file());
        let plugin = runtime.load(kappa_plugins::STARTER.bytes, &digest).unwrap();
        assert!(plugin.from_cache);
        assert_eq!(runtime.cache().hits_and_misses(), (1, 0));
        // Nothing is said for what is not even WebAssembly.
        let report = check_with(b"hello", Some(&cache), || compiles += 1).unwrap();
        assert!(!report.valid);
        assert_eq!(compiles, 1);
    }

    #[test]
    fn sizes_are_written_for_people() {
        assert_eq!(human_size(512), "512 bytes");
        assert_eq!(human_size(2048), "2.0 KiB");
        assert_eq!(human_size(12 << 20), "12.0 MiB");
    }

    #[test]
    fn not_wasm_is_said_once() {
        let report = check(b"hello").unwrap();
        assert!(!report.valid);
        assert_eq!(report.reasons.len(), 1, "{:?}", report.reasons);
        assert!(report.reasons[0].contains("not WebAssembly"));
    }
}

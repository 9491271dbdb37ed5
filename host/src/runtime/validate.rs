//! What a component must be to load as a processor plugin, checked once at
//! deploy (and by `kappa plugin check`), each refusal saying exactly what is
//! wrong: not WebAssembly, a core module instead of a component, a contract
//! version this host does not speak, an import the host does not grant, a
//! missing or mistyped export.
//!
//! The contract versions are the variants of [`Contract`], listed once in the
//! `contracts!` invocation below: supporting a new version is one line there
//! (plus its `bindgen!` module in [`super::bindings`]); every `match` on a
//! contract then fails to compile until it handles the new one.

use wasmtime::Engine;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};

use super::CONTRACT_PACKAGE;
use super::bindings::{v0_1, v0_2, v0_3, v0_3_rc1};
use super::host::HostState;
use crate::error::{Error, Result};

/// Declares [`Contract`] with its list of variants and version strings.
macro_rules! contracts {
    ($($(#[$meta:meta])* $variant:ident => $version:literal),+ $(,)?) => {
        /// A version of the processor contract (`kappa:processor@X.Y.Z`) this
        /// host speaks.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Contract {
            $($(#[$meta])* $variant),+
        }

        impl Contract {
            /// Every supported version, oldest (the default) first.
            pub const ALL: &'static [Contract] = &[$(Contract::$variant),+];
            /// [`Contract::ALL`] as version strings.
            pub const VERSIONS: [&'static str; [$($version),+].len()] = [$($version),+];

            /// The version string, such as `0.1.0`.
            pub const fn version(self) -> &'static str {
                match self {
                    $(Contract::$variant => $version),+
                }
            }
        }
    };
}

contracts! {
    /// One `event` record per event.
    V0_1_0 => "0.1.0",
    /// A batch in columns.
    V0_2_0 => "0.2.0",
    /// A batch in columns, a state per partition, and range reads.
    V0_3_0Rc1 => "0.3.0-rc.1",
    /// 0.3.0-rc.1 with event-time timers and several input topics.
    V0_3_0 => "0.3.0",
}

impl Contract {
    /// The contract `kappa plugin new` writes (one record per event, the
    /// simplest to program), and the one a component that names none is
    /// checked against first.
    pub const DEFAULT: Contract = Contract::V0_1_0;

    /// The supported contract of version `version`, if any.
    pub fn from_version(version: &str) -> Option<Contract> {
        Contract::ALL
            .iter()
            .copied()
            .find(|c| c.version() == version)
    }

    /// Whether each input partition has a state of its own: a batch of
    /// partition P reads and writes P's shard of the view only, so the
    /// partitions of a version may be processed on several threads at once,
    /// one instance each. False for the versions whose partitions share one
    /// view (0.1.0, 0.2.0), which are processed on one thread.
    pub const fn state_per_partition(self) -> bool {
        match self {
            Contract::V0_1_0 | Contract::V0_2_0 => false,
            Contract::V0_3_0Rc1 | Contract::V0_3_0 => true,
        }
    }

    /// Whether the version has event-time timers and reads several topics
    /// (0.3.0 on): its batches may be cut where timers fire, and the host's
    /// rows of the shard (from [`crate::runtime::timers::RESERVED`] on) are
    /// kept from the processor.
    pub const fn has_timers(self) -> bool {
        matches!(self, Contract::V0_3_0)
    }

    /// Links this version's imports (`view`, `logging`, `types`).
    pub(super) fn add_to_linker(self, linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
        match self {
            Contract::V0_1_0 => {
                v0_1::Processor::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
            }
            Contract::V0_2_0 => {
                v0_2::Processor::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
            }
            Contract::V0_3_0Rc1 => {
                v0_3_rc1::Processor::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
            }
            Contract::V0_3_0 => {
                v0_3::Processor::add_to_linker::<HostState, HasSelf<HostState>>(linker, |s| s)
            }
        }
    }

    /// The bindings of this version's `processor` world, if the component
    /// type-checks against it.
    fn typecheck(self, pre: &InstancePre<HostState>) -> wasmtime::Result<Pre> {
        match self {
            Contract::V0_1_0 => v0_1::ProcessorPre::new(pre.clone()).map(Pre::V0_1),
            Contract::V0_2_0 => v0_2::ProcessorPre::new(pre.clone()).map(Pre::V0_2),
            Contract::V0_3_0Rc1 => v0_3_rc1::ProcessorPre::new(pre.clone()).map(Pre::V0_3Rc1),
            Contract::V0_3_0 => v0_3::ProcessorPre::new(pre.clone()).map(Pre::V0_3),
        }
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version())
    }
}

impl PartialEq<&str> for Contract {
    fn eq(&self, other: &&str) -> bool {
        self.version() == *other
    }
}

/// The compiled, type-checked plugin, for the contract version it speaks.
pub(super) enum Pre {
    V0_1(v0_1::ProcessorPre<HostState>),
    V0_2(v0_2::ProcessorPre<HostState>),
    V0_3Rc1(v0_3_rc1::ProcessorPre<HostState>),
    V0_3(v0_3::ProcessorPre<HostState>),
}

/// Refuses what is not a component before compiling it, saying what it is.
pub fn check_header(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Error::invalid(
            "the file is not WebAssembly (it does not start with the \\0asm magic)",
        ));
    }
    // The 4 bytes after the magic are version + layer: 1,0,0,0 for a core
    // module; components use a different layer.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(Error::invalid(
            "the file is a core WebAssembly module, not a component: build the plugin for \
             the wasm32-wasip2 target (or wrap the module with `wasm-tools component new`)",
        ));
    }
    Ok(())
}

/// Checks a compiled component's imports and exports against the contract,
/// and returns it type-checked, with the version it speaks.
pub(super) fn typecheck(
    engine: &Engine,
    linker: &Linker<HostState>,
    component: &Component,
) -> Result<(Pre, Contract)> {
    let declared = check_imports(engine, component)?;
    let instance_pre = linker.instantiate_pre(component).map_err(|e| {
        Error::invalid(format!(
            "the component's imports cannot be satisfied by this host: {e:#}"
        ))
    })?;
    // The version the imports name, else (a plugin that imports neither
    // the view nor logging) whichever the exports type-check against, in
    // the order of Contract::ALL, whose first is the default, so that an
    // error names the default.
    let candidates: &[Contract] = match &declared {
        Some(version) => std::slice::from_ref(version),
        None => Contract::ALL,
    };
    let mut first_error = None;
    for &contract in candidates {
        match contract.typecheck(&instance_pre) {
            Ok(pre) => return Ok((pre, contract)),
            Err(e) => {
                first_error.get_or_insert((contract, e));
            }
        }
    }
    let (version, e) = first_error.ok_or_else(|| {
        Error::Internal("no contract version to check the component against".into())
    })?;
    Err(Error::invalid(format!(
        "the component does not export the `processor` world of \
         {CONTRACT_PACKAGE}@{version}: {e:#} (exports found: {})",
        export_names(engine, component)
    )))
}

/// Names a refused import precisely, before the linker's generic error,
/// and returns the contract version the imports name, if any.
fn check_imports(engine: &Engine, component: &Component) -> Result<Option<Contract>> {
    let ty = component.component_type();
    let mut declared: Option<Contract> = None;
    for (name, _) in ty.imports(engine) {
        if let Some(rest) = name.strip_prefix(CONTRACT_PACKAGE) {
            let version = rest.rsplit_once('@').map(|(_, v)| v).unwrap_or("");
            let Some(supported) = Contract::from_version(version) else {
                return Err(Error::invalid(format!(
                    "the component was built against {CONTRACT_PACKAGE}@{version} \
                     (import `{name}`), but this host supports {}",
                    Contract::VERSIONS.join(", ")
                )));
            };
            match declared {
                Some(other) if other != supported => {
                    return Err(Error::invalid(format!(
                        "the component mixes contract versions: it imports both \
                         {CONTRACT_PACKAGE}@{other} and {CONTRACT_PACKAGE}@{supported} \
                         (import `{name}`); build it against one WIT package"
                    )));
                }
                _ => declared = Some(supported),
            }
        } else if !name.starts_with("wasi:") {
            return Err(Error::invalid(format!(
                "the component imports `{name}`, which kappa does not grant to plugins: \
                 a processor may import only {CONTRACT_PACKAGE}/view, \
                 {CONTRACT_PACKAGE}/logging and (from 0.3.0 on) {CONTRACT_PACKAGE}/timers \
                 (plus WASI 0.2, made inert)"
            )));
        }
    }
    Ok(declared)
}

fn export_names(engine: &Engine, component: &Component) -> String {
    let ty = component.component_type();
    let names: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    #[test]
    fn header_check_names_the_problem() {
        let not_wasm = check_header(b"hello world").unwrap_err().to_string();
        assert!(not_wasm.contains("not WebAssembly"), "{not_wasm}");
        let core = check_header(b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(core.contains("core WebAssembly module"), "{core}");
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }

    #[test]
    fn each_contract_is_found_by_its_version() {
        for &contract in Contract::ALL {
            assert_eq!(Contract::from_version(contract.version()), Some(contract));
            assert_eq!(contract, contract.version());
            assert_eq!(contract.to_string(), contract.version());
        }
        assert_eq!(Contract::from_version("0.9.0"), None);
        assert_eq!(
            Contract::VERSIONS,
            ["0.1.0", "0.2.0", "0.3.0-rc.1", "0.3.0"]
        );
        assert_eq!(Contract::from_version("0.3.0"), Some(Contract::V0_3_0));
        assert_eq!(Contract::from_version("0.3.0-rc.2"), None);
    }

    #[test]
    fn state_per_partition_from_the_candidate_on_and_timers_from_the_release_on() {
        let per_partition: Vec<bool> = Contract::ALL
            .iter()
            .map(|c| c.state_per_partition())
            .collect();
        assert_eq!(per_partition, [false, false, true, true]);
        let timers: Vec<bool> = Contract::ALL.iter().map(|c| c.has_timers()).collect();
        assert_eq!(timers, [false, false, false, true]);
    }
}

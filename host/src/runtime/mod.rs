//! The plugin runtime: turns component bytes into a validated, compiled
//! plugin, and runs instances of it over batches of events.
//!
//! - Validation happens once, at deploy, and says exactly what is wrong: not
//!   WebAssembly, a core module instead of a component, a contract version
//!   this host does not speak, an import the host does not grant, a missing or
//!   mistyped export.
//! - Compiled code is cached on disk by digest, so a restart loads machine code
//!   instead of running Cranelift again.
//! - Isolation: each instance has its own store with a memory limit
//!   ([`budget::InstanceMemory`]) and a time limit per call (epoch
//!   interruption, ticked by one background thread), so a trap, an endless
//!   loop or a memory blow-up fails the call, which fails that version only.
//! - A batch's view writes are buffered in the store's state (so the guest
//!   reads its own writes) and handed back to the caller, which commits them
//!   with the batch's offsets. They count against the memory limit together
//!   with the linear memories and tables ([`budget`]).
//! - Everything else a plugin can make the host hold is capped: its log
//!   messages and error strings ([`MAX_GUEST_MESSAGE_BYTES`]), its printed
//!   output (the last 4 KiB), its WASI handles ([`MAX_WASI_HANDLES`]).
//! - Every contract version in [`SUPPORTED_CONTRACTS`] is linked; a plugin is
//!   run through the version its imports and exports type-check against, and
//!   the rest of the host never sees the difference.

pub mod bindings;
pub mod budget;
mod sandbox;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, Trap};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::error::{Error, Result};
use crate::log::Record;
use crate::registry::Settings;
use crate::store::{Snapshot, Writes};
use bindings::{v0_1, v0_2};
use budget::{ENTRY_OVERHEAD, InstanceMemory, PendingWrites, mib};
use sandbox::CapturedOutput;

/// The contract versions this host speaks, the default ([`DEFAULT_CONTRACT`])
/// first, newest last.
pub const SUPPORTED_CONTRACTS: &[&str] = &["0.1.0", "0.2.0"];
/// The contract `kappa plugin new` writes (one record per event, the simplest
/// to program), and the one a component that names none is checked against
/// first.
pub const DEFAULT_CONTRACT: &str = "0.1.0";
/// The WIT package of the contract.
pub const CONTRACT_PACKAGE: &str = "kappa:processor";
/// How often the epoch advances; the granularity of batch time limits.
const EPOCH_TICK: Duration = Duration::from_millis(10);
/// Largest key a plugin may write.
pub const MAX_KEY_BYTES: usize = 64 << 10;
/// Largest single value a plugin may write.
pub const MAX_VALUE_BYTES: usize = 16 << 20;
/// Largest total of writes one batch may buffer before the call is stopped.
pub const MAX_BATCH_WRITE_BYTES: usize = 256 << 20;
/// Guest log messages kept per batch; the rest are counted, not logged.
const LOG_BUDGET_PER_CALL: u32 = 100;
/// Longest guest string the host keeps: a log message, or the message of an
/// error the guest returns (which a failure or a dead letter records); the
/// rest is cut off.
pub const MAX_GUEST_MESSAGE_BYTES: usize = 4096;
/// Most WASI resources (streams, pollables) one instance may hold open at
/// once; a plugin that opens more without closing them traps.
pub const MAX_WASI_HANDLES: usize = 10_000;

/// Owns the engine, the linker (what plugins may import) and the compiled-code
/// cache. One per host, shared by every version.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: PathBuf,
    stop_ticker: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache_dir", &self.cache_dir)
            .finish()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A validated, compiled plugin, ready to instantiate.
pub struct Plugin {
    pre: Pre,
    /// The contract version the plugin speaks (`0.1.0`, `0.2.0`).
    pub contract: &'static str,
    /// sha256 of the component bytes.
    pub digest: String,
    /// Whether the machine code came from the on-disk cache.
    pub from_cache: bool,
    /// Time spent compiling or loading the machine code.
    pub load_time: Duration,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("digest", &self.digest)
            .field("contract", &self.contract)
            .field("from_cache", &self.from_cache)
            .finish()
    }
}

impl Runtime {
    /// A runtime caching compiled code under `cache_dir`.
    pub fn new(cache_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(cache_dir).map_err(crate::error::io(format!(
            "creating the compiled-code cache {}",
            cache_dir.display()
        )))?;
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.parallel_compilation(true);
        let engine = Engine::new(&config)
            .map_err(|e| Error::Internal(format!("creating the wasm engine: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| Error::Internal(format!("linking WASI: {e:#}")))?;
        v0_1::Processor::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| Error::Internal(format!("linking the processor contract 0.1.0: {e:#}")))?;
        v0_2::Processor::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| Error::Internal(format!("linking the processor contract 0.2.0: {e:#}")))?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (ticker_engine, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("kappa-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    ticker_engine.increment_epoch();
                }
            })
            .map_err(|e| Error::Internal(format!("starting the epoch thread: {e}")))?;
        Ok(Runtime {
            engine,
            linker,
            cache_dir: cache_dir.to_owned(),
            stop_ticker,
        })
    }

    /// Validates `bytes` as a processor plugin and compiles it (or loads its
    /// compiled code from the cache). Errors say what is wrong with the file.
    pub fn load(&self, bytes: &[u8], digest: &str) -> Result<Plugin> {
        let started = Instant::now();
        let (component, from_cache) = self.compile(bytes, digest)?;
        let declared = self.check_imports(&component)?;
        let instance_pre = self.linker.instantiate_pre(&component).map_err(|e| {
            Error::invalid(format!(
                "the component's imports cannot be satisfied by this host: {e:#}"
            ))
        })?;
        // The version the imports name, else (a plugin that imports neither
        // the view nor logging) whichever the exports type-check against, in
        // the order of SUPPORTED_CONTRACTS, whose first is the default, so
        // that an error names the default.
        let candidates: Vec<&'static str> = match declared {
            Some(version) => vec![version],
            None => SUPPORTED_CONTRACTS.to_vec(),
        };
        let mut first_error = None;
        let mut found = None;
        for &version in &candidates {
            let typed = match version {
                "0.1.0" => v0_1::ProcessorPre::new(instance_pre.clone()).map(Pre::V0_1),
                "0.2.0" => v0_2::ProcessorPre::new(instance_pre.clone()).map(Pre::V0_2),
                other => Err(wasmtime::format_err!(
                    "internal error: no bindings for contract {other}"
                )),
            };
            match typed {
                Ok(pre) => {
                    found = Some((pre, version));
                    break;
                }
                Err(e) => {
                    first_error.get_or_insert((version, e));
                }
            }
        }
        let Some((pre, contract)) = found else {
            let (version, e) = first_error.ok_or_else(|| {
                Error::Internal("no contract version to check the component against".into())
            })?;
            return Err(Error::invalid(format!(
                "the component does not export the `processor` world of \
                 {CONTRACT_PACKAGE}@{version}: {e:#} (exports found: {})",
                export_names(&self.engine, &component)
            )));
        };
        Ok(Plugin {
            pre,
            contract,
            digest: digest.to_owned(),
            from_cache,
            load_time: started.elapsed(),
        })
    }

    /// The type of the component in `bytes` (what it imports and exports),
    /// for reports such as `kappa plugin check`, with the engine to read it.
    /// Takes the compiled code from the cache when `load` left it there;
    /// fails as `load` does on a file that is not a component.
    pub fn component_type(
        &self,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(wasmtime::component::types::Component, &Engine)> {
        let (component, _) = self.compile(bytes, digest)?;
        Ok((component.component_type(), &self.engine))
    }

    /// Checks the header, then compiles `bytes` or loads their machine code
    /// from the cache; says whether it came from the cache.
    fn compile(&self, bytes: &[u8], digest: &str) -> Result<(Component, bool)> {
        check_header(bytes)?;
        let cache_path = self.cache_dir.join(format!(
            "{digest}-wasmtime-{}.cwasm",
            env!("CARGO_PKG_VERSION")
        ));
        if let Some(component) = self.load_cached(&cache_path) {
            return Ok((component, true));
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| Error::invalid(format!("the file is not a valid component: {e:#}")))?;
        self.store_cached(&cache_path, &component);
        Ok((component, false))
    }

    fn load_cached(&self, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: `deserialize_file` trusts the file to be machine code that
        // this engine produced. The cache directory is private to the host's
        // data directory, each file is named by the sha256 of its source and
        // this wasmtime's version, and is written only by `store_cached` via
        // an atomic rename, so it holds exactly what `serialize` returned.
        // wasmtime additionally checks the engine configuration on load.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(&self.engine, path) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compiled-code cache entry: {e:#}");
                None
            }
        }
    }

    fn store_cached(&self, path: &Path, component: &Component) {
        // A failure to cache costs a recompile on restart, nothing more.
        let result = component
            .serialize()
            .map_err(|e| format!("{e:#}"))
            .and_then(|code| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, code)
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), "could not cache compiled code: {e}");
        }
    }

    /// Names a refused import precisely, before the linker's generic error,
    /// and returns the contract version the imports name, if any.
    fn check_imports(&self, component: &Component) -> Result<Option<&'static str>> {
        let ty = component.component_type();
        let mut declared: Option<&'static str> = None;
        for (name, _) in ty.imports(&self.engine) {
            if let Some(rest) = name.strip_prefix(CONTRACT_PACKAGE) {
                let version = rest.rsplit_once('@').map(|(_, v)| v).unwrap_or("");
                let Some(&supported) = SUPPORTED_CONTRACTS.iter().find(|v| **v == version) else {
                    return Err(Error::invalid(format!(
                        "the component was built against {CONTRACT_PACKAGE}@{version} \
                         (import `{name}`), but this host supports {}",
                        SUPPORTED_CONTRACTS.join(", ")
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
                     a processor may import only {CONTRACT_PACKAGE}/view and \
                     {CONTRACT_PACKAGE}/logging (plus WASI 0.2, made inert)"
                )));
            }
        }
        Ok(declared)
    }

    /// Creates an instance of `plugin` for version `label` and runs its
    /// `init` with the deploy configuration.
    pub fn instantiate(
        &self,
        plugin: &Plugin,
        label: &str,
        settings: &Settings,
    ) -> std::result::Result<Instance, CallFailure> {
        let output = CapturedOutput::new(4096);
        let state = HostState::new(&output, label, settings);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        store.epoch_deadline_trap();
        let timeout_ticks = (settings.batch_timeout_ms / EPOCH_TICK.as_millis() as u64).max(1);
        let mut instance = Instance {
            store,
            bindings: None,
            output,
            timeout_ticks,
            timeout_ms: settings.batch_timeout_ms,
        };
        instance.store.set_epoch_deadline(timeout_ticks);
        let bindings = match &plugin.pre {
            Pre::V0_1(pre) => pre.instantiate(&mut instance.store).map(Bindings::V0_1),
            Pre::V0_2(pre) => pre.instantiate(&mut instance.store).map(Bindings::V0_2),
        }
        .map_err(|e| instance.failure("failed to instantiate", None, &e))?;
        instance.store.set_epoch_deadline(timeout_ticks);
        instance.store.data_mut().log_budget = LOG_BUDGET_PER_CALL;
        let init = match &bindings {
            Bindings::V0_1(b) => b
                .call_init(&mut instance.store, &settings.config)
                .map(|r| r.map_err(GuestError::from)),
            Bindings::V0_2(b) => b
                .call_init(&mut instance.store, &settings.config)
                .map(|r| r.map_err(GuestError::from)),
        };
        match init {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(CallFailure {
                    offset: None,
                    message: format!("init refused: {}", describe_guest_error(&e)),
                });
            }
            Err(e) => return Err(instance.failure("trapped in init", None, &e)),
        }
        instance.bindings = Some(bindings);
        Ok(instance)
    }
}

fn check_header(bytes: &[u8]) -> Result<()> {
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

fn export_names(engine: &Engine, component: &Component) -> String {
    let ty = component.component_type();
    let names: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The compiled, type-checked plugin, for the contract version it speaks.
enum Pre {
    V0_1(v0_1::ProcessorPre<HostState>),
    V0_2(v0_2::ProcessorPre<HostState>),
}

/// The exports of one instance, for the contract version it speaks.
enum Bindings {
    V0_1(v0_1::Processor),
    V0_2(v0_2::Processor),
}

/// A guest's `error`, whatever the contract version (they are the same type
/// in every version so far).
enum GuestError {
    InvalidConfig(String),
    InvalidEvent { offset: u64, message: String },
    Internal(String),
}

fn describe_guest_error(e: &GuestError) -> String {
    match e {
        // Plugins often start their message with the same words: say them once.
        GuestError::InvalidConfig(m) => {
            let m = cut(m);
            let m = m
                .strip_prefix("invalid configuration: ")
                .or_else(|| m.strip_prefix("invalid config: "))
                .unwrap_or(&m);
            format!("invalid configuration: {m}")
        }
        GuestError::InvalidEvent { offset, message } => {
            format!("invalid event at offset {offset}: {}", cut(message))
        }
        GuestError::Internal(m) => cut(m).into_owned(),
    }
}

/// `s` cut to [`MAX_GUEST_MESSAGE_BYTES`] (at a character boundary), saying
/// how long it was.
fn cut(s: &str) -> std::borrow::Cow<'_, str> {
    if s.len() <= MAX_GUEST_MESSAGE_BYTES {
        return s.into();
    }
    let mut end = MAX_GUEST_MESSAGE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… (cut; {} bytes in all)", &s[..end], s.len()).into()
}

/// Why a call into a plugin failed. `offset` names the event when the guest
/// reported one (an `invalid-event` error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFailure {
    /// The offending event's offset, when known.
    pub offset: Option<u64>,
    /// What happened, including what the guest printed just before.
    pub message: String,
}

/// One live instance of a plugin. Not reusable after a failure: the worker
/// drops it and creates a fresh one if it needs to call the plugin again.
pub struct Instance {
    store: Store<HostState>,
    bindings: Option<Bindings>,
    output: CapturedOutput,
    timeout_ticks: u64,
    timeout_ms: u64,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("label", &self.store.data().label)
            .finish()
    }
}

impl Instance {
    /// Runs `process` on `events` (one partition, offset order) against the
    /// view as of `snapshot`, and returns the batch's writes, for the caller
    /// to commit with the batch's offsets. They are held in host memory until
    /// then, counted against the memory limit: a batch whose writes would
    /// exceed it fails.
    pub fn process(
        &mut self,
        snapshot: Snapshot,
        events: Vec<Record>,
    ) -> std::result::Result<Writes, CallFailure> {
        let state = self.store.data_mut();
        state.batch = Some(Batch {
            snapshot,
            writes: PendingWrites::new(),
        });
        state.memory.pending = 0;
        state.log_budget = LOG_BUDGET_PER_CALL;
        self.store.set_epoch_deadline(self.timeout_ticks);
        let Some(bindings) = self.bindings.as_ref() else {
            return Err(CallFailure {
                offset: None,
                message: "the instance was not initialized".into(),
            });
        };
        let result = match bindings {
            Bindings::V0_1(b) => {
                let events: Vec<v0_1::Event> = events.into_iter().map(to_event).collect();
                b.call_process(&mut self.store, &events)
                    .map(|r| r.map_err(GuestError::from))
            }
            Bindings::V0_2(b) => match to_columns(events) {
                Ok(batch) => b
                    .call_process(&mut self.store, &batch)
                    .map(|r| r.map_err(GuestError::from)),
                Err(message) => Ok(Err(GuestError::Internal(message))),
            },
        };
        let batch = self.store.data_mut().batch.take();
        self.store.data_mut().memory.pending = 0;
        let printed = self.output.take();
        if !printed.is_empty() {
            tracing::info!(plugin = %self.store.data().label, "plugin output: {}", printed.trim_end());
        }
        match (result, batch) {
            (Ok(Ok(())), Some(batch)) => Ok(batch.writes.into_writes()),
            (Ok(Ok(())), None) => Err(CallFailure {
                offset: None,
                message: "internal error: batch state lost".into(),
            }),
            (Ok(Err(e)), _) => {
                let offset = match &e {
                    GuestError::InvalidEvent { offset, .. } => Some(*offset),
                    _ => None,
                };
                Err(CallFailure {
                    offset,
                    message: format!("returned an error: {}", describe_guest_error(&e)),
                })
            }
            (Err(e), _) => Err(CallFailure {
                offset: None,
                message: self.describe_trap(&e, &printed),
            }),
        }
    }

    fn failure(&mut self, what: &str, offset: Option<u64>, e: &wasmtime::Error) -> CallFailure {
        let printed = self.output.take();
        CallFailure {
            offset,
            message: format!("{what}: {}", self.describe_trap(e, &printed)),
        }
    }

    fn describe_trap(&self, e: &wasmtime::Error, printed: &str) -> String {
        let mut message = match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => format!(
                "exceeded the time limit of {} ms for one call (an endless loop?)",
                self.timeout_ms
            ),
            Some(trap) => format!("trapped: {trap}"),
            // Not a wasm trap code: a host-side limit (memory growth refused,
            // an oversized view write). The root cause says which; the outer
            // layers are wasmtime's backtrace framing.
            None => format!("trapped: {}", first_line(&e.root_cause().to_string())),
        };
        // The guest's own last words (a Rust panic message, a Python
        // traceback) are the most useful part for the plugin author.
        let printed = printed.trim();
        if !printed.is_empty() {
            let tail: String = printed
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | ");
            message.push_str(&format!("; plugin output: {tail}"));
        }
        message
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

fn to_event(r: Record) -> v0_1::Event {
    v0_1::Event {
        partition: r.partition,
        offset: r.offset,
        timestamp: r.timestamp,
        key: r.key,
        value: r.value,
        headers: r
            .headers
            .into_iter()
            .map(|(name, value)| v0_1::Header { name, value })
            .collect(),
    }
}

/// Lays a batch out in the columns of contract 0.2.0: a fixed number of lists
/// whatever the batch's size, so that lowering it into the guest costs a few
/// allocations and copies instead of three per event. Fails only for a batch
/// no guest could address (over 4 GiB of keys and values).
fn to_columns(events: Vec<Record>) -> std::result::Result<v0_2::EventBatch, String> {
    let n = events.len();
    let data_len: usize = events
        .iter()
        .map(|r| r.key.as_ref().map_or(0, Vec::len) + r.value.len())
        .sum();
    if u32::try_from(data_len).is_err() {
        return Err(format!(
            "a batch of {n} events holds {data_len} bytes of keys and values, over the 4 GiB \
             a guest can address"
        ));
    }
    let mut batch = v0_2::EventBatch {
        partition: events.first().map_or(0, |r| r.partition),
        offsets: Vec::with_capacity(n),
        timestamps: Vec::with_capacity(n),
        key_lengths: Vec::with_capacity(n),
        value_lengths: Vec::with_capacity(n),
        data: Vec::with_capacity(data_len),
        headers: Vec::new(),
    };
    for (index, r) in events.into_iter().enumerate() {
        let too_large = || format!("the event at offset {} is too large for a batch", r.offset);
        batch.offsets.push(r.offset);
        batch.timestamps.push(r.timestamp);
        batch.key_lengths.push(match &r.key {
            Some(key) => i32::try_from(key.len()).map_err(|_| too_large())?,
            None => -1,
        });
        batch
            .value_lengths
            .push(u32::try_from(r.value.len()).map_err(|_| too_large())?);
        if let Some(key) = &r.key {
            batch.data.extend_from_slice(key);
        }
        batch.data.extend_from_slice(&r.value);
        let event = u32::try_from(index).map_err(|_| too_large())?;
        batch.headers.extend(
            r.headers
                .into_iter()
                .map(|(name, value)| v0_2::EventHeader { event, name, value }),
        );
    }
    Ok(batch)
}

/// The view state of the call in progress.
struct Batch {
    snapshot: Snapshot,
    writes: PendingWrites,
}

/// Per-instance host state: WASI, limits, and the batch in progress.
struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    memory: InstanceMemory,
    batch: Option<Batch>,
    label: String,
    log_budget: u32,
}

impl HostState {
    fn new(output: &CapturedOutput, label: &str, settings: &Settings) -> Self {
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_WASI_HANDLES);
        HostState {
            wasi: sandbox::wasi_ctx(output),
            table,
            memory: InstanceMemory::new(
                usize::try_from(settings.memory_limit_bytes).unwrap_or(usize::MAX),
            ),
            batch: None,
            label: label.to_owned(),
            log_budget: LOG_BUDGET_PER_CALL,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HostState {
    fn batch(&mut self) -> wasmtime::Result<&mut Batch> {
        self.batch.as_mut().ok_or_else(|| {
            wasmtime::format_err!("the view is available only while processing events, not in init")
        })
    }
}

/// The view, as every contract version's `view` interface gives it.
impl HostState {
    fn view_get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        let batch = self.batch()?;
        if let Some(pending) = batch.writes.get(&key) {
            return Ok(pending.clone());
        }
        batch
            .snapshot
            .get(&key)
            .map_err(|e| wasmtime::format_err!("reading the view failed: {e}"))
    }

    fn view_put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        if key.len() > MAX_KEY_BYTES {
            wasmtime::bail!(
                "view key of {} bytes exceeds the limit of {MAX_KEY_BYTES}",
                key.len()
            );
        }
        if value.len() > MAX_VALUE_BYTES {
            wasmtime::bail!(
                "view value of {} bytes exceeds the limit of {MAX_VALUE_BYTES}",
                value.len()
            );
        }
        self.pend(key, Some(value))
    }

    fn view_delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        if key.len() > MAX_KEY_BYTES {
            wasmtime::bail!(
                "view key of {} bytes exceeds the limit of {MAX_KEY_BYTES}",
                key.len()
            );
        }
        self.pend(key, None)
    }

    /// Adds a write to the batch's pending writes, within the per-batch cap
    /// and the memory limit.
    fn pend(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> wasmtime::Result<()> {
        let (limit, allowed) = (self.memory.limit, self.memory.allowed_for_writes());
        let instance = self.memory.linear + self.memory.tables;
        let batch = self.batch()?;
        if let Err(over) = batch.writes.set(key, value, allowed) {
            wasmtime::bail!(
                "exceeded its memory limit of {} (raise it with --memory-limit-mb): the \
                 batch's pending view writes would take {} of host memory ({} keys pending, \
                 each counted at its key and value bytes plus {ENTRY_OVERHEAD}) beside {} of linear \
                 memory and tables",
                mib(limit),
                mib(over.cost),
                over.entries,
                mib(instance)
            );
        }
        let (cost, data_bytes) = (batch.writes.cost(), batch.writes.data_bytes());
        if data_bytes > MAX_BATCH_WRITE_BYTES {
            wasmtime::bail!("one batch wrote over {MAX_BATCH_WRITE_BYTES} bytes to the view");
        }
        self.memory.pending = cost;
        Ok(())
    }

    fn log(&mut self, level: tracing::Level, message: String) {
        if self.log_budget == 0 {
            return;
        }
        self.log_budget -= 1;
        let message = cut(&message);
        let plugin = self.label.as_str();
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "kappa::plugin", plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "kappa::plugin", plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "kappa::plugin", plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "kappa::plugin", plugin, "{message}"),
            tracing::Level::ERROR => tracing::error!(target: "kappa::plugin", plugin, "{message}"),
        }
    }
}

/// Implements a contract version's imports on `HostState`, and reads its
/// `error` as a [`GuestError`]; the versions so far share identical `view`
/// and `logging` interfaces and `error` type.
macro_rules! contract_imports {
    ($v:ident) => {
        impl From<$v::GuestError> for GuestError {
            fn from(e: $v::GuestError) -> Self {
                match e {
                    $v::GuestError::InvalidConfig(m) => GuestError::InvalidConfig(m),
                    $v::GuestError::InvalidEvent(ev) => GuestError::InvalidEvent {
                        offset: ev.offset,
                        message: ev.message,
                    },
                    $v::GuestError::Internal(m) => GuestError::Internal(m),
                }
            }
        }

        impl $v::kappa::processor::view::Host for HostState {
            fn get(&mut self, key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
                self.view_get(key)
            }

            fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
                self.view_put(key, value)
            }

            fn delete(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
                self.view_delete(key)
            }
        }

        impl $v::kappa::processor::logging::Host for HostState {
            fn log(&mut self, level: $v::Level, message: String) {
                let level = match level {
                    $v::Level::Trace => tracing::Level::TRACE,
                    $v::Level::Debug => tracing::Level::DEBUG,
                    $v::Level::Info => tracing::Level::INFO,
                    $v::Level::Warn => tracing::Level::WARN,
                    $v::Level::Error => tracing::Level::ERROR,
                };
                HostState::log(self, level, message);
            }
        }

        impl $v::kappa::processor::types::Host for HostState {}
    };
}

contract_imports!(v0_1);
contract_imports!(v0_2);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn columns_lay_keys_and_values_back_to_back() {
        let record = |offset, key: Option<&[u8]>, value: &[u8], headers: &[(&str, &[u8])]| Record {
            partition: 2,
            offset,
            timestamp: -(offset as i64),
            key: key.map(<[u8]>::to_vec),
            value: value.to_vec(),
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.to_vec()))
                .collect(),
        };
        let batch = to_columns(vec![
            record(7, None, b"v0", &[]),
            record(8, Some(b""), b"", &[("a", b"1"), ("b", b"")]),
            record(9, Some(b"k2"), b"v2", &[("c", b"3")]),
        ])
        .unwrap();
        assert_eq!(batch.partition, 2);
        assert_eq!(batch.offsets, [7, 8, 9]);
        assert_eq!(batch.timestamps, [-7, -8, -9]);
        assert_eq!(batch.key_lengths, [-1, 0, 2]);
        assert_eq!(batch.value_lengths, [2, 0, 2]);
        assert_eq!(batch.data, b"v0k2v2");
        let headers: Vec<(u32, &str, &[u8])> = batch
            .headers
            .iter()
            .map(|h| (h.event, h.name.as_str(), h.value.as_slice()))
            .collect();
        assert_eq!(
            headers,
            [(1, "a", &b"1"[..]), (1, "b", &b""[..]), (2, "c", &b"3"[..])]
        );
        let empty = to_columns(Vec::new()).unwrap();
        assert!(empty.offsets.is_empty() && empty.data.is_empty());
    }

    #[test]
    fn guest_strings_are_cut_to_the_limit() {
        let long = "é".repeat(MAX_GUEST_MESSAGE_BYTES);
        let described = describe_guest_error(&GuestError::InvalidEvent {
            offset: 3,
            message: long.clone(),
        });
        assert!(
            described.len() < MAX_GUEST_MESSAGE_BYTES + 100,
            "{}",
            described.len()
        );
        assert!(described.ends_with(&format!("(cut; {} bytes in all)", long.len())));
        assert!(described.starts_with("invalid event at offset 3: éé"));
        assert_eq!(cut("short"), "short");
        let exact = "x".repeat(MAX_GUEST_MESSAGE_BYTES);
        assert_eq!(cut(&exact), exact.as_str());
    }

    #[test]
    fn an_instance_state_caps_wasi_handles_and_counts_from_zero() {
        let settings = Settings {
            memory_limit_bytes: 64 << 20,
            ..Settings::default()
        };
        let state = HostState::new(&CapturedOutput::new(16), "p@1.0.0", &settings);
        assert_eq!(state.table.max_capacity(), MAX_WASI_HANDLES);
        assert_eq!(state.memory.limit, 64 << 20);
        assert_eq!(state.memory.allowed_for_writes(), 64 << 20);
    }

    #[test]
    fn the_default_contract_is_listed_first() {
        assert_eq!(SUPPORTED_CONTRACTS.first(), Some(&DEFAULT_CONTRACT));
    }

    #[test]
    fn header_check_names_the_problem() {
        let not_wasm = check_header(b"hello world").unwrap_err().to_string();
        assert!(not_wasm.contains("not WebAssembly"), "{not_wasm}");
        let core = check_header(b"\0asm\x01\0\0\0").unwrap_err().to_string();
        assert!(core.contains("core WebAssembly module"), "{core}");
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}

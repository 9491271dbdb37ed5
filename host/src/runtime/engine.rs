//! The engine every plugin runs on: wasmtime configured for epoch
//! interruption, the linker holding what plugins may import (WASI, made
//! inert, and every contract version's interfaces), the thread that ticks
//! the epoch, and loading a component into a [`Plugin`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use super::EPOCH_TICK;
use super::cache::CodeCache;
use super::host::HostState;
use super::validate::{self, Contract, Pre};
use crate::error::{Error, Result};

/// Owns the engine, the linker (what plugins may import) and the compiled-code
/// cache. One per host, shared by every version.
pub struct Runtime {
    pub(super) engine: Engine,
    linker: Linker<HostState>,
    cache: CodeCache,
    stop_ticker: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("cache_dir", &self.cache.dir())
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
    pub(super) pre: Pre,
    /// The contract version the plugin speaks.
    pub contract: Contract,
    /// sha256 of the component bytes.
    pub digest: String,
    /// Whether the machine code came from the on-disk cache.
    pub from_cache: bool,
    /// Time spent compiling or loading the machine code.
    pub load_time: Duration,
}

impl Plugin {
    /// The contract version the plugin speaks; its
    /// [`Contract::state_per_partition`] says whether each input partition
    /// has a shard of the view of its own.
    pub fn contract(&self) -> Contract {
        self.contract
    }
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
        let cache = CodeCache::open(cache_dir)?;
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.parallel_compilation(true);
        let engine = Engine::new(&config)
            .map_err(|e| Error::Internal(format!("creating the wasm engine: {e:#}")))?;
        let linker = linker(&engine)?;
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
            cache,
            stop_ticker,
        })
    }

    /// The compiled-code cache.
    pub fn cache(&self) -> &CodeCache {
        &self.cache
    }

    /// Validates `bytes` as a processor plugin and compiles it (or loads its
    /// compiled code from the cache). Errors say what is wrong with the file.
    pub fn load(&self, bytes: &[u8], digest: &str) -> Result<Plugin> {
        let started = Instant::now();
        let (component, from_cache) = self.compile(bytes, digest)?;
        let (pre, contract) = validate::typecheck(&self.engine, &self.linker, &component)?;
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
        validate::check_header(bytes)?;
        self.cache.get_or_compile(&self.engine, bytes, digest)
    }
}

/// What a plugin may import: WASI 0.2 (made inert by its context) and the
/// interfaces of every contract version.
fn linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| Error::Internal(format!("linking WASI: {e:#}")))?;
    for &contract in Contract::ALL {
        contract.add_to_linker(&mut linker).map_err(|e| {
            Error::Internal(format!("linking the processor contract {contract}: {e:#}"))
        })?;
    }
    Ok(linker)
}

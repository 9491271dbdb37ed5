//! The compiled-code cache: a component's machine code on disk, named by the
//! sha256 of its bytes, so a restart (or a deploy after `kappa plugin check`
//! of the same file) loads machine code instead of running Cranelift again.
//!
//! Each entry is written to a temporary file of its own in the cache
//! directory and renamed into place, so a reader never sees a partial entry,
//! even when two processes (a running server and `kappa plugin check`)
//! compile the same component at once. An entry that cannot be loaded is
//! ignored and the component compiled again; a failure to write one costs a
//! recompile later, nothing more.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::{Error, Result};

/// The directory of compiled components, with counters of its use.
#[derive(Debug)]
pub struct CodeCache {
    dir: PathBuf,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl CodeCache {
    /// The cache in `dir`, created if absent.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(crate::error::io(format!(
            "creating the compiled-code cache {}",
            dir.display()
        )))?;
        Ok(CodeCache {
            dir: dir.to_owned(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or will hold) the machine code of the component
    /// whose sha256 is `digest`.
    pub fn entry_path(&self, digest: &str) -> PathBuf {
        self.dir.join(format!(
            "{digest}-wasmtime-{}.cwasm",
            env!("CARGO_PKG_VERSION")
        ))
    }

    /// How many loads came from the cache, and how many compiled.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// The component in `bytes`, from its cache entry if there is a usable
    /// one, else compiled and stored; says whether it came from the cache.
    pub(super) fn get_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        digest: &str,
    ) -> Result<(Component, bool)> {
        let path = self.entry_path(digest);
        if let Some(component) = load(engine, &path) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((component, true));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let component = Component::new(engine, bytes)
            .map_err(|e| Error::invalid(format!("the file is not a valid component: {e:#}")))?;
        self.store(&path, &component);
        Ok((component, false))
    }

    fn store(&self, path: &Path, component: &Component) {
        // A failure to cache costs a recompile on restart, nothing more.
        let result = component
            .serialize()
            .map_err(|e| format!("{e:#}"))
            .and_then(|code| {
                let mut tmp = tempfile::Builder::new()
                    .suffix(".tmp")
                    .tempfile_in(&self.dir)
                    .map_err(|e| e.to_string())?;
                tmp.write_all(&code).map_err(|e| e.to_string())?;
                tmp.persist(path).map_err(|e| e.error.to_string())?;
                Ok(())
            });
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), "could not cache compiled code: {e}");
        }
    }
}

fn load(engine: &Engine, path: &Path) -> Option<Component> {
    if !path.exists() {
        return None;
    }
    // SAFETY: `deserialize_file` trusts the file to be machine code that
    // this engine produced. The cache directory is private to the host's
    // data directory, each file is named by the sha256 of its source and
    // this host's version, and is written only by `CodeCache::store` (of this
    // process or of `kappa plugin check`, the same code with the same engine
    // configuration) via an atomic rename, so it holds exactly what
    // `serialize` returned. wasmtime additionally checks the engine
    // configuration on load.
    #[allow(
        unsafe_code,
        reason = "deserializing compiled code is unsafe; the cache's provenance is argued above"
    )]
    let loaded = unsafe { Component::deserialize_file(engine, path) };
    match loaded {
        Ok(component) => Some(component),
        Err(e) => {
            tracing::warn!(path = %path.display(), "ignoring unusable compiled-code cache entry: {e:#}");
            None
        }
    }
}

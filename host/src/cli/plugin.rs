//! `kappa plugin examples|new|check`: work with plugin files, locally (no
//! server): write the built-in example components, write a starter project
//! (`crate::scaffold`), and say whether a .wasm file is a valid plugin
//! (`crate::check`).

use std::path::{Path, PathBuf};

use super::{Failure, failed, print_json, usage};

/// `kappa plugin examples DIR`.
pub(super) fn examples(dir: &Path, json: bool) -> Result<(), Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| usage(format!("cannot create {}: {e}", dir.display())))?;
    let mut written = Vec::new();
    for plugin in kappa_plugins::ALL {
        let path = dir.join(format!("{}.wasm", plugin.name));
        std::fs::write(&path, plugin.bytes)
            .map_err(|e| failed(format!("cannot write {}: {e}", path.display())))?;
        written.push(serde_json::json!({
            "name": plugin.name,
            "path": path,
            "bytes": plugin.bytes.len(),
        }));
    }
    if json {
        return print_json(&written);
    }
    for w in &written {
        println!(
            "{}  ({} bytes)",
            w["path"].as_str().unwrap_or_default(),
            w["bytes"]
        );
    }
    Ok(())
}

/// `kappa plugin new NAME --lang LANG [--contract V] [--dir DIR]`.
pub(super) fn new(
    name: &str,
    options: &crate::scaffold::Options,
    dir: Option<PathBuf>,
    json: bool,
) -> Result<(), Failure> {
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    let written = crate::scaffold::new_project(name, options, &dir).map_err(|e| match e {
        crate::error::Error::Invalid(message) => usage(message),
        other => Failure::from(other),
    })?;
    if json {
        return print_json(&written);
    }
    println!(
        "wrote a {} plugin project `{}` (contract {}) in {}:",
        written.lang,
        written.name,
        written.contract,
        written.dir.display()
    );
    for file in &written.files {
        println!("  {}", file.display());
    }
    println!("\nnext steps (see {}):", dir.join("README.md").display());
    for step in written.next_steps() {
        println!("  {step}");
    }
    Ok(())
}

/// `kappa plugin check FILE`: exit 0 valid, 1 invalid.
pub(super) async fn check(
    file: PathBuf,
    data_dir: Option<PathBuf>,
    json: bool,
) -> Result<(), Failure> {
    let bytes =
        std::fs::read(&file).map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
    let path = file.clone();
    let report = tokio::task::spawn_blocking(move || {
        crate::check::check_file(&path, &bytes, data_dir.as_deref())
    })
    .await
    .map_err(|e| failed(format!("the check panicked: {e}")))??;
    if json {
        print_json(&report)?;
    } else {
        print!(
            "{}",
            crate::check::render(&file.display().to_string(), &report)
        );
    }
    if report.valid {
        return Ok(());
    }
    // The text report above lists the reasons; say them once.
    Err(failed(if json {
        format!(
            "{} is not a valid plugin for this host: {}",
            file.display(),
            report.reasons.join("; ")
        )
    } else {
        format!(
            "{} is not a valid plugin for this host (the reasons are above)",
            file.display()
        )
    }))
}

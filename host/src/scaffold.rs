//! `kappa plugin new`: writes a starter project for a processor plugin in
//! Rust, Python, JavaScript or C. Each project holds a copy of the contract
//! (`wit/processor.wit`), a processor that counts the events of each key with
//! comments explaining the contract, a build script or manifest, and a README
//! saying how to build, check and deploy it.
//!
//! The templates live in `host/templates/<lang>/` and are embedded in the
//! binary, so the command works anywhere; `{{name}}` and `{{crate}}` in them
//! are replaced by the plugin name and its underscored form.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// The contract every starter project is written against, embedded.
pub const CONTRACT_WIT: &str = include_str!("../../wit/processor-0.1.0/processor.wit");

/// A language `kappa plugin new` writes projects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// Rust with wit-bindgen, built by cargo for wasm32-wasip2.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
    /// C, with bindings from `wit-bindgen c`, compiled by clang for
    /// wasm32-wasi and linked into a component by wasm-component-ld.
    C,
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::C => "c",
        })
    }
}

/// One file of a project: its path in the project and its template.
type Template = (&'static str, &'static str);

const RUST: &[Template] = &[
    (
        "Cargo.toml",
        include_str!("../templates/rust/Cargo.toml.tmpl"),
    ),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("README.md", include_str!("../templates/rust/README.md")),
    (".gitignore", include_str!("../templates/rust/gitignore")),
];

const PYTHON: &[Template] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    ("build.py", include_str!("../templates/python/build.py")),
    (
        "requirements.txt",
        include_str!("../templates/python/requirements.txt"),
    ),
    ("README.md", include_str!("../templates/python/README.md")),
    (".gitignore", include_str!("../templates/python/gitignore")),
];

const JS: &[Template] = &[
    ("index.js", include_str!("../templates/js/index.js")),
    ("build.mjs", include_str!("../templates/js/build.mjs")),
    (
        "package.json",
        include_str!("../templates/js/package.json.tmpl"),
    ),
    ("README.md", include_str!("../templates/js/README.md")),
    (".gitignore", include_str!("../templates/js/gitignore")),
];

const C: &[Template] = &[
    ("plugin.c", include_str!("../templates/c/plugin.c")),
    ("build.sh", include_str!("../templates/c/build.sh")),
    ("README.md", include_str!("../templates/c/README.md")),
    (".gitignore", include_str!("../templates/c/gitignore")),
];

/// What `new_project` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// The plugin name.
    pub name: String,
    /// The language of the project.
    pub lang: Lang,
    /// The project directory.
    pub dir: PathBuf,
    /// Every file written, under `dir`.
    pub files: Vec<PathBuf>,
    /// Shell commands that build the component, run from `dir`.
    pub build: Vec<String>,
    /// Where the build writes the component, relative to `dir`.
    pub component: String,
}

impl Written {
    /// What to do next, as lines for a person.
    pub fn next_steps(&self) -> Vec<String> {
        let mut steps = vec![format!("cd {}", self.dir.display())];
        steps.extend(self.build.iter().cloned());
        steps.push(format!("kappa plugin check {}", self.component));
        steps.push(format!(
            "kappa deploy {} --name {} --version 0.1.0 --topic TOPIC --wait",
            self.component, self.name
        ));
        steps
    }
}

/// Checks that `name` can name a plugin, its package and its module in every
/// language: a valid processor name that starts with a letter.
pub fn validate_name(name: &str) -> Result<()> {
    crate::registry::validate_name(name)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(Error::invalid(format!(
            "`{name}` cannot name a plugin project: start it with a letter"
        )));
    }
    Ok(())
}

/// The files of a `lang` project named `name`: path in the project, content.
pub fn project_files(name: &str, lang: Lang) -> Vec<(&'static str, String)> {
    let templates = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
        Lang::C => C,
    };
    let crate_name = name.replace('-', "_");
    let mut files: Vec<(&'static str, String)> = templates
        .iter()
        .map(|(path, text)| {
            let text = text
                .replace("{{name}}", name)
                .replace("{{crate}}", &crate_name);
            (*path, text)
        })
        .collect();
    files.push(("wit/processor.wit", CONTRACT_WIT.to_owned()));
    files
}

/// Writes a starter project for the plugin `name` in `lang` into `dir`,
/// which must be absent or empty. Errors are `Invalid` for a bad name or a
/// directory that is in the way, `Storage` when writing fails.
pub fn new_project(name: &str, lang: Lang, dir: &Path) -> Result<Written> {
    validate_name(name)?;
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::invalid(format!(
                    "{} is not empty: refusing to write a project over it \
                     (choose another directory with --dir)",
                    dir.display()
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::invalid(format!(
                "{} cannot be used as the project directory: {e}",
                dir.display()
            )));
        }
    }
    let mut written = Vec::new();
    for (path, text) in project_files(name, lang) {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Storage(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&file, text)
            .map_err(|e| Error::Storage(format!("cannot write {}: {e}", file.display())))?;
        written.push(file);
    }
    let (build, component) = match lang {
        Lang::Rust => (
            vec![
                "rustup target add wasm32-wasip2".to_owned(),
                "cargo build --release --target wasm32-wasip2".to_owned(),
            ],
            format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            ),
        ),
        Lang::Python => (
            vec![
                "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt".to_owned(),
                "python3 build.py".to_owned(),
            ],
            format!("{name}.wasm"),
        ),
        Lang::Js => (
            vec!["npm install".to_owned(), "npm run build".to_owned()],
            format!("{name}.wasm"),
        ),
        Lang::C => (vec!["sh build.sh".to_owned()], format!("{name}.wasm")),
    };
    Ok(Written {
        name: name.to_owned(),
        lang,
        dir: dir.to_owned(),
        files: written,
        build,
        component,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_template_is_filled_in() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let files = project_files("my-counter", lang);
            assert!(files.iter().any(|(p, _)| *p == "wit/processor.wit"));
            assert!(files.iter().any(|(p, _)| *p == "README.md"));
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{lang} {path} has a placeholder left");
            }
        }
        let rust = project_files("my-counter", Lang::Rust);
        let readme = &rust.iter().find(|(p, _)| *p == "README.md").unwrap().1;
        assert!(readme.contains("release/my_counter.wasm"), "{readme}");
    }

    #[test]
    fn refuses_bad_names_and_non_empty_directories() {
        assert!(validate_name("Bad Name").is_err());
        assert!(validate_name("1st").is_err());
        assert!(validate_name("counter_2").is_ok());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = new_project("counter", Lang::Rust, dir.path()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
            "mine"
        );
        let empty = dir.path().join("new");
        let written = new_project("counter", Lang::Js, &empty).unwrap();
        assert!(written.files.iter().all(|f| f.is_file()));
    }
}

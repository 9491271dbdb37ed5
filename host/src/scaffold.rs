//! `kappa plugin new`: writes a starter project for a processor plugin in
//! Rust, Python, JavaScript or C, against contract 0.1.0 or 0.2.0 (the
//! default), the release candidate 0.3.0-rc.1 (never the default; with a
//! reader of the view by key range too), or 0.3.0 (with timers that forget a
//! key quiet for an hour of event time, and a column reader that gives each
//! event's topic). Each project holds a copy of the contract
//! (`wit/processor.wit`), a processor that counts the events of each key with
//! comments explaining the contract, for 0.2.0 a reader of the batch's
//! columns, a build script or manifest, and a README saying how to build,
//! check and deploy it. A Rust project created inside a Cargo workspace joins
//! it (unless `--standalone`).
//!
//! The templates live in `host/templates/<lang>/` (the files of one contract
//! in `<lang>/0.2.0/`) and are embedded in the binary, so the command works
//! anywhere; `{{name}}`, `{{crate}}`, `{{contract}}` and the other
//! placeholders of [`Fill`] are replaced. Everything one language needs is
//! its [`Language`]: adding a language is a `Lang` variant and one of those.
//!
//! Why one file of some 850 lines: most of it is the four languages' tables
//! of templates (data, one per language and contract) and the tests of what
//! they write; the logic itself is the few functions after them.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result, io};

/// The contracts a starter project can be written against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
pub enum Contract {
    /// `kappa:processor@0.1.0`: `process` receives a list of event records.
    #[value(name = "0.1.0")]
    #[serde(rename = "0.1.0")]
    V0_1_0,
    /// `kappa:processor@0.2.0`: `process` receives the batch in columns.
    #[value(name = "0.2.0")]
    #[serde(rename = "0.2.0")]
    V0_2_0,
    /// `kappa:processor@0.3.0-rc.1`: the batch in columns, a state per
    /// partition and range reads; a release candidate, never the default.
    #[value(name = "0.3.0-rc.1")]
    #[serde(rename = "0.3.0-rc.1")]
    V0_3_0Rc1,
    /// `kappa:processor@0.3.0`: 0.3.0-rc.1 with event-time timers and
    /// several input topics.
    #[value(name = "0.3.0")]
    #[serde(rename = "0.3.0")]
    V0_3_0,
}

impl Contract {
    /// The newest contract.
    #[cfg(test)]
    pub const NEWEST: Contract = Contract::V0_2_0;

    /// Its version, `0.1.0`.
    pub fn version(self) -> &'static str {
        match self {
            Contract::V0_1_0 => "0.1.0",
            Contract::V0_2_0 => "0.2.0",
            Contract::V0_3_0Rc1 => "0.3.0-rc.1",
            Contract::V0_3_0 => "0.3.0",
        }
    }

    /// Its WIT file, embedded.
    pub fn wit(self) -> &'static str {
        match self {
            Contract::V0_1_0 => include_str!("../../wit/processor-0.1.0/processor.wit"),
            Contract::V0_2_0 => include_str!("../../wit/processor-0.2.0/processor.wit"),
            Contract::V0_3_0Rc1 => {
                include_str!("../../wit/processor-0.3.0-rc.1/processor.wit")
            }
            Contract::V0_3_0 => include_str!("../../wit/processor-0.3.0/processor.wit"),
        }
    }
}

impl std::fmt::Display for Contract {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.version())
    }
}

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

/// Everything `kappa plugin new` knows of one language.
struct Language {
    /// Files of every project, whatever its contract.
    common: &'static [Template],
    /// Files of a 0.1.0 project.
    v0_1_0: &'static [Template],
    /// Files of a 0.2.0 project (with its column reader).
    v0_2_0: &'static [Template],
    /// Files of a 0.3.0-rc.1 project; empty when the language's starter is
    /// not written for the release candidate.
    v0_3_0_rc1: &'static [Template],
    /// Files of a 0.3.0 project; empty when the language's starter is not
    /// written for it yet.
    v0_3_0: &'static [Template],
    /// The newest contract the language's starter is written for, and the
    /// default one.
    newest: Contract,
    /// The README's line on the column reader of a 0.2.0 project.
    columns_note: &'static str,
    /// The README's line on the range reader of a 0.3.0-rc.1 project.
    range_note: &'static str,
    /// The README's line on the timers and topics of a 0.3.0 project.
    timers_note: &'static str,
    /// Shell commands that build the component, run from the project.
    build: &'static [&'static str],
    /// Where the build writes the component, relative to the project.
    component: &'static str,
    /// Whether the project is a cargo package, which joins an enclosing
    /// Cargo workspace.
    cargo: bool,
}

impl Language {
    fn of(lang: Lang) -> &'static Language {
        match lang {
            Lang::Rust => &RUST,
            Lang::Python => &PYTHON,
            Lang::Js => &JS,
            Lang::C => &C,
        }
    }

    fn files(&self, contract: Contract) -> impl Iterator<Item = &'static Template> {
        let own = match contract {
            Contract::V0_1_0 => self.v0_1_0,
            Contract::V0_2_0 => self.v0_2_0,
            Contract::V0_3_0Rc1 => self.v0_3_0_rc1,
            Contract::V0_3_0 => self.v0_3_0,
        };
        self.common.iter().chain(own)
    }
}

const RUST: Language = Language {
    common: &[
        (
            "Cargo.toml",
            include_str!("../templates/rust/Cargo.toml.tmpl"),
        ),
        ("README.md", include_str!("../templates/rust/README.md")),
        (".gitignore", include_str!("../templates/rust/gitignore")),
    ],
    v0_1_0: &[("src/lib.rs", include_str!("../templates/rust/src/lib.rs"))],
    v0_2_0: &[
        (
            "src/lib.rs",
            include_str!("../templates/rust/0.2.0/src/lib.rs"),
        ),
        // The kappa-guest crate is not published: the project gets a copy.
        (
            "src/columns.rs",
            concat!(
                include_str!("../templates/rust/0.2.0/columns-header.rs"),
                include_str!("../../plugins/rust/kappa-guest/src/columns.rs")
            ),
        ),
    ],
    v0_3_0_rc1: &[
        (
            "src/lib.rs",
            include_str!("../templates/rust/0.3.0-rc.1/src/lib.rs"),
        ),
        (
            "src/columns.rs",
            concat!(
                include_str!("../templates/rust/0.2.0/columns-header.rs"),
                include_str!("../../plugins/rust/kappa-guest/src/columns.rs")
            ),
        ),
        (
            "src/range.rs",
            concat!(
                include_str!("../templates/rust/0.3.0-rc.1/range-header.rs"),
                include_str!("../../plugins/rust/kappa-guest/src/range.rs")
            ),
        ),
    ],
    v0_3_0: &[
        (
            "src/lib.rs",
            include_str!("../templates/rust/0.3.0/src/lib.rs"),
        ),
        (
            "src/columns.rs",
            concat!(
                include_str!("../templates/rust/0.2.0/columns-header.rs"),
                include_str!("../../plugins/rust/kappa-guest/src/columns.rs")
            ),
        ),
        (
            "src/range.rs",
            concat!(
                include_str!("../templates/rust/0.3.0-rc.1/range-header.rs"),
                include_str!("../../plugins/rust/kappa-guest/src/range.rs")
            ),
        ),
    ],
    columns_note: "- `src/columns.rs`: reads the batch's columns event by event (a copy of the\n  \
                   `kappa-guest` crate of the kappa repository).\n",
    range_note: "- `src/range.rs`: reads the view by key range in pages (a copy of the\n  \
                 `kappa-guest` crate of the kappa repository).\n",
    timers_note: "- Timers and topics: `process` sets a timer per key for an hour of event time\n  \
                  after its last event (`timers::set`), `fire` deletes the counts of the keys\n  \
                  whose timers fired, and `event.topic` is the index of the event's topic\n  \
                  among the version's `--topic`s.\n",
    build: &[
        "rustup target add wasm32-wasip2",
        "cargo build --release --target wasm32-wasip2",
    ],
    component: "{{target}}wasm32-wasip2/release/{{crate}}.wasm",
    newest: Contract::V0_2_0,
    cargo: true,
};

const PYTHON: Language = Language {
    common: &[
        ("build.py", include_str!("../templates/python/build.py")),
        (
            "requirements.txt",
            include_str!("../templates/python/requirements.txt"),
        ),
        ("README.md", include_str!("../templates/python/README.md")),
        (".gitignore", include_str!("../templates/python/gitignore")),
    ],
    v0_1_0: &[("app.py", include_str!("../templates/python/app.py"))],
    v0_2_0: &[
        ("app.py", include_str!("../templates/python/0.2.0/app.py")),
        (
            "columns.py",
            include_str!("../templates/python/0.2.0/columns.py"),
        ),
    ],
    v0_3_0_rc1: &[
        (
            "app.py",
            include_str!("../templates/python/0.3.0-rc.1/app.py"),
        ),
        (
            "columns.py",
            include_str!("../templates/python/0.2.0/columns.py"),
        ),
        (
            "ranges.py",
            include_str!("../templates/python/0.3.0-rc.1/ranges.py"),
        ),
    ],
    v0_3_0: &[
        ("app.py", include_str!("../templates/python/0.3.0/app.py")),
        (
            "columns.py",
            include_str!("../templates/python/0.3.0/columns.py"),
        ),
        (
            "ranges.py",
            include_str!("../templates/python/0.3.0-rc.1/ranges.py"),
        ),
    ],
    columns_note: "- `columns.py`: reads the batch's columns event by event.\n",
    range_note: "- `ranges.py`: reads the view by key range in pages.\n",
    timers_note: "- Timers and topics: `process` sets a timer per key for an hour of event time\n  \
                  after its last event (`timers.set`), `fire` deletes the counts of the keys\n  \
                  whose timers fired, and `event.topic` is the index of the event's topic\n  \
                  among the version's `--topic`s.\n",
    build: &[
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt",
        "python3 build.py",
    ],
    component: "{{name}}.wasm",
    newest: Contract::V0_2_0,
    cargo: false,
};

const JS: Language = Language {
    common: &[
        ("build.mjs", include_str!("../templates/js/build.mjs")),
        (
            "package.json",
            include_str!("../templates/js/package.json.tmpl"),
        ),
        ("README.md", include_str!("../templates/js/README.md")),
        (".gitignore", include_str!("../templates/js/gitignore")),
    ],
    v0_1_0: &[("index.js", include_str!("../templates/js/index.js"))],
    v0_2_0: &[
        ("index.js", include_str!("../templates/js/0.2.0/index.js")),
        (
            "columns.js",
            include_str!("../templates/js/0.2.0/columns.js"),
        ),
    ],
    v0_3_0_rc1: &[
        (
            "index.js",
            include_str!("../templates/js/0.3.0-rc.1/index.js"),
        ),
        (
            "columns.js",
            include_str!("../templates/js/0.2.0/columns.js"),
        ),
        (
            "range.js",
            include_str!("../templates/js/0.3.0-rc.1/range.js"),
        ),
    ],
    v0_3_0: &[
        ("index.js", include_str!("../templates/js/0.3.0/index.js")),
        (
            "columns.js",
            include_str!("../templates/js/0.3.0/columns.js"),
        ),
        (
            "range.js",
            include_str!("../templates/js/0.3.0-rc.1/range.js"),
        ),
    ],
    columns_note: "- `columns.js`: reads the batch's columns event by event.\n",
    range_note: "- `range.js`: reads the view by key range in pages.\n",
    timers_note: "- Timers and topics: `process` sets a timer per key for an hour of event time\n  \
                  after its last event (`set` of `kappa:processor/timers`), the export `fire`\n  \
                  deletes the counts of the keys whose timers fired, and `event.topic` is the\n  \
                  index of the event's topic among the version's `--topic`s.\n",
    build: &["npm install", "npm run build"],
    component: "{{name}}.wasm",
    newest: Contract::V0_2_0,
    cargo: false,
};

const C: Language = Language {
    common: &[
        ("build.sh", include_str!("../templates/c/build.sh")),
        ("README.md", include_str!("../templates/c/README.md")),
        (".gitignore", include_str!("../templates/c/gitignore")),
    ],
    v0_1_0: &[("plugin.c", include_str!("../templates/c/plugin.c"))],
    v0_2_0: &[
        ("plugin.c", include_str!("../templates/c/0.2.0/plugin.c")),
        ("columns.h", include_str!("../templates/c/0.2.0/columns.h")),
        ("columns.c", include_str!("../templates/c/0.2.0/columns.c")),
    ],
    v0_3_0_rc1: &[
        (
            "plugin.c",
            include_str!("../templates/c/0.3.0-rc.1/plugin.c"),
        ),
        ("columns.h", include_str!("../templates/c/0.2.0/columns.h")),
        ("columns.c", include_str!("../templates/c/0.2.0/columns.c")),
        ("range.h", include_str!("../templates/c/0.3.0-rc.1/range.h")),
        ("range.c", include_str!("../templates/c/0.3.0-rc.1/range.c")),
    ],
    v0_3_0: &[
        ("plugin.c", include_str!("../templates/c/0.3.0/plugin.c")),
        ("columns.h", include_str!("../templates/c/0.3.0/columns.h")),
        ("columns.c", include_str!("../templates/c/0.3.0/columns.c")),
        ("range.h", include_str!("../templates/c/0.3.0-rc.1/range.h")),
        ("range.c", include_str!("../templates/c/0.3.0-rc.1/range.c")),
    ],
    columns_note: "- `columns.h`, `columns.c`: read the batch's columns event by event.\n",
    range_note: "- `range.h`, `range.c`: read the view by key range in pages.\n",
    timers_note: "- Timers and topics: `exports_processor_process` sets a timer per key for an\n  \
                  hour of event time after its last event (`kappa_processor_timers_set`),\n  \
                  `exports_processor_fire` deletes the counts of the keys whose timers fired,\n  \
                  and `event.topic` is the index of the event's topic among the version's\n  \
                  `--topic`s.\n",
    build: &["sh build.sh"],
    component: "{{name}}.wasm",
    newest: Contract::V0_2_0,
    cargo: false,
};

/// The release profile and `[workspace]` of a Rust project of its own.
const RUST_STANDALONE: &str = include_str!("../templates/rust/standalone.toml");

/// What `kappa plugin new` is asked to write.
#[derive(Debug, Clone, clap::Args)]
pub struct Options {
    /// Language of the project.
    #[arg(long, value_enum)]
    pub lang: Lang,
    /// Contract to write the project against (default: the newest one the
    /// language's starter has: 0.2.0; the release candidate
    /// 0.3.0-rc.1 only when asked for).
    #[arg(long, value_enum)]
    pub contract: Option<Contract>,
    /// Rust: give the project a `[workspace]` of its own even inside a Cargo
    /// workspace (by default it joins the enclosing one).
    #[arg(long)]
    pub standalone: bool,
}

impl Options {
    /// A project in `lang` against the newest contract.
    #[cfg(test)]
    pub fn new(lang: Lang) -> Options {
        Options {
            lang,
            contract: None,
            standalone: false,
        }
    }
}

impl Options {
    /// The contract to write against: the one asked for, if the language's
    /// starter has it, else the language's newest.
    fn contract(&self) -> Result<Contract> {
        let language = Language::of(self.lang);
        let newest = language.newest;
        match self.contract {
            None => Ok(newest),
            Some(Contract::V0_3_0Rc1) if language.v0_3_0_rc1.is_empty() => {
                Err(Error::invalid(format!(
                    "a {} starter is not written against the release candidate 0.3.0-rc.1: \
                     use --contract {newest}",
                    self.lang
                )))
            }
            Some(Contract::V0_3_0Rc1) => Ok(Contract::V0_3_0Rc1),
            Some(Contract::V0_3_0) if language.v0_3_0.is_empty() => Err(Error::invalid(format!(
                "a {} starter is not written against contract 0.3.0 yet: use --contract \
                 {newest} (or write the processor from wit/processor-0.3.0/processor.wit)",
                self.lang
            ))),
            Some(Contract::V0_3_0) => Ok(Contract::V0_3_0),
            Some(c) if c <= newest => Ok(c),
            Some(c) => Err(Error::invalid(format!(
                "a {} starter is written against contract {newest} at most, not {c}: \
                 use --contract {newest}",
                self.lang
            ))),
        }
    }
}

/// The values of the placeholders of the templates.
struct Fill<'a> {
    /// `{{name}}`: the plugin name.
    name: &'a str,
    /// `{{contract}}`: the contract version.
    contract: Contract,
    /// The Cargo workspace the project joins: its root directory, and the
    /// way from the project up to it (`../../`).
    workspace: Option<(PathBuf, String)>,
    language: &'static Language,
}

impl Fill<'_> {
    fn apply(&self, text: &str) -> String {
        let columns = match self.contract {
            Contract::V0_1_0 => String::new(),
            Contract::V0_2_0 => self.language.columns_note.to_owned(),
            Contract::V0_3_0Rc1 => [self.language.columns_note, self.language.range_note].concat(),
            Contract::V0_3_0 => [
                self.language.columns_note,
                self.language.range_note,
                self.language.timers_note,
            ]
            .concat(),
        };
        let (target, standalone) = match &self.workspace {
            None => ("target/".to_owned(), RUST_STANDALONE.to_owned()),
            Some((root, up)) => (
                format!("{up}target/"),
                format!(
                    "# A member of the Cargo workspace of {}: its root Cargo.toml holds the\n\
                     # release profile (see the kappa plugin guide, docs/plugins.md).\n",
                    root.join("Cargo.toml").display()
                ),
            ),
        };
        text.replace("{{standalone}}", &standalone)
            .replace("{{columns}}", &columns)
            .replace("{{target}}", &target)
            .replace("{{contract}}", self.contract.version())
            .replace("{{name}}", self.name)
            .replace("{{crate}}", &self.name.replace('-', "_"))
    }
}

/// What `new_project` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// The plugin name.
    pub name: String,
    /// The language of the project.
    pub lang: Lang,
    /// The contract it is written against.
    pub contract: Contract,
    /// The project directory.
    pub dir: PathBuf,
    /// The root of the Cargo workspace the project joined, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<PathBuf>,
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
        if let Some(root) = &self.workspace {
            steps.push(format!(
                "(the project joined the workspace of {}: its `members` must cover it)",
                root.join("Cargo.toml").display()
            ));
        }
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

/// The files of a project named `name` as `options` ask, outside any Cargo
/// workspace: path in the project, content.
#[cfg(test)]
pub fn project_files(name: &str, options: &Options) -> Vec<(&'static str, String)> {
    let fill = Fill {
        name,
        contract: options
            .contract()
            .expect("tests ask for contracts the starter has"),
        workspace: None,
        language: Language::of(options.lang),
    };
    files(&fill)
}

fn files(fill: &Fill) -> Vec<(&'static str, String)> {
    let mut files: Vec<(&'static str, String)> = fill
        .language
        .files(fill.contract)
        .map(|(path, text)| (*path, fill.apply(text)))
        .collect();
    files.push(("wit/processor.wit", fill.contract.wit().to_owned()));
    files
}

/// The Cargo workspace `dir` would be a member of: the nearest directory
/// above it whose Cargo.toml has a `[workspace]` table, and the way up
/// from `dir` to it.
fn enclosing_workspace(dir: &Path) -> Option<(PathBuf, String)> {
    let dir = std::path::absolute(dir).ok()?;
    let mut up = String::new();
    for parent in dir.ancestors().skip(1) {
        up.push_str("../");
        let manifest = parent.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if text.lines().any(|l| l.trim() == "[workspace]") {
            return Some((parent.to_owned(), up));
        }
    }
    None
}

/// Refuses a `dir` that exists and is not empty.
fn check_empty(dir: &Path) -> Result<()> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => Err(Error::invalid(format!(
            "{} is not empty: refusing to write a project over it \
             (choose another directory with --dir)",
            dir.display()
        ))),
        Ok(false) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::invalid(format!(
            "{} cannot be used as the project directory: {e}",
            dir.display()
        ))),
    }
}

/// Writes a starter project for the plugin `name` as `options` ask into
/// `dir`, which must be absent or empty. Errors are `Invalid` for a bad name
/// or a directory that is in the way, `Storage` when writing fails.
pub fn new_project(name: &str, options: &Options, dir: &Path) -> Result<Written> {
    validate_name(name)?;
    check_empty(dir)?;
    let contract = options.contract()?;
    let language = Language::of(options.lang);
    let workspace = if language.cargo && !options.standalone {
        enclosing_workspace(dir)
    } else {
        None
    };
    let fill = Fill {
        name,
        contract,
        workspace,
        language,
    };
    let mut written = Vec::new();
    for (path, text) in files(&fill) {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("cannot create {}", parent.display())))?;
        }
        std::fs::write(&file, text).map_err(io(format!("cannot write {}", file.display())))?;
        written.push(file);
    }
    let component = fill.apply(language.component);
    Ok(Written {
        name: name.to_owned(),
        lang: options.lang,
        contract,
        dir: dir.to_owned(),
        workspace: fill.workspace.map(|(root, _)| root),
        files: written,
        build: language.build.iter().map(|s| (*s).to_owned()).collect(),
        component,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    /// Whether `text` holds a `{{word}}` (Rust's `{{` of a macro body is not one).
    fn has_placeholder(text: &str) -> bool {
        text.split("{{").skip(1).any(|rest| {
            rest.split_once("}}").is_some_and(|(word, _)| {
                !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            })
        })
    }

    #[test]
    fn every_template_is_filled_in() {
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            for contract in [
                Contract::V0_1_0,
                Contract::V0_2_0,
                Contract::V0_3_0Rc1,
                Contract::V0_3_0,
            ] {
                let candidate = contract >= Contract::V0_3_0Rc1;
                if Language::of(lang).files(contract).count() == Language::of(lang).common.len()
                    || (!candidate && contract > Language::of(lang).newest)
                {
                    continue;
                }
                let options = Options {
                    contract: Some(contract),
                    ..Options::new(lang)
                };
                let files = project_files("my-counter", &options);
                let wit = &files
                    .iter()
                    .find(|(p, _)| *p == "wit/processor.wit")
                    .unwrap()
                    .1;
                assert!(wit.contains(&format!("package kappa:processor@{contract};")));
                let readme = &files.iter().find(|(p, _)| *p == "README.md").unwrap().1;
                assert!(readme.contains(&format!("kappa:processor@{contract}")));
                for (path, text) in &files {
                    assert!(
                        !has_placeholder(text),
                        "{lang} {path} has a placeholder left"
                    );
                    if contract != Contract::V0_1_0 {
                        for old in ["processor@0.1.0", "logging@0.1.0", "view@0.1.0"] {
                            assert!(!text.contains(old), "{lang} {path} names {old}");
                        }
                    }
                    if candidate {
                        for old in ["logging@0.2.0", "view@0.2.0"] {
                            assert!(!text.contains(old), "{lang} {path} names {old}");
                        }
                    }
                }
            }
        }
        let rust = project_files("my-counter", &Options::new(Lang::Rust));
        let columns = &rust.iter().find(|(p, _)| *p == "src/columns.rs").unwrap().1;
        assert!(columns.contains("macro_rules! columns"));
        let readme = &rust.iter().find(|(p, _)| *p == "README.md").unwrap().1;
        assert!(readme.contains("release/my_counter.wasm"), "{readme}");
        assert!(!readme.contains("src/range.rs"), "{readme}");
        let candidate = Options {
            contract: Some(Contract::V0_3_0Rc1),
            ..Options::new(Lang::Rust)
        };
        let files = project_files("my-counter", &candidate);
        let range = &files.iter().find(|(p, _)| *p == "src/range.rs").unwrap().1;
        assert!(range.contains("pub fn prefix_end"));
        let readme = &files.iter().find(|(p, _)| *p == "README.md").unwrap().1;
        assert!(readme.contains("src/range.rs") && readme.contains("src/columns.rs"));
        let release = Options {
            contract: Some(Contract::V0_3_0),
            ..Options::new(Lang::Rust)
        };
        let files = project_files("my-counter", &release);
        let lib = &files.iter().find(|(p, _)| *p == "src/lib.rs").unwrap().1;
        assert!(lib.contains("fn fire(") && lib.contains("columns_topics!"));
    }

    /// Every language has a 0.3.0 starter: a `fire` export, timers set per
    /// event, and a column reader that gives each event's topic.
    #[test]
    fn every_language_writes_a_starter_of_0_3_0() {
        for (lang, main, set, fire, reader, topic) in [
            (
                Lang::Python,
                "app.py",
                "timers.set(event.index, key,",
                "def fire(",
                "columns.py",
                "topic: int",
            ),
            (
                Lang::Js,
                "index.js",
                "set(event.index, key,",
                "export function fire(",
                "columns.js",
                "topic: topics.length === 0 ? 0 : topics[i]",
            ),
            (
                Lang::C,
                "plugin.c",
                "kappa_processor_timers_set(event.index, &key, at)",
                "bool exports_processor_fire(",
                "columns.c",
                "event->topic =",
            ),
        ] {
            let options = Options {
                contract: Some(Contract::V0_3_0),
                ..Options::new(lang)
            };
            assert_eq!(options.contract().unwrap(), Contract::V0_3_0);
            let files = project_files("my-counter", &options);
            let file = |name: &str| &files.iter().find(|(p, _)| *p == name).unwrap().1;
            assert!(
                file(main).contains(set) && file(main).contains(fire),
                "{lang}"
            );
            assert!(file(reader).contains(topic), "{lang}");
            assert!(file("README.md").contains("- Timers and topics:"), "{lang}");
        }
    }

    /// The Python and JavaScript example plugins read the batch with copies
    /// of the starters' column readers (their build tools do not follow
    /// symbolic links): a change to one must reach the other.
    #[test]
    fn the_example_plugins_read_columns_with_the_starters_readers() {
        assert_eq!(
            include_str!("../../plugins/python/payments-v2/columns.py"),
            include_str!("../templates/python/0.2.0/columns.py"),
            "copy host/templates/python/0.2.0/columns.py to plugins/python/payments-v2/"
        );
        assert_eq!(
            include_str!("../../plugins/js/payments-v2/columns.js"),
            include_str!("../templates/js/0.2.0/columns.js"),
            "copy host/templates/js/0.2.0/columns.js to plugins/js/payments-v2/"
        );
        assert_eq!(
            include_str!("../../plugins/python/payments-v3/ranges.py"),
            include_str!("../templates/python/0.3.0-rc.1/ranges.py"),
            "copy host/templates/python/0.3.0-rc.1/ranges.py to plugins/python/payments-v3/"
        );
        assert_eq!(
            include_str!("../../plugins/js/payments-v3/range.js"),
            include_str!("../templates/js/0.3.0-rc.1/range.js"),
            "copy host/templates/js/0.3.0-rc.1/range.js to plugins/js/payments-v3/"
        );
    }

    #[test]
    fn every_starter_has_the_release_candidate_and_the_default_is_the_newest() {
        // The release candidate: in every language, never the default.
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C] {
            let options = Options {
                contract: Some(Contract::V0_3_0Rc1),
                ..Options::new(lang)
            };
            assert_eq!(options.contract().unwrap(), Contract::V0_3_0Rc1);
        }
        // The default is the newest released contract, in every language.
        assert_eq!(Options::new(Lang::C).contract().unwrap(), Contract::V0_2_0);
        assert_eq!(
            Options::new(Lang::Rust).contract().unwrap(),
            Contract::V0_2_0
        );
        assert_eq!(Options::new(Lang::Js).contract().unwrap(), Contract::NEWEST);
    }

    #[test]
    fn refuses_bad_names_and_non_empty_directories() {
        assert!(validate_name("Bad Name").is_err());
        assert!(validate_name("1st").is_err());
        assert!(validate_name("counter_2").is_ok());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let err = new_project("counter", &Options::new(Lang::Rust), dir.path()).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keep.txt")).unwrap(),
            "mine"
        );
        let empty = dir.path().join("new");
        let written = new_project("counter", &Options::new(Lang::Js), &empty).unwrap();
        assert!(written.files.iter().all(|f| f.is_file()));
    }
}

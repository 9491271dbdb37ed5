//! The report: figures with their ratios, grouped in sections, printed as
//! each section completes and written as JSON on request.

/// One figure of a section.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: String,
    /// Ratio to the section's baseline (same unit, same run), when it has one.
    pub ratio: Option<f64>,
}

/// The figures of one section, the first being its baseline.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Section {
    /// 1 to 7.
    pub id: u8,
    /// What it measures.
    pub title: String,
    /// What the ratios mean.
    pub ratio_meaning: String,
    /// The figures.
    pub figures: Vec<Figure>,
    /// Facts checked and remarks (views identical, sizes, ...).
    pub notes: Vec<String>,
}

impl Section {
    pub(crate) fn new(id: u8, title: &str, ratio_meaning: &str) -> Self {
        Section {
            id,
            title: title.into(),
            ratio_meaning: ratio_meaning.into(),
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn figure(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: &str,
        ratio: Option<f64>,
    ) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit: unit.into(),
            ratio,
        });
    }

    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    pub(crate) fn print(&self) {
        println!();
        println!("== {}. {} ==", self.id, self.title);
        println!("   ratio: {}", self.ratio_meaning);
        let width = self.figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
        for f in &self.figures {
            let ratio = f.ratio.map(|r| format!("{r:>8.3}")).unwrap_or_default();
            println!(
                "   {:<width$}  {:>14} {:<9} {}",
                f.name,
                fmt_value(f.value),
                f.unit,
                ratio
            );
        }
        for n in &self.notes {
            println!("   - {n}");
        }
    }
}

fn fmt_value(v: f64) -> String {
    if v >= 1000.0 {
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The whole report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Machine description.
    pub machine: String,
    /// Mode and sizes.
    pub setup: String,
    /// The sections run.
    pub sections: Vec<Section>,
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or("unknown memory".into(), |kb| {
            format!("{:.1} GiB", kb / 1024.0 / 1024.0)
        });
    format!("machine: {cores} cores, {cpu}, {mem}")
}

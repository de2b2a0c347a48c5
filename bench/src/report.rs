//! The results: figures per scenario and targets as ratios, rendered as a Markdown table
//! and as JSON.

use serde_json::{Value, json};

use crate::stats::Machine;

/// One measured case of a scenario, with its figures (name, value, unit).
#[derive(Debug, Clone)]
pub struct Row {
    /// The scenario (`read`, `query`, ...).
    pub scenario: &'static str,
    /// What was measured.
    pub case: String,
    /// Its figures.
    pub figures: Vec<(&'static str, f64, &'static str)>,
}

/// A target of the issue, as a ratio measured in this run.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target, in words.
    pub name: String,
    /// The measured ratio.
    pub ratio: f64,
    /// The bound.
    pub limit: f64,
    /// Whether the ratio must be at least (else at most) the bound.
    pub at_least: bool,
    /// How the ratio was formed.
    pub how: String,
}

impl Target {
    /// Whether the target is met.
    pub fn met(&self) -> bool {
        if self.at_least {
            self.ratio >= self.limit
        } else {
            self.ratio <= self.limit
        }
    }
}

/// Everything a run measured.
#[derive(Debug, Default)]
pub struct Report {
    /// Measured cases.
    pub rows: Vec<Row>,
    /// Targets.
    pub targets: Vec<Target>,
    /// What was scaled down or left out, and why.
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a row.
    pub fn row(
        &mut self,
        scenario: &'static str,
        case: impl Into<String>,
        figures: Vec<(&'static str, f64, &'static str)>,
    ) {
        self.rows.push(Row {
            scenario,
            case: case.into(),
            figures,
        });
    }

    /// Adds a target.
    pub fn target(
        &mut self,
        name: impl Into<String>,
        ratio: f64,
        limit: f64,
        at_least: bool,
        how: impl Into<String>,
    ) {
        self.targets.push(Target {
            name: name.into(),
            ratio,
            limit,
            at_least,
            how: how.into(),
        });
    }

    /// Adds a note.
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The Markdown form.
    pub fn markdown(&self, machine: &Machine, mode: &str, seconds: f64) -> String {
        let mut out = format!(
            "Machine: {} CPUs ({}), {} MiB memory. Mode: {mode}; the run took {seconds:.0} s.\n\n",
            machine.cpus, machine.cpu_model, machine.memory_mib
        );
        out.push_str("| scenario | case | figures |\n|---|---|---|\n");
        for row in &self.rows {
            let figures: Vec<String> = row
                .figures
                .iter()
                .map(|(name, value, unit)| {
                    format!("{name} {} {unit}", number(*value))
                        .trim_end()
                        .to_owned()
                })
                .collect();
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                row.scenario,
                row.case,
                figures.join(" · ")
            ));
        }
        out.push_str("\n| target | measured | bound | met | ratio of |\n|---|---|---|---|---|\n");
        for target in &self.targets {
            out.push_str(&format!(
                "| {} | {} | {} {} | {} | {} |\n",
                target.name,
                number(target.ratio),
                if target.at_least { "≥" } else { "≤" },
                number(target.limit),
                if target.met() { "yes" } else { "**no**" },
                target.how
            ));
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for note in &self.notes {
                out.push_str(&format!("- {note}\n"));
            }
        }
        out
    }

    /// The JSON form.
    pub fn json(&self, machine: &Machine, mode: &str, seconds: f64) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|row| {
                let figures: serde_json::Map<String, Value> = row
                    .figures
                    .iter()
                    .map(|(name, value, unit)| {
                        (name.to_string(), json!({"value": value, "unit": unit}))
                    })
                    .collect();
                json!({"scenario": row.scenario, "case": row.case, "figures": figures})
            })
            .collect();
        let targets: Vec<Value> = self
            .targets
            .iter()
            .map(|t| {
                json!({"target": t.name, "ratio": t.ratio, "bound": t.limit,
                    "at_least": t.at_least, "met": t.met(), "ratio_of": t.how})
            })
            .collect();
        json!({
            "machine": {"cpus": machine.cpus, "cpu_model": machine.cpu_model,
                "memory_mib": machine.memory_mib},
            "mode": mode,
            "seconds": seconds,
            "results": rows,
            "targets": targets,
            "notes": self.notes,
        })
    }
}

/// A number with a precision that suits its size.
fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rows_targets_and_notes() {
        let mut report = Report::default();
        report.row("read", "ceiling", vec![("rate", 1234.4, "req/s")]);
        report.target("read rate", 0.5, 0.7, true, "a / b");
        report.note("scaled down");
        let machine = Machine {
            cpus: 2,
            cpu_model: "cpu".into(),
            memory_mib: 1024,
        };
        let text = report.markdown(&machine, "quick", 1.0);
        assert!(
            text.contains("| read | ceiling | rate 1234 req/s |"),
            "{text}"
        );
        assert!(text.contains("| **no** |"), "{text}");
        assert!(text.contains("- scaled down"), "{text}");
        let json = report.json(&machine, "quick", 1.0);
        assert_eq!(json["targets"][0]["met"], false);
        assert_eq!(json["results"][0]["figures"]["rate"]["unit"], "req/s");
    }
}

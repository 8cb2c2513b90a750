//! The results table: each liaison figure beside its baselines, as ratios.

use std::fmt::Write as _;

/// One measured figure.
#[derive(Debug, Clone)]
pub(crate) struct Figure {
    pub(crate) name: String,
    pub(crate) value: f64,
}

/// A benchmark: liaison's figure and the baselines measured in the same run.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) bench: String,
    pub(crate) unit: &'static str,
    pub(crate) subject: Figure,
    pub(crate) baselines: Vec<Figure>,
}

fn human(value: f64, unit: &str) -> String {
    match unit {
        "MiB/s" => format!("{value:.0} {unit}"),
        "µs" => format!("{value:.1} {unit}"),
        _ if value >= 1e6 => format!("{:.2} M{unit}", value / 1e6),
        _ if value >= 1e3 => format!("{:.1} k{unit}", value / 1e3),
        _ => format!("{value:.0} {unit}"),
    }
}

/// Renders the rows as a Markdown section.
pub(crate) fn markdown(rows: &[Row], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{header}\n");
    let _ = writeln!(
        out,
        "| benchmark | liaison | baseline | baseline figure | liaison / baseline |"
    );
    let _ = writeln!(out, "| --- | ---: | --- | ---: | ---: |");
    for row in rows {
        for (i, base) in row.baselines.iter().enumerate() {
            let (bench, subject) = if i == 0 {
                (
                    row.bench.as_str(),
                    format!(
                        "{} ({})",
                        human(row.subject.value, row.unit),
                        row.subject.name
                    ),
                )
            } else {
                ("", String::new())
            };
            let _ = writeln!(
                out,
                "| {bench} | {subject} | {} | {} | {:.2}x |",
                base.name,
                human(base.value, row.unit),
                row.subject.value / base.value
            );
        }
    }
    out
}

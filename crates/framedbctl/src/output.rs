//! Printing answers: JSON and YAML print the API's data as it came (field order kept),
//! tables show the columns people read, with `-` for what is absent.

use std::io::Write;

use comfy_table::Table;
use serde_json::Value;

use crate::cli::Format;
use crate::error::Error;

/// The columns of an instance list, and the field each shows.
const INSTANCE_COLUMNS: [(&str, &str); 8] = [
    ("ID", "framedb_id"),
    ("CLUSTER", "cluster_id"),
    ("NODE", "node_id"),
    ("PORT", "port"),
    ("STATUS", "status"),
    ("STORAGE", "storage_size"),
    ("POLICY", "deletion_policy"),
    ("CREATED", "created_at"),
];

/// The rows of one instance's table, and the field each shows.
const INSTANCE_FIELDS: [(&str, &str); 14] = [
    ("id", "framedb_id"),
    ("cluster", "cluster_id"),
    ("node", "node_id"),
    ("port", "port"),
    ("status", "status"),
    ("reason", "status_reason"),
    ("public url", "public_url"),
    ("local url", "local_url"),
    ("storage size", "storage_size"),
    ("deletion policy", "deletion_policy"),
    ("resources", "resources"),
    ("metadata", "metadata"),
    ("created", "created_at"),
    ("updated", "updated_at"),
];

/// A reason longer than this is cut in list tables, to keep a row a line (`get` shows it
/// whole).
const REASON_CHARS: usize = 60;

/// Writes documents in the chosen format to stdout.
pub struct Printer {
    format: Format,
}

impl Printer {
    /// A printer of `format`.
    pub fn new(format: Format) -> Self {
        Self { format }
    }

    /// Whether it prints tables (for people) rather than data.
    pub fn is_table(&self) -> bool {
        self.format == Format::Table
    }

    /// Prints `data` as JSON or YAML, or, as a table, what `table` makes of it.
    ///
    /// # Errors
    /// [`Error::Output`] when stdout cannot be written or YAML cannot be rendered.
    pub fn print(&self, data: &Value, table: impl FnOnce(&Value) -> String) -> Result<(), Error> {
        let text = match self.format {
            Format::Json => {
                serde_json::to_string_pretty(data).map_err(|e| Error::Output(Box::new(e)))?
            }
            Format::Yaml => {
                serde_saphyr::to_string(data).map_err(|e| Error::Output(Box::new(e)))?
            }
            Format::Table => table(data),
        };
        line(&text)
    }
}

/// Writes `text` and a line end to stdout.
///
/// # Errors
/// [`Error::Output`] when stdout cannot be written.
pub fn line(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.trim_end_matches('\n').as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| Error::Output(Box::new(e)))
}

/// A list of instances, one a row (a `REASON` column when one of them has a reason).
pub fn instances(list: &Value) -> String {
    let rows = list.as_array().map(Vec::as_slice).unwrap_or_default();
    if rows.is_empty() {
        return "no instances".to_owned();
    }
    let with_reason = rows.iter().any(|row| !row["status_reason"].is_null());
    let mut header: Vec<&str> = INSTANCE_COLUMNS.iter().map(|(title, _)| *title).collect();
    if with_reason {
        header.push("REASON");
    }
    let body = rows.iter().map(|row| {
        let mut cells: Vec<String> = INSTANCE_COLUMNS
            .iter()
            .map(|(_, field)| cell(&row[field]))
            .collect();
        if with_reason {
            cells.push(shortened(cell(&row["status_reason"]), REASON_CHARS));
        }
        cells
    });
    columns(Some(header), body)
}

/// One instance, a field a row.
pub fn instance(instance: &Value) -> String {
    fields(
        INSTANCE_FIELDS
            .iter()
            .filter(|(_, field)| *field != "status_reason" || !instance[field].is_null())
            .map(|(title, field)| (*title, cell(&instance[field]))),
    )
}

/// Rows of a title and a value.
pub fn fields<'a>(rows: impl IntoIterator<Item = (&'a str, String)>) -> String {
    columns(
        None::<Vec<String>>,
        rows.into_iter()
            .map(|(title, value)| vec![title.to_owned(), value]),
    )
}

/// A table of `rows` under `header`: plain columns, as kubectl prints them.
pub fn columns<H: ToString>(
    header: Option<Vec<H>>,
    rows: impl IntoIterator<Item = Vec<String>>,
) -> String {
    let mut table = Table::new();
    table.load_style(comfy_table::presets::NOTHING);
    if let Some(header) = header {
        table.set_header(header.iter().map(ToString::to_string));
    }
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    // Without the padding at the ends of lines.
    table
        .lines()
        .map(|line| line.trim_end().to_owned())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text`, cut to `max` characters with an ellipsis.
fn shortened(text: String, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((end, _)) if text.chars().count() > max => format!("{}…", &text[..end]),
        _ => text,
    }
}

/// A value as a cell: strings as they are, `-` for nothing, anything else as compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_is_plain_columns_under_a_header() {
        let list = json!([
            {"framedb_id": "a", "cluster_id": "c", "node_id": "n", "port": 30900,
             "status": "Running", "storage_size": "2Gi", "deletion_policy": "Delete",
             "created_at": "2026-12-02T00:00:00.000Z"},
            {"framedb_id": "bb", "cluster_id": "c", "node_id": "n", "port": null,
             "status": "Pending", "status_reason": "0/2 nodes are available",
             "storage_size": "1Gi", "deletion_policy": "Retain",
             "created_at": "2026-12-02T00:00:01.000Z"},
        ]);
        let text = instances(&list);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("ID   CLUSTER"), "{text}");
        assert!(lines[0].ends_with("REASON"), "{text}");
        assert!(lines[1].starts_with("a    c"), "{text}");
        assert!(lines[2].contains(" -   "), "no port: {text}");
        assert!(lines[2].ends_with("0/2 nodes are available"), "{text}");
        assert_eq!(instances(&json!([])), "no instances");
        assert_eq!(shortened("abcdef".into(), 4), "abc…");
        assert_eq!(shortened("abcd".into(), 4), "abcd");
    }

    #[test]
    fn one_instance_is_a_field_a_row_and_a_reason_only_when_there_is_one() {
        let running = json!({"framedb_id": "a", "status": "Running", "metadata": {"team": "x"}});
        let text = instance(&running);
        assert!(
            text.lines()
                .any(|l| l == r#"metadata          {"team":"x"}"#),
            "{text}"
        );
        assert!(!text.contains("reason"), "{text}");
        let pending = json!({"framedb_id": "a", "status": "Pending", "status_reason": "why"});
        assert!(instance(&pending).lines().any(|l| l.ends_with("why")));
    }
}

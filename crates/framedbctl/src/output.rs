//! Printing answers: JSON and YAML print the API's data as it came (field order kept),
//! tables show the columns people read, with `-` for what is absent. Nothing the server
//! sends reaches the terminal raw: control characters are escaped ([`escaped`]).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{ErrorKind, Write};

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
            // serde_json escapes C0 but leaves DEL and C1 raw, as JSON allows: they can only
            // stand in strings, where `\u00XX` is the same text.
            Format::Json => json_escaped(
                &serde_json::to_string_pretty(data).map_err(|e| Error::Output(Box::new(e)))?,
            ),
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
/// [`Error::StdoutClosed`] when its reader has gone; [`Error::Output`] when stdout cannot
/// be written otherwise.
pub fn line(text: &str) -> Result<(), Error> {
    write_line(&mut std::io::stdout().lock(), text)
}

fn write_line(out: &mut impl Write, text: &str) -> Result<(), Error> {
    out.write_all(text.trim_end_matches('\n').as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            // Rust ignores SIGPIPE, so a closed pipe is this error rather than a signal.
            ErrorKind::BrokenPipe => Error::StdoutClosed,
            _ => Error::Output(Box::new(e)),
        })
}

/// `text` with its control characters (C0, DEL, C1: escape sequences, carriage returns,
/// line ends) written as `\u{1b}`, so that a server's text cannot move the cursor, clear
/// the screen or forge lines.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut safe = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            let _ = write!(safe, "\\u{{{:x}}}", u32::from(c));
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

/// JSON text with the control characters serde_json leaves raw (DEL, C1) as `\u00XX`.
fn json_escaped(json: &str) -> String {
    let mut safe = String::with_capacity(json.len());
    for c in json.chars() {
        // C0 stands escaped already in strings, and outside them only as line ends.
        if c.is_control() && c >= '\u{7f}' {
            let _ = write!(safe, "\\u{:04x}", u32::from(c));
        } else {
            safe.push(c);
        }
    }
    safe
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

/// A value as a cell: strings as they are, `-` for nothing, anything else as compact JSON;
/// control characters escaped.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => escaped(text).into_owned(),
        Value::Null => "-".to_owned(),
        other => escaped(&other.to_string()).into_owned(),
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
    fn control_characters_from_the_server_are_escaped() {
        assert_eq!(escaped("plain: é ✓"), "plain: é ✓");
        assert_eq!(
            escaped("a\u{1b}[2Jb\r\n\u{7f}\u{9b}"),
            r"a\u{1b}[2Jb\u{d}\u{a}\u{7f}\u{9b}"
        );
        assert_eq!(cell(&json!("\u{1b}]0;x\u{7}")), r"\u{1b}]0;x\u{7}");
        let object = cell(&json!({"k\u{1b}": "\u{1b}[2J\u{9b}"}));
        assert!(!object.chars().any(char::is_control), "{object}");
        let json =
            json_escaped(&serde_json::to_string(&json!({"k": "\u{1b}\u{7f}\u{9b}"})).unwrap());
        assert_eq!(json, r#"{"k":"\u001b\u007f\u009b"}"#);
        assert_eq!(json_escaped("{\n  \"k\": 1\n}"), "{\n  \"k\": 1\n}");
        assert_eq!(
            serde_json::from_str::<Value>(&json).unwrap(),
            json!({"k": "\u{1b}\u{7f}\u{9b}"})
        );
        // YAML: its serializer escapes them itself (in double quotes).
        let yaml = serde_saphyr::to_string(&json!({"k": "\u{1b}[2J\u{7f}\u{9b}\r"})).unwrap();
        assert!(
            !yaml.chars().any(|c| c.is_control() && c != '\n'),
            "{yaml:?}"
        );
    }

    #[test]
    fn a_closed_stdout_is_not_a_failure() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        assert!(matches!(
            write_line(&mut Closed, "x"),
            Err(Error::StdoutClosed)
        ));
        let mut out = Vec::new();
        write_line(&mut out, "x\n").unwrap();
        assert_eq!(out, b"x\n");
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

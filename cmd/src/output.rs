//! Printing results: tables (comfy-table) for people, JSON for scripts.

use std::io::{self, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};

/// Prints a table with a header row.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> io::Result<()> {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(header.iter().copied());
    for row in rows {
        t.add_row(row);
    }
    writeln!(io::stdout().lock(), "{t}")
}

pub fn json(value: &serde_json::Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    writeln!(io::stdout().lock(), "{text}")
}

pub fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

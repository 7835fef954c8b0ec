//! Printing results: tables (comfy-table) for people, JSON for scripts, as the shell's views
//! render them.

use std::io::{self, Write};

use kvctl_shell::view;

/// Prints a table with a header row.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> io::Result<()> {
    text(&view::table(header, rows))
}

pub fn json(value: &serde_json::Value) -> io::Result<()> {
    text(&view::json_text(value))
}

/// Prints `text` and a newline.
pub fn text(text: &str) -> io::Result<()> {
    writeln!(io::stdout().lock(), "{text}")
}

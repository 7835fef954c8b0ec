//! A shell session: the consistency level and output format in force, the causal contexts
//! remembered per key, and the execution of a command with the client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use kvctl::client::home;
use kvctl::client::{Client, ClientError};
use kvctl::wire::proto::Consistency;

use crate::command::{Command, Format, ParseError, Spec, SPECS};
use crate::view::{self, RingView, StatusView};
use crate::words::quote;

/// Most keys whose context a session remembers; past it the least recently used is forgotten
/// (a later put of that key then writes without context, as `kvctl put` does).
pub const CONTEXTS_MAX: usize = 10_000;

/// Why a line failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShellError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("interrupted")]
    Interrupted,
}

impl ShellError {
    /// The message on one line: a multi-line message's lines joined with spaces.
    pub fn one_line(&self) -> String {
        one_line(&self.to_string())
    }
}

/// `message`'s lines, trimmed, joined with spaces.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// What a command printed: `text` for standard output, `notes` for standard error (what the
/// shell tells the person, apart from the result).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    pub notes: Vec<String>,
}

impl Reply {
    fn text(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            notes: Vec::new(),
        }
    }
}

/// The context of the last get (or put) of a key in this session.
#[derive(Debug, Clone)]
struct Remembered {
    context: String,
    /// The values the get saw (1 after a put).
    siblings: usize,
    /// When it was last used, in session commands: the least recent is forgotten first.
    used: u64,
}

pub struct Session {
    client: Client,
    home: PathBuf,
    node: Option<SocketAddr>,
    level: Consistency,
    format: Format,
    contexts: HashMap<String, Remembered>,
    commands: u64,
    node_pid: fn(&Path) -> Option<u32>,
}

impl Session {
    /// A session of the cluster in `home`, coordinating through `node` if given.
    pub fn new(
        client: Client,
        home: PathBuf,
        node: Option<SocketAddr>,
        level: Consistency,
        node_pid: fn(&Path) -> Option<u32>,
    ) -> Session {
        Session {
            client,
            home,
            node,
            level,
            format: Format::Table,
            contexts: HashMap::new(),
            commands: 0,
            node_pid,
        }
    }

    pub fn level(&self) -> Consistency {
        self.level
    }

    /// Closes the client's connections.
    pub async fn close(&self) {
        self.client.close().await;
    }

    /// Runs one command (not `exit`, which the caller handles).
    pub async fn execute(&mut self, command: &Command) -> Result<Reply, ShellError> {
        self.commands += 1;
        match command {
            Command::Get { key } => self.get(key).await,
            Command::Put { key, value, fresh } => self.put(key, value, *fresh).await,
            Command::Delete { key } => self.delete(key).await,
            Command::Ring { key } => self.ring(key.as_deref()).await,
            Command::Status => self.status().await,
            Command::Consistency { level: None } => Ok(Reply::text(format!(
                "Current consistency level is {}.",
                self.level
            ))),
            Command::Consistency { level: Some(level) } => {
                self.level = *level;
                Ok(Reply::text(format!("Consistency level set to {level}.")))
            }
            Command::Output { format: None } => Ok(Reply::text(format!(
                "Current output format is {}.",
                self.format.name()
            ))),
            Command::Output {
                format: Some(format),
            } => {
                self.format = *format;
                Ok(Reply::text(format!(
                    "Output format set to {}.",
                    format.name()
                )))
            }
            Command::Help { topic } => Ok(Reply::text(help(*topic))),
            Command::Exit => Ok(Reply::default()),
        }
    }

    fn remember(&mut self, key: &str, context: String, siblings: usize) {
        if context.is_empty() {
            self.contexts.remove(key);
            return;
        }
        if self.contexts.len() >= CONTEXTS_MAX && !self.contexts.contains_key(key) {
            let oldest = self
                .contexts
                .iter()
                .min_by_key(|(_, r)| r.used)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                self.contexts.remove(&oldest);
            }
        }
        self.contexts.insert(
            key.to_string(),
            Remembered {
                context,
                siblings,
                used: self.commands,
            },
        );
    }

    async fn get(&mut self, key: &str) -> Result<Reply, ShellError> {
        let r = self
            .client
            .get(key.as_bytes(), self.level, self.node)
            .await?;
        self.remember(key, r.context.clone(), r.values.len());
        let values: Vec<String> = r.values.iter().map(|v| text(v)).collect();
        let mut reply = match self.format {
            Format::Json => Reply::text(view::json_text(&serde_json::json!({
                "key": key,
                "found": r.found,
                "values": values,
                "siblings": values.len(),
                "context": r.context,
            }))),
            Format::Table if !r.found => Reply::text("(not found)"),
            Format::Table if values.len() == 1 => Reply::text(values[0].clone()),
            Format::Table => Reply::text(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| format!("sibling {}: {v}", i + 1))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        };
        if values.len() > 1 {
            let key = quote(key);
            reply.notes.push(format!(
                "{} siblings: their context is remembered, so the next 'put {key} VALUE' \
                 replaces them all ('put --new {key} VALUE' keeps them)",
                values.len()
            ));
        }
        Ok(reply)
    }

    async fn put(&mut self, key: &str, value: &str, fresh: bool) -> Result<Reply, ShellError> {
        let remembered = if fresh {
            None
        } else {
            self.contexts.get(key).cloned()
        };
        let context = self
            .client
            .put(
                key.as_bytes(),
                Some(value.as_bytes()),
                remembered.as_ref().map(|r| r.context.as_str()),
                self.level,
                false,
                self.node,
            )
            .await?;
        let mut reply = match self.format {
            Format::Json => Reply::text(view::json_text(
                &serde_json::json!({ "key": key, "written": true, "context": context }),
            )),
            Format::Table => Reply::text("OK"),
        };
        if let Some(r) = remembered.filter(|r| r.siblings > 1) {
            reply.notes.push(format!(
                "resolving {} siblings with the context of your last get",
                r.siblings
            ));
        }
        self.remember(key, context, 1);
        Ok(reply)
    }

    async fn delete(&mut self, key: &str) -> Result<Reply, ShellError> {
        // As `kvctl delete`: delete what a read at the same level sees (every sibling).
        let seen = self
            .client
            .get(key.as_bytes(), self.level, self.node)
            .await?;
        let context = self
            .client
            .put(
                key.as_bytes(),
                None,
                Some(&seen.context)
                    .filter(|c| !c.is_empty())
                    .map(|c| c.as_str()),
                self.level,
                false,
                self.node,
            )
            .await?;
        let reply = match self.format {
            Format::Json => Reply::text(view::json_text(
                &serde_json::json!({ "key": key, "deleted": true, "context": context }),
            )),
            Format::Table => Reply::text("OK"),
        };
        self.remember(key, context, 0);
        Ok(reply)
    }

    async fn ring(&mut self, key: Option<&str>) -> Result<Reply, ShellError> {
        let (_, members) = self.client.status(self.node).await?;
        let replication = home::read(&self.home).map(|c| c.replication).unwrap_or(3);
        let ring = RingView::new(&members, replication);
        Ok(Reply::text(match (key, self.format) {
            (Some(key), Format::Json) => view::json_text(&ring.key_json(key)),
            (Some(key), Format::Table) => ring.key_text(key),
            (None, Format::Json) => view::json_text(&ring.json()),
            (None, Format::Table) => ring.text(),
        }))
    }

    async fn status(&mut self) -> Result<Reply, ShellError> {
        let (seen_by, members) = self.client.status(self.node).await?;
        let status = StatusView::new(
            seen_by,
            members,
            view::local_pids(&self.home, self.node_pid),
        );
        Ok(Reply::text(match self.format {
            Format::Json => view::json_text(&status.json()),
            Format::Table => status.text(),
        }))
    }
}

/// A value as text when it is UTF-8, else with invalid bytes replaced.
fn text(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}

/// Every command with its usage, or one command at length.
pub fn help(topic: Option<&Spec>) -> String {
    match topic {
        Some(spec) => format!(
            "usage: {}\n{}",
            spec.usage(),
            wrap(spec.detail, HELP_COLUMNS)
        ),
        None => {
            let width = SPECS.iter().map(|s| s.usage().len()).max().unwrap_or(0);
            let mut lines = vec!["Commands (names in any case; `help COMMAND` for more):".into()];
            lines.extend(
                SPECS
                    .iter()
                    .map(|s| format!("  {:width$}  {}", s.usage(), s.summary)),
            );
            lines.join("\n")
        }
    }
}

/// The width `help COMMAND` wraps its text to.
const HELP_COLUMNS: usize = 78;

/// `text` with its spaces turned into line breaks where a line would pass `columns`.
fn wrap(text: &str, columns: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut line_chars = 0;
    for word in text.split_whitespace() {
        let chars = word.chars().count();
        if line_chars > 0 && line_chars + 1 + chars > columns {
            out.push('\n');
            line_chars = 0;
        } else if line_chars > 0 {
            out.push(' ');
            line_chars += 1;
        }
        out.push_str(word);
        line_chars += chars;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_lists_every_command_and_wraps_details() {
        // The list names every command; a command's help starts with its usage and keeps
        // every line within the help width.
        let all = help(None);
        for spec in SPECS {
            assert!(all.contains(&spec.usage()), "{all}");
        }
        let put = help(crate::command::spec("put"));
        assert!(put.starts_with("usage: put [--new] KEY VALUE\n"), "{put}");
        assert!(
            put.lines().all(|l| l.chars().count() <= HELP_COLUMNS),
            "{put}"
        );
        assert!(put.contains("--new"));
    }

    #[test]
    fn errors_print_on_one_line() {
        // A multi-line error message is joined into one line.
        assert_eq!(
            one_line("no node answered:\n  a\n\nb "),
            "no node answered: a b"
        );
        let e = ShellError::Parse(ParseError::EmptyKey);
        assert_eq!(e.one_line(), "the key is empty");
    }
}

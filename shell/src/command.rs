//! The shell's commands: what each one is called and takes ([`SPECS`]), and parsing a line
//! into a typed [`Command`].

use kvctl::wire::proto::Consistency;

use crate::words;

/// How results are printed: what `OUTPUT` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Values as text, tables for `ring` and `status`.
    Table,
    /// The JSON objects `kvctl ... --output json` prints.
    Json,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
        }
    }
}

/// One line of the shell, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Get {
        key: String,
    },
    /// `fresh`: write without the context remembered from the last get of the key (`--new`).
    Put {
        key: String,
        value: String,
        fresh: bool,
    },
    Delete {
        key: String,
    },
    Ring {
        key: Option<String>,
    },
    Status,
    /// Without a level, shows the current one.
    Consistency {
        level: Option<Consistency>,
    },
    /// Without a format, shows the current one.
    Output {
        format: Option<Format>,
    },
    /// Without a topic, lists every command.
    Help {
        topic: Option<&'static Spec>,
    },
    Exit,
}

impl Command {
    /// The key the command names, if any (what completion offers later).
    pub fn key(&self) -> Option<&str> {
        match self {
            Command::Get { key } | Command::Put { key, .. } | Command::Delete { key } => Some(key),
            Command::Ring { key } => key.as_deref(),
            _ => None,
        }
    }
}

/// A command's name, arguments and help.
#[derive(Debug, PartialEq, Eq)]
pub struct Spec {
    /// As shown and completed; matched case-insensitively.
    pub name: &'static str,
    /// The arguments, as in `usage: NAME ARGS`.
    pub args: &'static str,
    /// The positional arguments in order, shown as hints while typing.
    pub placeholders: &'static [&'static str],
    pub summary: &'static str,
    /// More, for `help NAME`.
    pub detail: &'static str,
}

impl Spec {
    pub fn usage(&self) -> String {
        if self.args.is_empty() {
            self.name.to_string()
        } else {
            format!("{} {}", self.name, self.args)
        }
    }
}

/// Every command, in the order `help` lists them.
pub const SPECS: &[Spec] = &[
    Spec {
        name: "get",
        args: "KEY",
        placeholders: &["KEY"],
        summary: "read a key: its value, or every sibling",
        detail: "Reads KEY at the current consistency level and remembers its causal context, \
                 so that the next `put` of KEY in this shell supersedes what this get saw (with \
                 several siblings, it resolves them). Prints (not found) for a missing key.",
    },
    Spec {
        name: "put",
        args: "[--new] KEY VALUE",
        placeholders: &["KEY", "VALUE"],
        summary: "write a key (quote a value with spaces: put k \"two words\")",
        detail: "Writes VALUE with the context of the last get or put of KEY in this shell, \
                 replacing what that saw (siblings included: the shell says so). --new writes \
                 without it, as `kvctl put` does: the value becomes a sibling of what is \
                 stored.",
    },
    Spec {
        name: "delete",
        args: "KEY",
        placeholders: &["KEY"],
        summary: "delete a key (reads it, then writes a tombstone)",
        detail: "Reads KEY at the current level and writes a tombstone superseding every \
                 version that read saw, as `kvctl delete` does.",
    },
    Spec {
        name: "ring",
        args: "[--key KEY]",
        placeholders: &[],
        summary: "tokens and ownership per node; with --key, the key's replicas",
        detail: "As `kvctl ring`: each node's tokens and ownership and the balance figure; \
                 with --key KEY, the key's token and preference list.",
    },
    Spec {
        name: "status",
        args: "",
        placeholders: &[],
        summary: "each node's state as the cluster sees it",
        detail: "As `kvctl status`: address, state, pid, ownership, last gossip, hints, \
                 trimmed siblings.",
    },
    Spec {
        name: "CONSISTENCY",
        args: "[ONE|QUORUM|ALL]",
        placeholders: &["LEVEL"],
        summary: "show or set the consistency level of what follows",
        detail: "Without a level, shows the current one; with one (any case), uses it for \
                 every get, put and delete that follows.",
    },
    Spec {
        name: "OUTPUT",
        args: "[table|json]",
        placeholders: &["FORMAT"],
        summary: "show or set how results are printed",
        detail: "table: values as text and tables; json: the objects `kvctl ... --output \
                 json` prints.",
    },
    Spec {
        name: "help",
        args: "[COMMAND]",
        placeholders: &["COMMAND"],
        summary: "list the commands, or explain one",
        detail: "help COMMAND shows a command's usage and what it does.",
    },
    Spec {
        name: "exit",
        args: "",
        placeholders: &[],
        summary: "leave the shell (also quit, or Ctrl-D)",
        detail: "Leaves the shell. Ctrl-C cancels the line being typed or the command \
                 running; Ctrl-D on an empty line leaves too.",
    },
    Spec {
        name: "quit",
        args: "",
        placeholders: &[],
        summary: "leave the shell",
        detail: "Same as exit.",
    },
];

/// The command called `name`, in any case.
pub fn spec(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    #[error("unknown command '{name}' (try 'help')")]
    UnknownCommand { name: String },
    #[error("usage: {usage}{note}")]
    Usage { usage: String, note: &'static str },
    #[error("unknown consistency level '{given}' (the levels: ONE, QUORUM, ALL)")]
    BadLevel { given: String },
    #[error("unknown output format '{given}' (the formats: table, json)")]
    BadFormat { given: String },
    #[error("the key is empty")]
    EmptyKey,
    #[error("the line ends inside a {quote} quote")]
    UnclosedQuote { quote: char },
    #[error("the line ends with a backslash that escapes nothing")]
    TrailingBackslash,
}

/// Parses one line. A blank line or a comment (`#` first) is `None`.
pub fn parse(line: &str) -> Result<Option<Command>, ParseError> {
    if line.trim_start().starts_with('#') {
        return Ok(None);
    }
    let scan = words::scan(line);
    if let Some(quote) = scan.open_quote {
        return Err(ParseError::UnclosedQuote { quote });
    }
    if scan.trailing_backslash {
        return Err(ParseError::TrailingBackslash);
    }
    let mut words = scan.words.into_iter().map(|w| w.text);
    let Some(name) = words.next() else {
        return Ok(None);
    };
    let spec = spec(&name).ok_or(ParseError::UnknownCommand { name })?;
    let args: Vec<String> = words.collect();
    let usage = |note| ParseError::Usage {
        usage: spec.usage(),
        note,
    };
    let command = match (spec.name, args.as_slice()) {
        ("get", [key]) => Command::Get { key: key_of(key)? },
        ("put", rest) => {
            let (fresh, rest) = match rest {
                [flag, rest @ ..] if flag == "--new" => (true, rest),
                _ => (false, rest),
            };
            // `--` ends the options, so that a key may start with dashes.
            let (ended, rest) = match rest {
                [end, rest @ ..] if end == "--" => (true, rest),
                _ => (false, rest),
            };
            match rest {
                [option, ..] if !ended && option.starts_with("--") => {
                    return Err(usage(" (a key starting with -- goes after --)"))
                }
                [key, value] => Command::Put {
                    key: key_of(key)?,
                    value: value.clone(),
                    fresh,
                },
                [_, _, _, ..] => {
                    return Err(usage(" (a value with spaces needs quotes: \"two words\")"))
                }
                _ => return Err(usage("")),
            }
        }
        ("delete", [key]) => Command::Delete { key: key_of(key)? },
        ("ring", []) => Command::Ring { key: None },
        ("ring", [flag, key]) if flag == "--key" => Command::Ring {
            key: Some(key_of(key)?),
        },
        ("status", []) => Command::Status,
        ("CONSISTENCY", []) => Command::Consistency { level: None },
        ("CONSISTENCY", [level]) => Command::Consistency {
            level: Some(level.parse().map_err(|_| ParseError::BadLevel {
                given: level.clone(),
            })?),
        },
        ("OUTPUT", []) => Command::Output { format: None },
        ("OUTPUT", [format]) => Command::Output {
            format: Some(match format.to_ascii_lowercase().as_str() {
                "table" => Format::Table,
                "json" => Format::Json,
                _ => {
                    return Err(ParseError::BadFormat {
                        given: format.clone(),
                    })
                }
            }),
        },
        ("help", []) => Command::Help { topic: None },
        ("help", [topic]) => Command::Help {
            topic: Some(self::spec(topic).ok_or_else(|| ParseError::UnknownCommand {
                name: topic.clone(),
            })?),
        },
        ("exit" | "quit", []) => Command::Exit,
        _ => return Err(usage("")),
    };
    Ok(Some(command))
}

fn key_of(word: &str) -> Result<String, ParseError> {
    if word.is_empty() {
        return Err(ParseError::EmptyKey);
    }
    Ok(word.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn must_parse(line: &str) -> Command {
        parse(line)
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .unwrap_or_else(|| panic!("{line:?} is blank"))
    }

    fn put(key: &str, value: &str, fresh: bool) -> Command {
        Command::Put {
            key: key.into(),
            value: value.into(),
            fresh,
        }
    }

    #[test]
    fn commands_parse_in_any_case() {
        // Command names and levels are case-insensitive; keys and values are kept as typed.
        assert_eq!(must_parse("GET Key"), Command::Get { key: "Key".into() });
        assert_eq!(must_parse("Put k V"), put("k", "V", false));
        assert_eq!(
            must_parse("consistency all"),
            Command::Consistency {
                level: Some(Consistency::All)
            }
        );
        assert_eq!(
            must_parse("CONSISTENCY One"),
            Command::Consistency {
                level: Some(Consistency::One)
            }
        );
        assert_eq!(
            must_parse("Consistency"),
            Command::Consistency { level: None }
        );
        assert_eq!(
            must_parse("output JSON"),
            Command::Output {
                format: Some(Format::Json)
            }
        );
        assert_eq!(must_parse("QUIT"), Command::Exit);
        assert_eq!(must_parse("status"), Command::Status);
    }

    #[test]
    fn put_takes_quoted_values_and_new() {
        // A quoted value may hold spaces; --new (first) writes without the remembered context;
        // `--` lets a key start with dashes.
        assert_eq!(
            must_parse(r#"put k "two words""#),
            put("k", "two words", false)
        );
        assert_eq!(must_parse("put --new k v"), put("k", "v", true));
        assert_eq!(must_parse("put -- --new v"), put("--new", "v", false));
        assert_eq!(must_parse("put --new -- --k v"), put("--k", "v", true));
        assert_eq!(
            must_parse("ring --key 'a b'"),
            Command::Ring {
                key: Some("a b".into())
            }
        );
    }

    #[test]
    fn blank_lines_and_comments_are_nothing() {
        // Blank lines and `#` comments parse to no command.
        assert_eq!(parse("   "), Ok(None));
        assert_eq!(parse("  # a comment"), Ok(None));
    }

    #[test]
    fn bad_lines_say_why() {
        // Each kind of mistake is its own error, with a message naming the fix.
        assert_eq!(
            parse("frob x").unwrap_err().to_string(),
            "unknown command 'frob' (try 'help')"
        );
        assert_eq!(parse("get").unwrap_err().to_string(), "usage: get KEY");
        assert_eq!(
            parse("put k two words").unwrap_err().to_string(),
            "usage: put [--new] KEY VALUE (a value with spaces needs quotes: \"two words\")"
        );
        assert_eq!(
            parse("CONSISTENCY two").unwrap_err().to_string(),
            "unknown consistency level 'two' (the levels: ONE, QUORUM, ALL)"
        );
        assert!(matches!(
            parse("OUTPUT xml"),
            Err(ParseError::BadFormat { .. })
        ));
        assert_eq!(parse("get ''"), Err(ParseError::EmptyKey));
        assert_eq!(
            parse("put k \"open"),
            Err(ParseError::UnclosedQuote { quote: '"' })
        );
        assert_eq!(parse("get k\\"), Err(ParseError::TrailingBackslash));
        assert!(matches!(
            parse("help nope"),
            Err(ParseError::UnknownCommand { .. })
        ));
        assert!(matches!(parse("status now"), Err(ParseError::Usage { .. })));
        assert_eq!(
            parse("put --bogus k v").unwrap_err().to_string(),
            "usage: put [--new] KEY VALUE (a key starting with -- goes after --)"
        );
    }

    #[test]
    fn every_command_has_a_spec_reachable_by_name() {
        // Each spec is found by its own name, in upper and lower case.
        for s in SPECS {
            assert_eq!(spec(&s.name.to_lowercase()), Some(s));
            assert_eq!(spec(&s.name.to_uppercase()), Some(s));
        }
    }
}

//! The line editor's helper: completion of command names, levels, formats and the keys used in
//! this session, and hints of what a command takes as you type.

use std::borrow::Cow;
use std::collections::BTreeSet;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter};
use rustyline::{Context, Helper, Validator};

use crate::command::{spec, SPECS};
use crate::words::{self, quote};

/// Most keys offered for completion; keys used past it are not added.
pub const KEYS_MAX: usize = 10_000;

const LEVELS: &[&str] = &["ONE", "QUORUM", "ALL"];
const FORMATS: &[&str] = &["table", "json"];

#[derive(Helper, Validator, Default)]
pub struct ShellHelper {
    keys: BTreeSet<String>,
}

impl ShellHelper {
    /// Offers `key` for completion from now on.
    pub fn learn_key(&mut self, key: &str) {
        if self.keys.len() < KEYS_MAX {
            self.keys.insert(key.to_string());
        }
    }

    /// What may replace the word `partial` after the finished words `done`.
    fn candidates(&self, done: &[String], partial: &str) -> Vec<Pair> {
        let plain = |names: &mut dyn Iterator<Item = &str>| -> Vec<Pair> {
            names
                .filter(|n| starts_with_ignore_case(n, partial))
                .map(|n| {
                    let n = in_case_of(n, partial);
                    Pair {
                        display: n.clone(),
                        replacement: n,
                    }
                })
                .collect()
        };
        let keys = || -> Vec<Pair> {
            self.keys
                .iter()
                .filter(|k| k.starts_with(partial))
                .map(|k| Pair {
                    display: k.clone(),
                    replacement: quote(k),
                })
                .collect()
        };
        let Some(first) = done.first() else {
            return plain(&mut SPECS.iter().map(|s| s.name));
        };
        let Some(command) = spec(first) else {
            return Vec::new();
        };
        let rest: Vec<&str> = done[1..].iter().map(String::as_str).collect();
        match (command.name, rest.as_slice()) {
            ("get" | "delete", []) | ("put", [] | ["--new"]) | ("ring", ["--key"]) => {
                let mut found = keys();
                if command.name == "put" && rest.is_empty() && partial.starts_with('-') {
                    found.extend(plain(&mut ["--new"].into_iter()));
                }
                found
            }
            ("ring", []) => plain(&mut ["--key"].into_iter()),
            ("CONSISTENCY", []) => plain(&mut LEVELS.iter().copied()),
            ("OUTPUT", []) => plain(&mut FORMATS.iter().copied()),
            ("help", []) => plain(&mut SPECS.iter().map(|s| s.name)),
            _ => Vec::new(),
        }
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let scan = words::scan(&line[..pos]);
        let mut done: Vec<String> = scan.words.iter().map(|w| w.text.clone()).collect();
        let (partial, start) = match scan.words.last() {
            Some(last) if scan.ends_in_word => {
                done.pop();
                (last.text.clone(), last.start)
            }
            _ => (String::new(), pos),
        };
        Ok((start, self.candidates(&done, &partial)))
    }
}

/// A hint shown after the cursor: the rest of a command's name and what it takes. Only the
/// rest of the name is inserted by the right arrow; the arguments are for reading.
pub struct UsageHint {
    display: String,
    completion: Option<String>,
}

impl Hint for UsageHint {
    fn display(&self) -> &str {
        &self.display
    }

    fn completion(&self) -> Option<&str> {
        self.completion.as_deref()
    }
}

impl Hinter for ShellHelper {
    type Hint = UsageHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<UsageHint> {
        if pos < line.len() {
            return None;
        }
        let scan = words::scan(line);
        let first = scan.words.first()?;
        if scan.words.len() == 1 && scan.ends_in_word {
            // Typing the command's name: the rest of it, when only one command starts so.
            let typed = &first.text;
            let mut matching = SPECS
                .iter()
                .filter(|s| starts_with_ignore_case(s.name, typed));
            let command = matching.next()?;
            if matching.next().is_some() {
                return None;
            }
            let rest = in_case_of(command.name, typed)[typed.len()..].to_string();
            let args = if command.args.is_empty() {
                String::new()
            } else {
                format!(" {}", command.args)
            };
            let display = format!("{rest}{args}");
            return (!display.is_empty()).then(|| UsageHint {
                display,
                completion: Some(rest).filter(|r| !r.is_empty()),
            });
        }
        if scan.ends_in_word || scan.open_quote.is_some() {
            return None;
        }
        // After a space: what the command takes next.
        let command = spec(&first.text)?;
        let args = &scan.words[1..];
        let display = if args.is_empty() {
            command.args.to_string()
        } else {
            let positional = args.iter().filter(|w| !w.text.starts_with("--")).count();
            command
                .placeholders
                .get(positional..)
                .unwrap_or_default()
                .join(" ")
        };
        (!display.is_empty()).then_some(UsageHint {
            display,
            completion: None,
        })
    }
}

impl Highlighter for ShellHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        // Dim, so that a hint does not look typed.
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

fn starts_with_ignore_case(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len()
        && name.is_char_boundary(prefix.len())
        && name[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// `name` in the case the person is typing in: lower or upper if `typed` is all one case,
/// else as the command is written.
fn in_case_of(name: &str, typed: &str) -> String {
    let letters = || typed.chars().filter(|c| c.is_ascii_alphabetic());
    if letters().next().is_none() {
        name.to_string()
    } else if letters().all(|c| c.is_ascii_lowercase()) {
        name.to_ascii_lowercase()
    } else if letters().all(|c| c.is_ascii_uppercase()) {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    use rustyline::history::DefaultHistory;

    use super::*;

    fn completions(helper: &ShellHelper, line: &str) -> (usize, Vec<String>) {
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        let (start, pairs) = helper.complete(line, line.len(), &ctx).expect("completes");
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    fn hint(helper: &ShellHelper, line: &str) -> Option<(String, Option<String>)> {
        let history = DefaultHistory::new();
        let ctx = Context::new(&history);
        helper
            .hint(line, line.len(), &ctx)
            .map(|h| (h.display, h.completion))
    }

    fn helper_with_keys(keys: &[&str]) -> ShellHelper {
        let mut helper = ShellHelper::default();
        for k in keys {
            helper.learn_key(k);
        }
        helper
    }

    #[test]
    fn command_names_complete_in_the_case_typed() {
        // A prefix completes to the command names it starts, in the case it is typed in.
        let h = ShellHelper::default();
        assert_eq!(completions(&h, "CONS"), (0, vec!["CONSISTENCY".into()]));
        assert_eq!(completions(&h, "cons"), (0, vec!["consistency".into()]));
        assert_eq!(completions(&h, "  G"), (2, vec!["GET".into()]));
        assert_eq!(completions(&h, "").1.len(), SPECS.len());
        assert_eq!(completions(&h, "help st"), (5, vec!["status".into()]));
    }

    #[test]
    fn levels_and_formats_complete_after_their_commands() {
        // CONSISTENCY completes the levels, OUTPUT the formats.
        let h = ShellHelper::default();
        assert_eq!(
            completions(&h, "CONSISTENCY "),
            (12, vec!["ONE".into(), "QUORUM".into(), "ALL".into()])
        );
        assert_eq!(
            completions(&h, "consistency q"),
            (12, vec!["quorum".into()])
        );
        assert_eq!(completions(&h, "OUTPUT j"), (7, vec!["json".into()]));
        assert_eq!(completions(&h, "get k v").1, Vec::<String>::new());
    }

    #[test]
    fn keys_used_in_the_session_complete() {
        // Keys learned complete after get, put, put --new, delete and ring --key, quoted when
        // they hold spaces; an open quote is replaced with the whole quoted key.
        let h = helper_with_keys(&["alpha", "alps", "beta", "two words"]);
        assert_eq!(
            completions(&h, "get al"),
            (4, vec!["alpha".into(), "alps".into()])
        );
        assert_eq!(completions(&h, "put b"), (4, vec!["beta".into()]));
        assert_eq!(completions(&h, "put --new b"), (10, vec!["beta".into()]));
        assert_eq!(completions(&h, "delete b"), (7, vec!["beta".into()]));
        assert_eq!(completions(&h, "ring --key b"), (11, vec!["beta".into()]));
        assert_eq!(completions(&h, "ring --k"), (5, vec!["--key".into()]));
        assert_eq!(
            completions(&h, "get \"two"),
            (4, vec!["\"two words\"".into()])
        );
        assert_eq!(completions(&h, "put -").1, vec!["--new".to_string()]);
    }

    #[test]
    fn hints_show_the_rest_of_the_name_and_the_arguments() {
        // A unique prefix hints the rest of the name (insertable) and the arguments (not);
        // after a space, what comes next.
        let h = ShellHelper::default();
        assert_eq!(
            hint(&h, "CONS"),
            Some(("ISTENCY [ONE|QUORUM|ALL]".into(), Some("ISTENCY".into())))
        );
        assert_eq!(hint(&h, "get"), Some((" KEY".into(), None)));
        assert_eq!(hint(&h, "put "), Some(("[--new] KEY VALUE".into(), None)));
        assert_eq!(hint(&h, "put k "), Some(("VALUE".into(), None)));
        assert_eq!(hint(&h, "put k v "), None);
        assert_eq!(hint(&h, "status"), None);
        assert_eq!(hint(&h, "nope "), None);
    }

    #[test]
    fn keys_are_bounded() {
        // Past KEYS_MAX, keys are no longer added.
        let mut h = ShellHelper::default();
        for i in 0..KEYS_MAX + 5 {
            h.learn_key(&format!("k{i}"));
        }
        assert_eq!(h.keys.len(), KEYS_MAX);
    }
}

//! Splitting a line into words with shell-like quoting, and quoting a word back.
//!
//! Words are separated by whitespace. Double quotes keep spaces and take the escapes `\"`,
//! `\\`, `\n` and `\t` (a backslash before any other character keeps that character); single
//! quotes keep everything as written; outside quotes a backslash keeps the next character.
//! Quoted and unquoted parts next to each other make one word (`a"b c"` is `ab c`).

/// One word of a line: its text with the quoting taken off, and where it starts in the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// Byte offset of the word's first character (a quote, if it starts with one).
    pub start: usize,
}

/// What scanning a line found: its words, and whether it ends in the middle of one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    pub words: Vec<Word>,
    /// The quote still open at the end of the line, if any.
    pub open_quote: Option<char>,
    /// The line ends with a backslash that escapes nothing.
    pub trailing_backslash: bool,
    /// The line ends inside a word (no whitespace after the last one): the word being typed.
    pub ends_in_word: bool,
}

/// Splits `line` into words, tolerating an unfinished quote or escape at the end (completion
/// needs the word being typed; [`crate::command::parse`] refuses such a line).
pub fn scan(line: &str) -> Scan {
    let mut scan = Scan::default();
    let mut current: Option<Word> = None;
    let mut chars = line.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        if c.is_whitespace() {
            if let Some(word) = current.take() {
                scan.words.push(word);
            }
            continue;
        }
        let word = current.get_or_insert_with(|| Word {
            text: String::new(),
            start: at,
        });
        match c {
            '\\' => match chars.next() {
                Some((_, escaped)) => word.text.push(escaped),
                None => scan.trailing_backslash = true,
            },
            '\'' => {
                scan.open_quote = Some('\'');
                for (_, q) in chars.by_ref() {
                    if q == '\'' {
                        scan.open_quote = None;
                        break;
                    }
                    word.text.push(q);
                }
            }
            '"' => {
                scan.open_quote = Some('"');
                while let Some((_, q)) = chars.next() {
                    match q {
                        '"' => {
                            scan.open_quote = None;
                            break;
                        }
                        '\\' => match chars.next() {
                            Some((_, 'n')) => word.text.push('\n'),
                            Some((_, 't')) => word.text.push('\t'),
                            Some((_, escaped)) => word.text.push(escaped),
                            None => scan.trailing_backslash = true,
                        },
                        _ => word.text.push(q),
                    }
                }
            }
            _ => word.text.push(c),
        }
    }
    if let Some(word) = current {
        scan.words.push(word);
        scan.ends_in_word = true;
    }
    scan
}

/// `word` as it would be typed: as is when it needs no quoting, else in double quotes.
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && !word.starts_with('#')
        && word
            .chars()
            .all(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | '\\'));
    if plain {
        return word.to_string();
    }
    let mut quoted = String::with_capacity(word.len() + 2);
    quoted.push('"');
    for c in word.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\t' => quoted.push_str("\\t"),
            _ => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(line: &str) -> Vec<String> {
        scan(line).words.into_iter().map(|w| w.text).collect()
    }

    #[test]
    fn whitespace_separates_words() {
        // Runs of spaces and tabs are one separator; leading and trailing ones make no word.
        assert_eq!(texts("  put \t k  v "), ["put", "k", "v"]);
        assert!(!scan("put k ").ends_in_word);
        assert!(scan("put k").ends_in_word);
    }

    #[test]
    fn quotes_keep_spaces_and_join_adjacent_parts() {
        // Double and single quotes keep what is inside as one word, next to plain text too.
        assert_eq!(texts(r#"put k "two words""#), ["put", "k", "two words"]);
        assert_eq!(texts("put 'a b' 'it\"s'"), ["put", "a b", "it\"s"]);
        assert_eq!(texts(r#"a"b c"d"#), ["ab cd"]);
        assert_eq!(texts(r#"put k """#), ["put", "k", ""]);
    }

    #[test]
    fn backslashes_escape() {
        // Outside quotes a backslash keeps the next character; in double quotes \n and \t are
        // a newline and a tab; in single quotes a backslash is itself.
        assert_eq!(texts(r"a\ b \'"), ["a b", "'"]);
        assert_eq!(texts(r#""x\"y\\z\n\t""#), ["x\"y\\z\n\t"]);
        assert_eq!(texts(r"'a\b'"), [r"a\b"]);
    }

    #[test]
    fn unfinished_quotes_and_escapes_are_reported() {
        // An open quote or a lone trailing backslash is flagged, and the partial word kept.
        let s = scan(r#"get "two wo"#);
        assert_eq!(s.open_quote, Some('"'));
        assert_eq!(s.words[1].text, "two wo");
        assert_eq!(s.words[1].start, 4);
        assert!(scan(r"get k\").trailing_backslash);
        assert_eq!(scan("get 'k").open_quote, Some('\''));
    }

    #[test]
    fn quote_round_trips() {
        // What quote() writes, scan() reads back as the same single word.
        for word in [
            "plain",
            "two words",
            "q\"uo'te",
            "back\\slash",
            "",
            "#hash",
            "a\nb\tc",
        ] {
            assert_eq!(texts(&quote(word)), [word], "{word:?}");
        }
        assert_eq!(quote("alpha"), "alpha");
    }
}

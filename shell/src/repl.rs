//! The interactive loop: a prompt naming the cluster and the consistency level, completion and
//! hints, history kept in the cluster's home across sessions; Ctrl-C cancels the line (or the
//! command running), Ctrl-D or `exit` leaves.

use std::io::{self, Write};
use std::path::Path;

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};
use tokio::runtime::Runtime;

use crate::helper::ShellHelper;
use crate::session::Session;
use crate::{run_line, Step};

/// The history file, in the cluster's home.
pub const HISTORY_FILE: &str = "shell_history";
/// Most lines the history keeps.
pub const HISTORY_ENTRIES_MAX: usize = 1000;

/// The cluster's name in the prompt: its home directory's name.
fn cluster_name(home: &Path) -> String {
    home.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| home.display().to_string())
}

/// Runs the shell until Ctrl-D or `exit`. A failed line is shown and the session goes on, so
/// this returns true unless the terminal itself fails.
pub fn run(runtime: &Runtime, session: &mut Session, home: &Path) -> anyhow::Result<bool> {
    let config = Config::builder()
        .max_history_size(HISTORY_ENTRIES_MAX)?
        .completion_type(CompletionType::List)
        .build();
    let mut editor: Editor<ShellHelper, DefaultHistory> = Editor::with_config(config)?;
    editor.set_helper(Some(ShellHelper::default()));
    let history = home.join(HISTORY_FILE);
    match editor.load_history(&history) {
        Ok(()) => {}
        Err(ReadlineError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "warning: the history in {} is unreadable: {e}",
            history.display()
        ),
    }
    let name = cluster_name(home);
    println!(
        "kvctl shell: cluster '{name}' ({}). Type 'help' for the commands, Ctrl-D to leave.",
        home.display()
    );
    let mut history_warned = false;
    loop {
        let prompt = format!("kvctl:{name} {}> ", session.level());
        let line = match editor.readline(&prompt) {
            Ok(line) => line,
            // Ctrl-C: the line is dropped, a new prompt shown.
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        if !line.trim().is_empty() {
            // Saved at once, so that a shell killed later keeps what was typed.
            let saved = editor
                .add_history_entry(line.as_str())
                .and_then(|_| editor.append_history(&history));
            if let Err(e) = saved {
                if !history_warned {
                    eprintln!(
                        "warning: cannot save the history to {}: {e}",
                        history.display()
                    );
                    history_warned = true;
                }
            }
        }
        match run_line(runtime, session, &line, true) {
            Ok(Step::Exit) => break,
            Ok(Step::Next { key }) => {
                if let (Some(key), Some(helper)) = (key, editor.helper_mut()) {
                    helper.learn_key(&key);
                }
            }
            Err(e) => eprintln!("error: {}", e.one_line()),
        }
        let _ = io::stdout().flush();
    }
    Ok(true)
}

//! The completion scripts checked into `completions/` are what `kvctl completions` prints now.
//! Regenerate them with `scripts/completions.sh` (or the loop in the README).

use std::path::Path;
use std::process::Command;

#[test]
fn completions_match_the_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("completions");
    for (shell, file) in [
        ("bash", "kvctl.bash"),
        ("zsh", "_kvctl"),
        ("fish", "kvctl.fish"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kvctl"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "kvctl completions {shell} failed");
        let checked_in = std::fs::read(root.join(file)).unwrap_or_default();
        assert!(
            checked_in == out.stdout,
            "completions/{file} is out of date: run `kvctl completions {shell} > completions/{file}`"
        );
    }
}

#[test]
fn unknown_shell_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_kvctl"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid value 'tcsh'"), "{stderr}");
}

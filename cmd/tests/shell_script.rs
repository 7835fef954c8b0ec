//! `kvctl shell` with standard input not a terminal runs the lines as a script against a real
//! 3-node cluster: the interactive shell's output without a prompt, one `error: line N: …`
//! line per failed line, the later lines still run, and the exit status says whether every
//! line succeeded.

mod common;

use std::process::Output;

use common::Cluster;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `kvctl shell ARGS` with `script` on standard input; fails the test if it does not exit
/// with `success`.
fn must_run_script(c: &Cluster, args: &[&str], script: &str, success: bool) -> Output {
    let mut argv = vec!["shell"];
    argv.extend_from_slice(args);
    let out = c.run_with_stdin(&argv, script.as_bytes());
    assert_eq!(
        out.status.success(),
        success,
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

/// The values of `sibling N: VALUE` lines, numbered from 1 in order, sorted.
fn sibling_values<'a>(lines: &[&'a str]) -> Vec<&'a str> {
    let mut values: Vec<&str> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            l.strip_prefix(&format!("sibling {}: ", i + 1))
                .unwrap_or_else(|| panic!("{l:?} is not sibling {}", i + 1))
        })
        .collect();
    values.sort();
    values
}

#[test]
fn shell_script_writes_reads_and_changes_settings() {
    // Puts (a quoted value with spaces too), gets, CONSISTENCY and OUTPUT print what the
    // interactive shell prints, comments and blank lines are skipped, `exit` ends the script,
    // and a script without errors exits 0.
    let c = Cluster::up(3, 0);
    let script = r#"
# a comment, then a blank line

put alpha 1
GET alpha
put spaced "two words"
get spaced
get missing
CONSISTENCY
consistency quorum
Consistency
put alpha 2
OUTPUT json
get alpha
put beta b
delete beta
output TABLE
get beta
exit
put never-run x
"#;
    let out = must_run_script(&c, &["--consistency", "all"], script, true);
    let text = stdout(&out);
    let json_start = text.find('{').expect("JSON output");
    let json_end = text.rfind('}').expect("JSON output") + 1;
    let before: Vec<&str> = text[..json_start].lines().collect();
    assert_eq!(
        before,
        [
            "OK",
            "1",
            "OK",
            "two words",
            "(not found)",
            "Current consistency level is ALL.",
            "Consistency level set to QUORUM.",
            "Current consistency level is QUORUM.",
            "OK",
            "Output format set to json.",
        ],
        "{text}"
    );
    // The JSON objects are those of `kvctl get|put|delete --output json`.
    let objects: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&text[json_start..json_end])
            .into_iter()
            .collect::<Result<_, _>>()
            .expect("JSON objects");
    assert_eq!(objects.len(), 3, "{text}");
    assert_eq!(objects[0]["key"], "alpha");
    assert_eq!(objects[0]["found"], true);
    assert_eq!(objects[0]["values"], serde_json::json!(["2"]));
    assert_eq!(objects[0]["siblings"], 1);
    assert!(objects[0]["context"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    assert_eq!(objects[1]["key"], "beta");
    assert_eq!(objects[1]["written"], true);
    assert_eq!(objects[2]["key"], "beta");
    assert_eq!(objects[2]["deleted"], true);
    let after: Vec<&str> = text[json_end..].lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        after,
        ["Output format set to table.", "(not found)"],
        "{text}"
    );
    assert_eq!(stderr(&out), "");
    // What the shell wrote, `kvctl get` reads; nothing after `exit` ran.
    assert_eq!(c.must(&["get", "spaced"]), "two words\n");
    assert_eq!(c.must(&["get", "alpha"]), "2\n");
    assert!(!c.run(&["get", "never-run"]).status.success());
}

#[test]
fn shell_script_resolves_siblings_with_the_remembered_context() {
    // Two puts without context through two nodes make siblings: `get` shows both and says
    // their context is remembered; the next `put` resolves them (saying so), so that `get`
    // shows one value; `put --new` writes without the context, making a sibling again.
    let c = Cluster::up(3, 1);
    c.must(&["put", "k", "a", "--node", &c.addr(1)]);
    c.must(&["put", "k", "b", "--node", &c.addr(2)]);
    let out = must_run_script(
        &c,
        &[],
        "get k\nput k c\nget k\nput --new k d\nget k\n",
        true,
    );
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert_eq!(sibling_values(&lines[..2]), ["a", "b"], "{text}");
    assert_eq!(lines[2..5], ["OK", "c", "OK"], "{text}");
    assert_eq!(sibling_values(&lines[5..]), ["c", "d"], "{text}");
    let notes = stderr(&out);
    let notes: Vec<&str> = notes.lines().collect();
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert!(
        notes[0].starts_with("2 siblings: their context is remembered")
            && notes[0].contains("'put --new k VALUE' keeps them"),
        "{notes:?}"
    );
    assert_eq!(
        notes[1],
        "resolving 2 siblings with the context of your last get"
    );
    assert!(notes[2].starts_with("2 siblings"), "{notes:?}");
}

#[test]
fn shell_script_errors_print_one_line_and_fail_the_exit_status() {
    // An unknown command, a bad level, bad arguments and a level that cannot be met (a node
    // down, reads at ALL) each print one `error: line N:` line; the lines after them still
    // run, and the exit status is non-zero.
    let c = Cluster::up(3, 2);
    c.must(&["put", "x", "1"]);
    c.sigkill(3);
    let script = "frob x\nCONSISTENCY two\nput k two words\nCONSISTENCY all\nget x\n\
                  CONSISTENCY quorum\nput y 2\nget y\n";
    let out = must_run_script(&c, &[], script, false);
    let errors = stderr(&out);
    let errors: Vec<&str> = errors.lines().collect();
    assert_eq!(errors.len(), 4, "{errors:?}");
    assert_eq!(
        errors[0],
        "error: line 1: unknown command 'frob' (try 'help')"
    );
    assert_eq!(
        errors[1],
        "error: line 2: unknown consistency level 'two' (the levels: ONE, QUORUM, ALL)"
    );
    assert_eq!(
        errors[2],
        "error: line 3: usage: put [--new] KEY VALUE (a value with spaces needs quotes: \
         \"two words\")"
    );
    assert!(
        errors[3].starts_with("error: line 5: ") && errors[3].contains("ALL"),
        "{errors:?}"
    );
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        [
            "Consistency level set to ALL.",
            "Consistency level set to QUORUM.",
            "OK",
            "2"
        ]
    );
}

#[test]
fn shell_script_ring_and_status_print_what_kvctl_prints() {
    // `ring`, `ring --key` and `status` in the shell print what `kvctl ring` and `kvctl status`
    // print, as tables and as JSON (status with each local node's pid).
    let c = Cluster::up(3, 3);
    let out = must_run_script(
        &c,
        &[],
        "ring\nring --key user:42\nOUTPUT json\nring --key user:42\nstatus\n",
        true,
    );
    let expected = [
        c.must(&["ring"]),
        c.must(&["ring", "--key", "user:42"]),
        "Output format set to json.\n".to_string(),
        c.must(&["ring", "--key", "user:42", "--output", "json"]),
    ]
    .concat();
    let text = stdout(&out);
    assert!(text.starts_with(&expected), "{text}\nexpected:\n{expected}");
    let status: serde_json::Value =
        serde_json::from_str(&text[expected.len()..]).expect("status as JSON");
    let nodes = status["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{status}");
    assert!(
        nodes
            .iter()
            .all(|n| n["state"] == "normal" && n["pid"].is_u64()),
        "{status}"
    );
    assert_eq!(
        status["nodes"],
        c.must_json(&["status"])["nodes"]
            .as_array()
            .map(|nodes| {
                // Gossip ages and phi move between the two reads.
                let mut n = nodes.clone();
                for (ours, theirs) in n.iter_mut().zip(status["nodes"].as_array().unwrap()) {
                    ours["last_gossip_age_ms"] = theirs["last_gossip_age_ms"].clone();
                    ours["phi"] = theirs["phi"].clone();
                }
                serde_json::Value::Array(n)
            })
            .unwrap()
    );
}

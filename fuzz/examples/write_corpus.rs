//! Writes the seed corpus: each target's seeds (see `kvctl_fuzz::seeds`) as
//! `fuzz/corpus/<target>/seed-<n>`, replacing the seeds written before and leaving every other
//! file (the inputs the fuzzer found, kept as regressions) alone.
//!
//! Run with `cargo run -p kvctl-fuzz --example write_corpus`.

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (name, _) in kvctl_fuzz::TARGETS {
        let dir = corpus.join(name);
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let seed = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("seed-"));
            if seed {
                fs::remove_file(&path)?;
            }
        }
        let seeds = kvctl_fuzz::seeds::seeds(name);
        for (i, seed) in seeds.iter().enumerate() {
            fs::write(dir.join(format!("seed-{i}")), seed)?;
        }
        println!("{name}: {} seeds", seeds.len());
    }
    Ok(())
}

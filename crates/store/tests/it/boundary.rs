//! The store's SQL names no state, kind or role by hand: lists such as
//! `state IN (...)` are generated from the enums (`sql::quoted`), so a
//! variant renamed or added in `suanwang-core` cannot leave a statement
//! behind. Every `.rs` file under `src/` is read; a quoted literal of any
//! variant's name fails the test, naming file and line. The migrations
//! (`migrations/`) are the schema and are not read.

use std::path::{Path, PathBuf};

use suanwang_core::lifecycle::{EventKind, JobState, TaskState};
use suanwang_core::spec::JobKind;
use suanwang_store::ledger::{Asset, Phase, Side};
use suanwang_store::Role;

/// Every name a state, kind or role is stored as.
fn stored_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    names.extend(TaskState::ALL.map(TaskState::as_str));
    names.extend(JobState::ALL.map(JobState::as_str));
    names.extend(JobKind::ALL.map(JobKind::as_str));
    names.extend(Role::ALL.map(Role::as_str));
    names.extend(EventKind::ALL.map(EventKind::as_str));
    names.extend(Phase::ALL.map(Phase::as_str));
    names.extend(Side::ALL.map(Side::as_str));
    names.extend(Asset::ALL.map(Asset::as_str));
    names.sort_unstable();
    names.dedup();
    names
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_state_kind_or_role_is_a_quoted_literal_in_the_sources() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files.sort();
    assert!(
        files.iter().any(|f| f.ends_with("sql/lifecycle/mod.rs")),
        "the store's sources are where this test looks: {files:?}"
    );
    let quoted: Vec<String> = stored_names()
        .into_iter()
        .map(|name| format!("'{name}'"))
        .collect();
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source");
        for (i, line) in text.lines().enumerate() {
            for literal in &quoted {
                if line.contains(literal.as_str()) {
                    let shown = file.strip_prefix(root).unwrap_or(file);
                    found.push(format!("{}:{}: {literal}", shown.display(), i + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "states, kinds and roles as quoted literals (generate them from the enums, \
         sql::quoted):\n{}",
        found.join("\n")
    );
}

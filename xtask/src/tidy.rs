//! The `tidy` step: house rules that rustfmt and clippy do not check.

use std::fs;
use std::path::{Path, PathBuf};

/// Folders whose Rust files are checked.
const CHECKED: &[&str] = &["crates", "tests", "xtask", "fuzz/fuzz_targets", "examples"];

/// Text that may not appear outside a comment (this file names them only inside this list).
const BANNED: &[&str] = &[
    concat!("todo", "!("),
    concat!("unimplemented", "!("),
    concat!("thread::", "sleep"),
    concat!("#[", "ignore"),
];

/// Checks every Rust source file under the checked folders:
/// - it starts with a `//!` line saying what it holds;
/// - it has none of the stub macros listed in `BANNED` (no stubs on a reachable path);
/// - tests neither sleep the thread nor hide behind `#[ignore]`.
pub(crate) fn check(root: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    for dir in CHECKED {
        collect(&root.join(dir), &mut files);
    }
    let mut problems = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            problems.push(format!("{}: not readable as UTF-8", file.display()));
            continue;
        };
        let shown = file.strip_prefix(root).unwrap_or(file).display();
        if !text.trim_start().starts_with("//!") {
            problems.push(format!("{shown}: does not start with a `//!` line"));
        }
        for (no, line) in text.lines().enumerate() {
            for banned in BANNED {
                if line.contains(banned) && !line.trim_start().starts_with("//") {
                    problems.push(format!("{shown}:{}: `{banned}`", no + 1));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} problem(s):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

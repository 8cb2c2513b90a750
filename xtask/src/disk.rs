//! Free space where the build writes: a full disk makes the linker fail with errors that
//! do not say so (a bus error, "No space left on device" deep in a rustc message), so
//! `ci` says it in one line, before the build and after a step that failed.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// About what a clean `cargo xtask ci` writes under `target/` (clippy, the test and doc
/// builds), in MiB: 1.9 GiB measured, with some room.
const CI_BUILD_MIB: u64 = 2560;

/// Below this, a failed step most likely ran out of space.
const NEARLY_FULL_MIB: u64 = 512;

/// The build directory: `CARGO_TARGET_DIR`, or `target/` under the workspace root.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Free MiB on the file system holding `path` (or its nearest existing ancestor), from
/// `df`; `None` where `df` is missing or says something else.
fn free_mib(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let out = Command::new("df").arg("-Pk").arg(existing).output().ok()?;
    if !out.status.success() {
        return None;
    }
    // POSIX format: a header line, then `filesystem blocks used available capacity mount`.
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// A warning line when less is free under `dir` than a clean build writes.
pub(crate) fn warn_if_short(dir: &Path) {
    if let Some(free) = free_mib(dir) {
        if free < CI_BUILD_MIB {
            println!(
                "==> disk: warning: {free} MiB free for {}; a clean build writes about {} MiB",
                dir.display(),
                CI_BUILD_MIB
            );
        }
    }
}

/// `error`, with a word on the disk if it is nearly full now.
pub(crate) fn explain(dir: &Path, error: String) -> String {
    match free_mib(dir) {
        Some(free) if free < NEARLY_FULL_MIB => format!(
            "{error}\nxtask: only {free} MiB left on the disk of {}: free some space and run again",
            dir.display()
        ),
        _ => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_for_a_path_not_yet_made() {
        let dir = env::temp_dir()
            .join("xtask-disk-check")
            .join("not")
            .join("made");
        assert!(!dir.exists());
        // `df` is on every machine CI runs on; where it is missing there is nothing to test.
        if Command::new("df").arg("--version").output().is_ok() {
            assert!(free_mib(&dir).is_some_and(|mib| mib > 0));
        }
    }

    #[test]
    fn a_roomy_disk_adds_nothing_to_an_error() {
        let dir = env::temp_dir();
        if free_mib(&dir).is_some_and(|mib| mib >= NEARLY_FULL_MIB) {
            assert_eq!(explain(&dir, "boom".into()), "boom");
        }
    }
}

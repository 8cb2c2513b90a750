//! What the tests need from the machine: `redis-server`, installed from the OS packages
//! when missing. The tests start their own private servers on free loopback ports.

use std::process::{Command, Stdio};

/// Succeeds when `program --version` runs.
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `apt-get` with these arguments, through `sudo` unless we are root.
fn apt_get(args: &[&str]) -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "apt-get"]);
        sudo
    };
    cmd.args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `redis-server` is on the PATH, installing Debian's `redis-server` package
/// when it is not.
pub(crate) fn ensure_redis() -> Result<(), String> {
    if runs("redis-server") {
        return Ok(());
    }
    const MISSING: &str = "redis-server is missing and could not be installed; \
         install the OS package `redis-server` (e.g. `apt-get install redis-server`)";
    if !runs("apt-get") {
        return Err(MISSING.into());
    }
    println!("    installing redis-server from the OS packages");
    let install = ["install", "-y", "--no-install-recommends", "redis-server"];
    // A fresh machine may have no package lists yet: update them once and try again.
    let installed = apt_get(&install) || (apt_get(&["update"]) && apt_get(&install));
    if installed && runs("redis-server") {
        Ok(())
    } else {
        Err(MISSING.into())
    }
}

//! A private `redis-server` process on a loopback port, for tests and demos.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::ResumeError;

/// The program started.
const PROGRAM: &str = "redis-server";
/// How many ports to try when the server cannot start on the one picked (another process
/// may take a free port between the pick and the start).
const PORT_ATTEMPTS: usize = 3;
/// What the server logs once it listens.
const READY: &str = "Ready to accept connections";
/// How long the PING that confirms a started server may take.
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Starts a private `redis-server` for tests and demos: no persistence, bound to
/// `127.0.0.1` on a free port, killed when this value is dropped (or by
/// [`LocalRedis::stop`]). Connect a [`RedisStore`](crate::RedisStore) to
/// [`LocalRedis::url`].
///
/// `redis-server` must be on `PATH` (the Debian/Ubuntu package `redis-server`); without it,
/// [`LocalRedis::start`] fails with an error that says so.
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), liaison_resume::ResumeError> {
/// use liaison_resume::{LocalRedis, RedisStore, Store};
///
/// let redis = LocalRedis::start().await?;
/// let store = RedisStore::connect(&redis.url()).await?;
/// assert!(store.try_lock("k", "me", std::time::Duration::from_secs(5)).await?);
/// redis.stop()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LocalRedis {
    /// The server; `None` once stopped.
    child: Option<Child>,
    port: u16,
}

impl LocalRedis {
    /// Starts `redis-server`, waits until it logs that it accepts connections, and checks
    /// that it answers `PING`. Runs on tokio's blocking pool: starting a process and reading
    /// its log block.
    pub async fn start() -> Result<Self, ResumeError> {
        tokio::task::spawn_blocking(Self::start_blocking)
            .await
            .map_err(|e| backend(format!("starting {PROGRAM} failed: {e}")))?
    }

    /// The URL to connect to, `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server and waits until it is gone (dropping does the same, ignoring
    /// errors).
    pub fn stop(mut self) -> Result<(), ResumeError> {
        match self.child.take() {
            Some(mut child) => {
                kill(&mut child).map_err(|e| backend(format!("stopping {PROGRAM}: {e}")))
            }
            None => Ok(()),
        }
    }

    fn start_blocking() -> Result<Self, ResumeError> {
        let program = find_program(OsStr::new(PROGRAM), std::env::var_os("PATH"))?;
        let mut failure = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let mut child = Command::new(&program)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| backend(format!("{}: {e}", program.display())))?;
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    tracing::debug!(port, "started a local redis-server");
                    return Ok(Self {
                        child: Some(child),
                        port,
                    });
                }
                Err(e) => {
                    // Best effort: the error that matters is `e`.
                    let _ = kill(&mut child);
                    tracing::debug!(port, error = %e, "local redis-server did not start");
                    failure = Some(e);
                }
            }
        }
        Err(failure.unwrap_or_else(|| backend(format!("{PROGRAM} did not start"))))
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Nothing to report to in a drop; the process is gone either way.
            let _ = kill(&mut child);
        }
    }
}

/// Kills `child` and reaps it.
fn kill(child: &mut Child) -> std::io::Result<()> {
    child.kill()?;
    child.wait().map(drop)
}

/// The first file named `program` in the directories of `path` (a `PATH` value).
fn find_program(program: &OsStr, path: Option<OsString>) -> Result<PathBuf, ResumeError> {
    path.iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|candidate| is_file(candidate))
        .ok_or_else(|| {
            backend(format!(
                "program `{}` not found on PATH; install the package `redis-server` \
                 (for example `apt-get install redis-server`)",
                program.to_string_lossy()
            ))
        })
}

fn is_file(path: &Path) -> bool {
    path.metadata().is_ok_and(|m| m.is_file())
}

/// A loopback port that was free a moment ago.
fn free_port() -> Result<u16, ResumeError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| backend(format!("no free loopback port: {e}")))
}

/// Reads the server's log until it says it accepts connections (or ends: the server
/// exited, for example because another process took the port), then checks one `PING`.
fn wait_ready(child: &mut Child, port: u16) -> Result<(), ResumeError> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| backend(format!("{PROGRAM}: no log to read")))?;
    let mut log = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let read = log
            .read_line(&mut line)
            .map_err(|e| backend(format!("{PROGRAM}: reading its log: {e}")))?;
        if read == 0 {
            let status = child
                .wait()
                .map_err(|e| backend(format!("{PROGRAM}: {e}")))?;
            return Err(backend(format!(
                "{PROGRAM} exited at start on port {port} ({status})"
            )));
        }
        if line.contains(READY) {
            break;
        }
    }
    // The server goes on logging: drain it so that it never blocks on a full pipe. The
    // thread ends when the server does.
    std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    ping(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .map_err(|e| backend(format!("{PROGRAM} on port {port} did not answer PING: {e}")))
}

/// One `PING` over a fresh connection; `Ok` if the answer is `+PONG`.
fn ping(addr: SocketAddr) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, PING_TIMEOUT)?;
    stream.set_read_timeout(Some(PING_TIMEOUT))?;
    stream.set_write_timeout(Some(PING_TIMEOUT))?;
    stream.write_all(b"PING\r\n")?;
    let mut answer = [0; 7];
    stream.read_exact(&mut answer)?;
    if &answer == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(std::io::Error::other("unexpected answer to PING"))
    }
}

fn backend(message: String) -> ResumeError {
    ResumeError::Backend {
        backend: "redis",
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_itself_and_its_package() {
        let dir = tempfile::tempdir().unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        let err = find_program(OsStr::new(PROGRAM), Some(path)).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("`redis-server` not found on PATH"),
            "{message}"
        );
        assert!(
            message.contains("install the package `redis-server`"),
            "{message}"
        );
        let err = find_program(OsStr::new(PROGRAM), None).unwrap_err();
        assert!(matches!(
            err,
            ResumeError::Backend {
                backend: "redis",
                ..
            }
        ));
    }

    #[test]
    fn the_program_is_found_in_a_later_directory() {
        let empty = tempfile::tempdir().unwrap();
        let full = tempfile::tempdir().unwrap();
        let program = full.path().join(PROGRAM);
        std::fs::write(&program, b"").unwrap();
        // A directory of that name is not the program.
        std::fs::create_dir(empty.path().join(PROGRAM)).unwrap();
        let path = std::env::join_paths([empty.path(), full.path()]).unwrap();
        assert_eq!(
            find_program(OsStr::new(PROGRAM), Some(path)).unwrap(),
            program
        );
    }
}

//! End to end: the built `liaison` binary serving in one process and connecting from
//! others, over TCP, QUIC and Unix sockets; session state kept across a server restart;
//! clean shutdown; one-line errors; the demo.
//!
//! Nothing waits on the clock: every step waits on a line the other process prints.

use std::io::{BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};

use serde_json::Value;

fn liaison() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_liaison"));
    command.env("NO_COLOR", "1").env("RUST_LOG", "warn");
    command
}

/// A temporary folder with a pre-shared key in it.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("key"),
            "00112233445566778899aabbccddeeff0011223344556677\n",
        )
        .unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn key(&self) -> String {
        self.path("key").display().to_string()
    }

    /// Starts `liaison serve --json` on `listen` and reads its readiness line.
    fn serve(&self, listen: &[&str], extra: &[&str]) -> Server {
        let mut command = liaison();
        command
            .args(["--json", "serve", "--psk-file", &self.key(), "--listen"])
            .args(listen)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let ready = read_json(&mut stdout);
        assert_eq!(ready["event"], "listening", "{ready}");
        let addresses = ready["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        Server {
            child,
            stdout,
            addresses,
            ready,
        }
    }

    /// Runs `liaison connect URL ARGS...` to completion.
    fn connect(&self, url: &str, args: &[&str]) -> Output {
        liaison()
            .args(["connect", url, "--psk-file", &self.key()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

/// A running `liaison serve`; killed if a test ends without shutting it down.
struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addresses: Vec<String>,
    ready: Value,
}

impl Server {
    fn address(&self, scheme: &str) -> &str {
        self.addresses
            .iter()
            .find(|a| a.starts_with(&format!("{scheme}://")))
            .unwrap()
    }

    /// Sends SIGINT (Ctrl-C), waits for the exit, returns its last JSON line and status.
    fn interrupt(mut self) -> (Value, bool) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let last = read_json(&mut self.stdout);
        let exit = self.child.wait().unwrap();
        (last, exit.success())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_json(reader: &mut impl std::io::BufRead) -> Value {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn cert_args(cert: &Path) -> [String; 2] {
    ["--ca".into(), cert.display().to_string()]
}

#[test]
fn calls_and_streams_over_tcp_and_quic() {
    let fixture = Fixture::new();
    let cert = fixture.path("cert.pem");
    let server = fixture.serve(
        &["tcp://127.0.0.1:0", "quic://127.0.0.1:0"],
        &["--cert-out", &cert.display().to_string()],
    );
    assert_eq!(server.ready["cert_sha256"].as_str().unwrap().len(), 64);

    let tcp = fixture.connect(server.address("tcp"), &["--call", "echo", "hello over tcp"]);
    assert!(tcp.status.success(), "{}", stderr(&tcp));
    assert_eq!(stdout(&tcp), "hello over tcp\n");

    let ca = cert_args(&cert);
    let quic = fixture.connect(
        server.address("quic"),
        &["--call", "echo", "hello over quic", &ca[0], &ca[1]],
    );
    assert!(quic.status.success(), "{}", stderr(&quic));
    assert_eq!(stdout(&quic), "hello over quic\n");

    for url in [server.address("tcp"), server.address("quic")] {
        let stream = liaison()
            .args(["--json", "connect", url, "--psk-file", &fixture.key()])
            .args(["--stream", "500", "--size", "100", "--mode", "ordered"])
            .args(&ca)
            .output()
            .unwrap();
        assert!(stream.status.success(), "{url}: {}", stderr(&stream));
        let report: Value = serde_json::from_str(stdout(&stream).trim()).unwrap();
        assert_eq!(report["received"], 500, "{report}");
        assert_eq!(report["bytes"], 500 * 108, "{report}");
        assert_eq!(report["intact"], true, "{report}");
    }
    let (last, clean) = server.interrupt();
    assert!(clean);
    assert_eq!(last["event"], "shutdown");
}

#[test]
fn quic_datagrams_need_a_sequenced_session() {
    let fixture = Fixture::new();
    let server = fixture.serve(&["quic+dgram://127.0.0.1:0"], &[]);
    let url = server.address("quic+dgram");
    // Ordered by default over datagrams; --insecure skips the certificate check.
    let stream = liaison()
        .args([
            "--json",
            "connect",
            url,
            "--psk-file",
            &fixture.key(),
            "--insecure",
        ])
        .args(["--stream", "300", "--size", "400"])
        .output()
        .unwrap();
    assert!(stream.status.success(), "{}", stderr(&stream));
    let report: Value = serde_json::from_str(stdout(&stream).trim()).unwrap();
    assert_eq!(report["received"], 300, "{report}");
    assert_eq!(report["intact"], true, "{report}");
    let unsequenced = fixture.connect(
        url,
        &["--insecure", "--mode", "none", "--call", "echo", "x"],
    );
    assert!(!unsequenced.status.success());
    assert!(
        stderr(&unsequenced).contains("reliable transport"),
        "{}",
        stderr(&unsequenced)
    );
}

#[test]
fn interactive_commands_over_a_unix_socket() {
    let fixture = Fixture::new();
    let socket = format!("unix://{}", fixture.path("liaison.sock").display());
    let server = fixture.serve(&[&socket], &[]);
    let mut client = liaison()
        .args([
            "--json",
            "connect",
            server.address("unix"),
            "--psk-file",
            &fixture.key(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    client
        .stdin
        .take()
        .unwrap()
        .write_all(b"call first\nsend one\nsend two\nstream 20 0\nstats\nstate put k v w\nstate get k\nnonsense\nquit\n")
        .unwrap();
    let output = client.wait_with_output().unwrap();
    let lines: Vec<Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shown = format!("{}\n{}", stdout(&output), stderr(&output));
    assert_eq!(lines.len(), 9, "{shown}");
    assert_eq!(lines[0]["event"], "connected", "{shown}");
    assert_eq!(lines[0]["peer"], "psk:liaison:liaison-server", "{shown}");
    assert_eq!(lines[1]["reply"], "first", "{shown}");
    assert_eq!(lines[2]["reply"], "one", "{shown}");
    assert_eq!(lines[3]["reply"], "two", "{shown}");
    assert_eq!(lines[4]["received"], 20, "{shown}");
    assert_eq!(lines[5]["command"], "stats", "{shown}");
    // The echo exchange opened by `send` is still open when `stats` runs.
    assert_eq!(lines[5]["outgoing"], 1, "{shown}");
    assert!(
        lines[6]["version"].as_u64().is_some_and(|v| v >= 1),
        "{shown}"
    );
    assert_eq!(lines[7]["value"], "v w", "{shown}");
    assert_eq!(lines[7]["version"], lines[6]["version"], "{shown}");
    assert_eq!(lines[8]["event"], "closed", "{shown}");
    // The unknown command is reported and makes the exit code non-zero.
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("unknown command `nonsense`"),
        "{}",
        stderr(&output)
    );
    drop(server);
}

#[test]
fn ctrl_c_closes_every_session_with_a_bye() {
    let fixture = Fixture::new();
    let server = fixture.serve(&["tcp://127.0.0.1:0"], &[]);
    let mut client = liaison()
        .args([
            "--json",
            "connect",
            server.address("tcp"),
            "--psk-file",
            &fixture.key(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut client_out = BufReader::new(client.stdout.take().unwrap());
    assert_eq!(read_json(&mut client_out)["event"], "connected");

    let (last, clean) = server.interrupt();
    assert!(clean, "the server exits 0 on Ctrl-C");
    assert_eq!(last["sessions_closed"], 1, "{last}");
    let output = client.wait_with_output().unwrap();
    assert!(!output.status.success());
    let error = stderr(&output);
    assert!(
        error.contains("closed (remote): server shutting down"),
        "the client sees the server's Bye: {error}"
    );
}

#[test]
fn failures_are_one_line_and_a_non_zero_exit() {
    let fixture = Fixture::new();
    let server = fixture.serve(&["tcp://127.0.0.1:0", "quic://127.0.0.1:0"], &[]);
    std::fs::write(fixture.path("wrong"), "ffeeddccbbaa99887766554433221100").unwrap();

    let wrong_key = liaison()
        .args(["connect", server.address("tcp"), "--call", "echo", "x"])
        .args(["--psk-file", &fixture.path("wrong").display().to_string()])
        .output()
        .unwrap();
    let no_ca = fixture.connect(server.address("quic"), &["--call", "echo", "x"]);
    let unknown = fixture.connect(server.address("tcp"), &["--call", "nothing", "x"]);
    let memory = liaison()
        .args(["serve", "--listen", "mem://x", "--no-auth"])
        .output()
        .unwrap();
    for (what, output, needle) in [
        ("wrong key", &wrong_key, "auth"),
        ("quic without --ca", &no_ca, "--ca"),
        ("unknown service", &unknown, "nothing"),
        ("serve on mem://", &memory, "in-memory"),
    ] {
        assert!(!output.status.success(), "{what} must fail");
        let error = stderr(output);
        assert_eq!(error.lines().count(), 1, "{what}: one line: {error}");
        assert!(error.starts_with("liaison: "), "{what}: {error}");
        assert!(error.contains(needle), "{what}: {error}");
    }
    drop(server);
}

#[test]
fn the_demo_exits_zero_with_its_table() {
    let output = liaison()
        .args(["demo", "--exchanges", "20", "--messages", "4"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    let table = text.split("Summary").nth(1).expect("a summary table");
    let header = table.lines().find(|l| l.starts_with("transport")).unwrap();
    for column in [
        "handshake",
        "exchanges",
        "messages",
        "resumes",
        "lost",
        "duplicated",
        "aborted as expected",
    ] {
        assert!(header.contains(column), "{header}");
    }
    for transport in ["memory", "tcp", "unix", "quic"] {
        assert!(
            table.lines().any(|l| l.starts_with(transport)),
            "a row for {transport}: {table}"
        );
    }
    assert!(table.contains("100 of 100"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("memory, state under a lock")),
        "{table}"
    );
}

#[test]
fn state_put_and_get_survive_a_server_restart_on_redb() {
    let fixture = Fixture::new();
    let store = format!("redb:{}", fixture.path("states.redb").display());
    let server = fixture.serve(&["tcp://127.0.0.1:0"], &["--store", &store]);
    assert_eq!(server.ready["store"], store.as_str());
    let state = |server: &Server, args: &[&str]| {
        liaison()
            .args(["--json", "state"])
            .arg(args[0])
            .arg(server.address("tcp"))
            .args(["--psk-file", &fixture.key()])
            .args(&args[1..])
            .output()
            .unwrap()
    };
    let put = state(&server, &["put", "cart", "apples and pears"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let put: Value = serde_json::from_str(stdout(&put).trim()).unwrap();
    assert_eq!(put["version"], 1);
    let again = state(&server, &["put", "cart", "apples, pears and figs"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let (_, clean) = server.interrupt();
    assert!(clean);

    // A new server process on the same file still has the state.
    let server = fixture.serve(&["tcp://127.0.0.1:0"], &["--store", &store]);
    let get = state(&server, &["get", "cart"]);
    assert!(get.status.success(), "{}", stderr(&get));
    let get: Value = serde_json::from_str(stdout(&get).trim()).unwrap();
    assert_eq!(get["value"], "apples, pears and figs");
    assert_eq!(get["version"], 2);

    let missing = state(&server, &["get", "nothing"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("no state"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn a_resumable_client_survives_its_server_process_restarting() {
    let fixture = Fixture::new();
    let store = format!("redb:{}", fixture.path("sessions.redb").display());
    resume_across_server_processes(&fixture, &store);
}

/// Two server processes of a fleet sharing one Redis: the first dies, the second takes its
/// address, and the client resumes its session there.
#[test]
fn a_resumable_client_resumes_on_a_second_server_process_sharing_redis() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let redis = runtime
        .block_on(liaison_resume::LocalRedis::start())
        .expect("redis-server on PATH (xtask ci installs it)");
    resume_across_server_processes(&Fixture::new(), &redis.url());
    redis.stop().unwrap();
}

/// A `--resume` client writes a state through a server process on `store`; that process is
/// killed, a second one starts on the same address and store, and the client goes on with
/// the same session, resumed once, and reads its state back.
fn resume_across_server_processes(fixture: &Fixture, store: &str) {
    let first = fixture.serve(&["tcp://127.0.0.1:0"], &["--store", store]);
    let address = first.address("tcp").to_string();
    let mut client = liaison()
        .args([
            "--json",
            "connect",
            &address,
            "--psk-file",
            &fixture.key(),
            "--resume",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = client.stdin.take().unwrap();
    let mut output = BufReader::new(client.stdout.take().unwrap());
    let connected = read_json(&mut output);
    assert_eq!(connected["resumable"], true, "{connected}");
    writeln!(input, "state put cart apples").unwrap();
    let put = read_json(&mut output);
    assert_eq!(put["command"], "state put", "{put}");

    // The server process dies without a word (SIGKILL); a new one opens the same store on
    // the same address.
    drop(first);
    assert_eq!(read_json(&mut output)["event"], "detached");
    let second = fixture.serve(&[&address], &["--store", store]);
    let resumed = read_json(&mut output);
    assert_eq!(resumed["event"], "resumed", "{resumed}");
    assert_eq!(resumed["restarts"], 1, "{resumed}");

    // The same session goes on, and the state written before the restart is there.
    writeln!(input, "call still here\nstate get cart\nstats\nquit").unwrap();
    assert_eq!(read_json(&mut output)["reply"], "still here");
    let got = read_json(&mut output);
    assert_eq!(got["value"], "apples");
    assert_eq!(got["version"], put["version"]);
    let stats = read_json(&mut output);
    assert_eq!(stats["session"], connected["session"], "the same session");
    assert_eq!(stats["resumes"], 1);
    assert_eq!(read_json(&mut output)["event"], "closed");
    assert!(client.wait().unwrap().success());
    drop(second);
}

#[test]
fn two_servers_on_one_redis_share_session_states() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let redis = runtime
        .block_on(liaison_resume::LocalRedis::start())
        .expect("redis-server on PATH (xtask ci installs it)");
    let fixture = Fixture::new();
    let store = redis.url();
    let a = fixture.serve(&["tcp://127.0.0.1:0"], &["--store", &store]);
    let b = fixture.serve(&["tcp://127.0.0.1:0"], &["--store", &store]);
    let state = |server: &Server, args: &[&str]| {
        liaison()
            .args(["--json", "state", args[0], server.address("tcp")])
            .args(["--psk-file", &fixture.key()])
            .args(&args[1..])
            .output()
            .unwrap()
    };
    let put = state(&a, &["put", "fleet", "written through a"]);
    assert!(put.status.success(), "{}", stderr(&put));
    let put: Value = serde_json::from_str(stdout(&put).trim()).unwrap();
    let get = state(&b, &["get", "fleet"]);
    assert!(get.status.success(), "{}", stderr(&get));
    let get: Value = serde_json::from_str(stdout(&get).trim()).unwrap();
    assert_eq!(get["value"], "written through a", "read through b");
    assert_eq!(get["version"], put["version"]);
    drop((a, b));
    redis.stop().unwrap();
}

//! Shared by the tests that run `hearth` as a real process: a guard that kills and reaps the
//! child on every way out, and starting / stopping `hearth serve`.
#![allow(dead_code)] // each test binary uses its own subset

pub mod cluster;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// How long a process may take to start or stop.
pub const LIMIT: Duration = Duration::from_secs(20);

/// Kills (and reaps) the child on every way out of a test.
pub struct Guard(pub Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `hearth` binary, without a data dir inherited from the environment.
pub fn hearth() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hearth"));
    c.env_remove("HEARTH_DATA_DIR");
    c
}

/// A running `hearth serve`: its guard, the stdout lines up to and including `running…`, and
/// the rest of stdout as it comes.
pub struct Serve {
    pub child: Guard,
    pub startup: Vec<String>,
    pub lines: Receiver<String>,
}

/// Flags that put a node's listeners on free loopback ports.
pub const FREE_PORTS: [&str; 4] = ["--http", "127.0.0.1:0", "--p2p", "/ip4/127.0.0.1/tcp/0"];

/// Starts `hearth serve --data-dir DATA` on free loopback ports and waits (at most [`LIMIT`])
/// until it reports running.
pub fn start_serve(data: &Path) -> Serve {
    start_serve_with(data, &[])
}

/// Like [`start_serve`] with extra flags.
pub fn start_serve_with(data: &Path, extra: &[&str]) -> Serve {
    let args: Vec<&str> = FREE_PORTS.iter().chain(extra).copied().collect();
    start_serve_args(data, &args)
}

/// A loopback TCP port free right now (for a node that must come back on the same address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Like [`start_serve`] with exactly these flags after `--data-dir DATA` (listeners included).
pub fn start_serve_args(data: &Path, args: &[&str]) -> Serve {
    use std::io::{BufRead, BufReader};
    let mut child = Guard(
        hearth()
            .args(["serve", "--data-dir"])
            .arg(data)
            .args(args)
            .stdout(Stdio::piped())
            // HEARTH_TEST_LOGS=1 shows the nodes' diagnostics when debugging a test.
            .stderr(if std::env::var_os("HEARTH_TEST_LOGS").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("spawn hearth serve"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + LIMIT;
    let mut startup: Vec<String> = Vec::new();
    while !startup.iter().any(|l| l.starts_with("running")) {
        let left = deadline.saturating_duration_since(Instant::now());
        startup.push(
            rx.recv_timeout(left)
                .unwrap_or_else(|e| panic!("serve did not report running ({e}): {startup:?}")),
        );
    }
    Serve {
        child,
        startup,
        lines: rx,
    }
}

impl Serve {
    /// The HTTP base URL the node reported (`http listening on URL`).
    pub fn http_url(&self) -> String {
        self.startup
            .iter()
            .find_map(|l| l.strip_prefix("http listening on "))
            .unwrap_or_else(|| panic!("no http line in {:?}", self.startup))
            .to_string()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// Sends SIGTERM and waits (at most [`LIMIT`]) for the process to exit.
pub fn sigterm_and_wait(child: &mut Guard) -> ExitStatus {
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let start = Instant::now();
    loop {
        if let Some(s) = child.0.try_wait().expect("try_wait") {
            return s;
        }
        assert!(start.elapsed() < LIMIT, "serve did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `hearth ARGS` to completion with no `HEARTH_*` or `RUST_LOG` variables, killing it
/// (and failing the test) after `limit`; stdout and stderr are collected.
pub fn run_hearth(args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hearth"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The caller's environment must not change what the flags say.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("HEARTH_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    let mut child = cmd.spawn().expect("spawn hearth");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hearth {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().expect("stdout thread"),
        stderr: err_t.join().expect("stderr thread"),
    }
}

//! `hearth serve`: starts on an empty data dir, holds the lock, stops cleanly on SIGTERM.

mod common;

use common::{hearth, sigterm_and_wait, start_serve};

#[test]
fn serve_starts_locks_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let mut serve = start_serve(&data);
    let lines = &serve.startup;
    assert!(lines[0].contains("(founded)"), "{lines:?}");
    assert!(data.join("log").is_dir());

    // a second node on the same data dir is refused with one readable line
    let second = hearth()
        .args(["serve", "--data-dir"])
        .arg(&data)
        .args(common::FREE_PORTS)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.starts_with("error: ") && err.contains("lock"), "{err}");

    let status = sigterm_and_wait(&mut serve.child);
    assert_eq!(status.code(), Some(0));
    let rest: Vec<String> = serve.lines.try_iter().collect();
    assert!(rest.iter().any(|l| l == "stopped cleanly"), "{rest:?}");
}

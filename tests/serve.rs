//! `hearth serve`: starts on an empty data dir, holds the lock, stops cleanly on SIGTERM; and
//! `hearth put` / `hearth get` against it.

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

#[test]
fn put_and_get_a_file_through_a_running_node() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = common::start_serve_with(&dir.path().join("node"), &["--erasure", "2+1"]);
    let url = serve.http_url();
    let file = dir.path().join("photo.jpg");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    std::fs::write(&file, &data).unwrap();

    let put = hearth()
        .args(["put", "--wait", "durable", "--server", &url])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let stdout = String::from_utf8_lossy(&put.stdout);
    let hash = stdout.lines().last().unwrap().to_string();
    assert_eq!(hash, blake3::hash(&data).to_hex().as_str());
    assert!(stdout.contains("2+1, durable at log index"), "{stdout}");

    let out = dir.path().join("copy.jpg");
    let get = hearth()
        .args(["get", &hash, "--server", &url, "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        get.status.success(),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert!(std::fs::read(&out).unwrap() == data);

    let status = hearth()
        .args(["status", &hash, "--server", &url])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("code     2+1") && text.contains("intact"),
        "{text}"
    );
    let json = hearth()
        .args(["status", &hash, "--json", "--server", &url])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["shards"].as_array().map(Vec::len), Some(3));

    let rm = hearth()
        .args(["rm", &hash, "--server", &url])
        .output()
        .unwrap();
    assert!(
        rm.status.success(),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    assert!(String::from_utf8_lossy(&rm.stdout).starts_with("deleted "));
    let gone = hearth()
        .args(["get", &hash, "--server", &url])
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("410"));

    // Bad input: one readable line, exit 1, no output file.
    let missing = dir.path().join("missing.bin");
    let missing_s = missing.to_str().unwrap();
    let unknown = "ab".repeat(32);
    for (args, says) in [
        (vec!["get", "xyz", "-o", missing_s], "is not a blob hash"),
        (vec!["get", &unknown, "-o", missing_s], "404"),
        (vec!["put", "/no/such/file"], "cannot open /no/such/file"),
    ] {
        let o = hearth()
            .args(&args)
            .args(["--server", &url])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(!missing.exists() && !dir.path().join("missing.bin.part").exists());
    }
    assert_eq!(sigterm_and_wait(&mut serve.child).code(), Some(0));
}

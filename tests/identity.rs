//! The node identity: created 0600 and crash-safely, reloaded unchanged, refused when damaged,
//! of another key type or too widely readable; `hearth id` never creates one and prints the
//! same PeerId that `hearth serve` reported at start.

use hearth_services::identity::{verify, IdentityError, NodeIdentity};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{hearth, sigterm_and_wait, start_serve, Guard, LIMIT};

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs a short command to completion within [`LIMIT`] (killed otherwise).
fn run(cmd: &mut Command) -> Output {
    let mut child = Guard(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hearth"),
    );
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(start.elapsed() < LIMIT, "command did not finish: {cmd:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.0.stdout.take() {
        o.read_to_string(&mut stdout).expect("read stdout");
    }
    if let Some(mut e) = child.0.stderr.take() {
        e.read_to_string(&mut stderr).expect("read stderr");
    }
    Output {
        code: status.code(),
        stdout,
        stderr,
    }
}

fn hearth_id(data: &Path, json: bool) -> Output {
    let mut cmd = hearth();
    cmd.args(["id", "--data-dir"]).arg(data);
    if json {
        cmd.arg("--json");
    }
    run(&mut cmd)
}

fn key_file(data: &Path) -> std::path::PathBuf {
    data.join("identity.key")
}

/// stderr is exactly one line `error: …` containing `needle`.
fn assert_one_error_line(out: &Output, needle: &str) {
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert!(out.stdout.is_empty(), "stdout: {}", out.stdout);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{:?}", out.stderr);
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{:?} lacks {needle:?}",
        lines[0]
    );
}

#[test]
fn created_0600_without_tmp_and_reloaded_unchanged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, created) = NodeIdentity::load_or_create(dir.path()).expect("create");
    assert!(created);
    let meta = std::fs::metadata(key_file(dir.path())).expect("key file exists");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["identity.key"], "no .tmp may remain");

    let (again, created) = NodeIdentity::load_or_create(dir.path()).expect("load");
    assert!(!created);
    assert_eq!(again.peer_id(), id.peer_id());
    assert_eq!(again.public_key_bytes(), id.public_key_bytes());
    let loaded = NodeIdentity::load(dir.path())
        .expect("load")
        .expect("present");
    assert_eq!(loaded.peer_id(), id.peer_id());
    assert_eq!(loaded.keypair().public().to_peer_id(), id.peer_id());

    // `hearth id` agrees, in both formats
    let out = hearth_id(dir.path(), false);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, format!("{}\n", id.peer_id()));
    let out = hearth_id(dir.path(), true);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(doc["peer_id"], id.peer_id().to_base58());
    let hex: String = id
        .public_key_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(doc["public_key_hex"], hex);
}

#[test]
fn concurrent_creators_agree_on_one_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let results: Vec<(String, bool)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let (id, created) = NodeIdentity::load_or_create(dir.path()).expect("create");
                    (id.peer_id().to_base58(), created)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    assert!(
        results.iter().all(|(p, _)| *p == results[0].0),
        "{results:?}"
    );
    let on_disk = NodeIdentity::load(dir.path())
        .expect("load")
        .expect("present");
    assert_eq!(on_disk.peer_id().to_base58(), results[0].0);
}

#[test]
fn stale_tmp_from_a_crash_is_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("identity.key.tmp"), b"half a key").expect("write");
    let (id, created) = NodeIdentity::load_or_create(dir.path()).expect("create");
    assert!(created);
    assert!(!dir.path().join("identity.key.tmp").exists());
    let loaded = NodeIdentity::load(dir.path())
        .expect("load")
        .expect("present");
    assert_eq!(loaded.peer_id(), id.peer_id());
}

#[test]
fn corrupted_key_is_malformed_and_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    NodeIdentity::load_or_create(dir.path()).expect("create");
    let path = key_file(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).expect("write");

    match NodeIdentity::load_or_create(dir.path()) {
        Err(IdentityError::Malformed { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Malformed, got {other:?}"),
    }
    // garbage, and an empty file, too
    for junk in [&b"\xff\xfe\xfd not a key"[..], b""] {
        std::fs::write(&path, junk).expect("write");
        assert!(matches!(
            NodeIdentity::load(dir.path()),
            Err(IdentityError::Malformed { .. })
        ));
    }
    let out = hearth_id(dir.path(), false);
    assert_one_error_line(&out, &path.display().to_string());
    assert!(out.stderr.contains("malformed"), "{}", out.stderr);
}

#[test]
fn another_key_type_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = key_file(dir.path());
    // libp2p's PrivateKey { Type = Secp256k1 (2), Data = 32 bytes }
    let mut bytes = vec![0x08, 0x02, 0x12, 32];
    bytes.extend([0x42; 32]);
    std::fs::write(&path, &bytes).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    match NodeIdentity::load_or_create(dir.path()) {
        Err(IdentityError::NotEd25519 { path: p }) => assert_eq!(p, path),
        other => panic!("expected NotEd25519, got {other:?}"),
    }
    // and it was left alone
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

#[test]
fn loose_permissions_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    NodeIdentity::load_or_create(dir.path()).expect("create");
    let path = key_file(dir.path());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = NodeIdentity::load_or_create(dir.path()).expect_err("must refuse");
    match &err {
        IdentityError::BadPermissions { path: p, mode } => {
            assert_eq!(p, &path);
            assert_eq!(*mode, 0o644);
        }
        other => panic!("expected BadPermissions, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("644") && msg.contains("chmod 600"), "{msg}");

    let out = hearth_id(dir.path(), false);
    assert_one_error_line(&out, "chmod 600");
    assert!(out.stderr.contains(&path.display().to_string()));
}

#[test]
fn sign_verify_round_trip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (id, _) = NodeIdentity::load_or_create(dir.path()).expect("create");
    let msg = b"cluster 7: append 42";
    let sig = id.sign(msg);
    let pk = id.public_key_bytes();
    assert_eq!(pk.len(), 32);
    assert!(verify(&pk, msg, &sig));

    // the reloaded key signs the same way (ed25519 is deterministic)
    let reloaded = NodeIdentity::load(dir.path())
        .expect("load")
        .expect("present");
    assert_eq!(reloaded.sign(msg), sig);

    let mut flipped = sig.clone();
    flipped[0] ^= 1;
    assert!(!verify(&pk, msg, &flipped));
    assert!(!verify(&pk, b"cluster 7: append 43", &sig));
    let other = NodeIdentity::generate();
    assert!(!verify(&other.public_key_bytes(), msg, &sig));
    assert!(!verify(&pk[..31], msg, &sig));
    assert!(!verify(&pk, msg, &sig[..63]));
}

#[test]
fn id_on_a_fresh_dir_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = hearth_id(dir.path(), false);
    assert_one_error_line(
        &out,
        &format!(
            "no identity in {} (it is created by the first hearth serve)",
            dir.path().display()
        ),
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("read_dir").count(),
        0,
        "hearth id must not create anything"
    );
    let out = hearth_id(&dir.path().join("missing"), true);
    assert_one_error_line(&out, "does not exist");
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn serve_creates_the_identity_that_id_prints() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node");
    let mut serve = start_serve(&data);
    let lines = &serve.startup;
    let start_line = lines
        .iter()
        .find(|l| l.contains("peer id "))
        .unwrap_or_else(|| panic!("no peer id in {lines:?}"));
    let served = start_line
        .split("peer id ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .expect("peer id value")
        .to_string();
    assert!(served.starts_with("12D3Koo"), "{start_line}");

    let status = sigterm_and_wait(&mut serve.child);
    assert_eq!(status.code(), Some(0));

    let mode = std::fs::metadata(key_file(&data))
        .expect("serve created the key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = hearth_id(&data, false);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout.trim_end(), served);
    assert_eq!(out.stdout.lines().count(), 1);
}

//! `hearth audit`, `hearth replay`, `hearth status --data-dir` and the `log dump` filters, end
//! to end: a real `hearth serve` child process takes a small workload (events, a sharded and an
//! inline blob, a signed `ManifestVerified`, a delete that gets redacted), is stopped with
//! SIGTERM, and the offline commands run as child processes against its data directory — clean,
//! after a flipped byte (exit 2), with a forged signature (exit 3) and with a hand-edited
//! projection value (exit 4). Every child is killed after a deadline.

mod common;

use common::{sigterm_and_wait, start_serve};
use hearth_log::Log;
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{BlobAccepted, Envelope};
use hearth_services::paths::{log_dir, projection_store_dir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

/// Longest a command may take.
const LIMIT: Duration = Duration::from_secs(60);

/// Run `hearth ARGS` with no `HEARTH_*` variables, killing it after [`LIMIT`].
fn hearth(args: &[&str]) -> Output {
    common::run_hearth(args, LIMIT)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A stopped node's data directory after [`workload`].
struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    /// The node's PeerId.
    peer: String,
    /// A sharded blob (with a ManifestVerified) and its acceptance's index.
    sharded: String,
    /// An inline blob, deleted later: its acceptance's and deletion's indexes.
    inline: String,
    inline_index: u64,
    deleted_index: u64,
    /// Index of the ManifestVerified.
    verified_index: u64,
}

/// How the workload's `ManifestVerified` is made.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signature {
    Good,
    Forged,
}

use common::cluster::post_event as post;

/// An envelope the node completes (origin, request id, clock).
fn bare(event: Event) -> Envelope {
    Envelope {
        schema_version: hearth_proto::SCHEMA_VERSION,
        event: Some(event),
        ..Default::default()
    }
}

/// The `BlobAccepted` of `hash` in the log of `data` (read-only, while the node runs).
fn accepted(data: &Path, hash: &[u8]) -> BlobAccepted {
    let log = Log::open_read_only(log_dir(data)).expect("open log read-only");
    let mut found = None;
    log.scan(.., |rec| {
        if let Ok(entry) = hearth_raft::codec::decode_record(&rec) {
            if let openraft::EntryPayload::Normal(p) = entry.payload {
                for e in &p.envelopes {
                    if let Ok(Envelope {
                        event: Some(Event::BlobAccepted(acc)),
                        ..
                    }) = hearth_proto::decode_envelope(e)
                    {
                        if acc.blob_hash[..] == hash[..] {
                            found = Some(acc);
                        }
                    }
                }
            }
        }
        Ok(true)
    })
    .expect("scan");
    found.expect("the blob's BlobAccepted is in the log")
}

/// Whether any record of the log of `data` is redacted.
fn any_redacted(data: &Path) -> bool {
    let log = Log::open_read_only(log_dir(data)).expect("open log read-only");
    log.verify(..).expect("verify").redacted > 0
}

/// `hearth put FILE` against `url`: the hash and the log index it reports.
fn put(url: &str, file: &Path) -> (String, u64) {
    // Durable: the replication worker's placement is in the log before the node stops.
    let out = hearth(&["put", "--wait", "durable", "--server", url, path_str(file)]);
    assert!(out.status.success(), "put: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let hash = stdout.lines().last().expect("hash line").to_string();
    let index = stdout
        .split("log index ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("log index in put's output");
    (hash, index)
}

/// Serves a node, writes the workload, optionally waits for the deleted inline blob to be
/// redacted from the log, and stops the node with SIGTERM.
fn workload(signature: Signature, wait_redacted: bool) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node");
    let mut serve = start_serve(&data);
    let url = serve.http_url();
    let peer = serve
        .startup
        .iter()
        .find_map(|l| l.split("peer id ").nth(1))
        .and_then(|s| s.split(',').next())
        .expect("peer id in the startup line")
        .to_string();

    let big = dir.path().join("big.bin");
    std::fs::write(
        &big,
        (0..100_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>(),
    )
    .expect("write file");
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"a small blob, carried inline").expect("write file");
    let (sharded, _) = put(&url, &big);
    let (inline, inline_index) = put(&url, &small);
    let sharded_bytes = hearth_services::hex::decode(&sharded).expect("hex");
    let acc = accepted(&data, &sharded_bytes);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let verified_index = rt.block_on(async {
        let c = reqwest::Client::new();
        for seed in [1, 3, 5] {
            common::cluster::post_sample(&c, &url, seed).await;
        }
        let key = libp2p_identity::ed25519::Keypair::generate();
        let mut mv = hearth_projections::manifest::sign(&key, &acc);
        if signature == Signature::Forged {
            let mut sig = mv.signature.to_vec();
            sig[0] ^= 0x01;
            mv.signature = sig.into();
        }
        post(&c, &url, &bare(Event::ManifestVerified(mv)))
            .await
            .index
    });

    // A document with two changes: the audit covers documents too.
    let out = hearth(&["doc", "create", "--server", &url, "{\"topic\": \"audit\"}"]);
    assert!(out.status.success(), "doc create: {}", text(&out.stderr));
    let doc = text(&out.stdout).trim().to_string();
    let out = hearth(&[
        "doc",
        "put",
        &doc,
        "--server",
        &url,
        "{\"topic\": \"audited\"}",
    ]);
    assert!(out.status.success(), "doc put: {}", text(&out.stderr));

    let out = hearth(&["rm", "--server", &url, &inline]);
    assert!(out.status.success(), "rm: {}", text(&out.stderr));
    let deleted_index: u64 = text(&out.stdout)
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("rm prints the index");

    // The audit refuses a running node, in one line.
    let out = hearth(&["audit", "--data-dir", path_str(&data)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("error: a node is running"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    if wait_redacted {
        // Every member's collector redacts a deleted inline blob's bytes (every 5 s).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !any_redacted(&data) {
            assert!(
                Instant::now() < deadline,
                "the deleted blob was never redacted"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let status = sigterm_and_wait(&mut serve.child);
    assert!(status.success(), "serve exit: {status:?}");
    Fixture {
        _dir: dir,
        data,
        peer,
        sharded,
        inline,
        inline_index,
        deleted_index,
        verified_index,
    }
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("JSON ({e}): {} / {}", text(&out.stdout), text(&out.stderr)))
}

/// Every file under `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                todo.push(e.path());
            }
            out.push((e.path(), m.len(), m.modified().expect("mtime")));
        }
    }
    out.sort();
    out
}

#[test]
fn audit_after_a_workload_matches_and_changes_nothing() {
    let f = workload(Signature::Good, true);
    let d = path_str(&f.data);
    let scratch = tempfile::tempdir().expect("scratch");
    let before = listing(&f.data);

    let out = hearth(&[
        "audit",
        "--data-dir",
        d,
        "--json",
        "--scratch-dir",
        path_str(scratch.path()),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["exit_code"], 0);
    assert!(v["log"]["redacted"].as_u64() >= Some(1), "{v}");
    assert_eq!(v["log"]["entries"], v["events"]["entries"]);
    let kinds = &v["events"]["kinds"];
    for kind in [
        "BlobAccepted",
        "ShardPlaced",
        "PeerSeen",
        "ManifestVerified",
        "BlobDeleted",
    ] {
        assert!(kinds[kind].as_u64() >= Some(1), "{kind} in {kinds}");
    }
    assert_eq!(v["signatures"]["checked"], 1, "{v}");
    assert_eq!(v["signatures"]["bad"], 0);
    assert_eq!(
        v["projections"]["live_applied"],
        v["projections"]["rebuilt_applied"]
    );
    let tables = v["projections"]["tables"].as_array().expect("tables");
    let names: Vec<&str> = tables.iter().filter_map(|t| t["table"].as_str()).collect();
    for name in [
        "blobs-3", "counts-1", "docs-2", "peers-1", "rejected", "requests",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    for t in tables {
        assert_eq!(t["matches"], true, "{t}");
        assert_eq!(t["live"], t["rebuilt"]);
        assert!(t["live"].as_str().is_some_and(|h| h.len() == 64));
    }
    assert_eq!(v["phases"].as_array().map(Vec::len), Some(4), "{v}");
    assert_eq!(
        std::fs::read_dir(scratch.path())
            .expect("read scratch")
            .count(),
        0,
        "the scratch directory is removed"
    );

    let out = hearth(&["audit", "--data-dir", d]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!("audit of {d}: OK")), "{stdout}");
    assert!(!stdout.contains("MISMATCH"), "{stdout}");
    assert_eq!(
        listing(&f.data),
        before,
        "the audit changed the data directory"
    );
}

/// The segment files of `data`'s log, oldest first.
fn segments(data: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(log_dir(data))
        .expect("read log dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

#[test]
fn a_flipped_byte_is_exit_2_naming_file_and_offset() {
    let f = workload(Signature::Good, false);
    let seg = segments(&f.data).into_iter().next().expect("a segment");
    let mut bytes = std::fs::read(&seg).expect("read segment");
    // The segment is preallocated with zeros: flip a byte halfway through what was written,
    // so batches follow it (damage, not a torn tail).
    let written = bytes
        .iter()
        .rposition(|&b| b != 0)
        .expect("data in the segment");
    bytes[written / 2] ^= 0x5a;
    std::fs::write(&seg, &bytes).expect("write segment");

    let out = hearth(&["audit", "--data-dir", path_str(&f.data)]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let name = seg
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        stderr.starts_with("error: ") && stderr.contains(&name),
        "{stderr}"
    );
    assert!(stderr.contains("offset"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_forged_manifest_verified_is_exit_3_naming_the_index() {
    let f = workload(Signature::Forged, false);
    let out = hearth(&["audit", "--data-dir", path_str(&f.data), "--json"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["signatures"]["checked"], 1);
    assert_eq!(v["signatures"]["bad"], 1);
    let bad = &v["signatures"]["bad_listed"][0];
    assert_eq!(bad["index"], f.verified_index, "{v}");
    assert_eq!(bad["blob"], f.sharded.as_str());
    assert!(
        bad["reason"]
            .as_str()
            .is_some_and(|r| r.contains("signature")),
        "{bad}"
    );
    // The projections still match: the signature is the only finding.
    assert!(v["projections"]["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .all(|t| t["matches"] == true));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: audit failed")
            && stderr.contains(&format!("index {}", f.verified_index)),
        "{stderr}"
    );
}

#[test]
fn a_hand_edited_projection_value_is_exit_4_naming_table_and_key() {
    let f = workload(Signature::Good, false);
    let store = projection_store_dir(&f.data);
    let key = hearth_projections::BlobIndexProjection::blob_key(
        &hearth_services::hex::decode(&f.sharded).expect("hex"),
    );
    let (old, new) = {
        let cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &store).expect("list cfs");
        let db = rocksdb::DB::open_cf(&rocksdb::Options::default(), &store, cfs).expect("open");
        let cf = db
            .cf_handle(hearth_projections::BlobIndexProjection::NAME)
            .expect("blob index column family");
        let old = db
            .get_cf(cf, &key)
            .expect("get")
            .expect("the blob's record");
        let mut new = old.clone();
        // Inside the first 256 bytes, which the report shows of each value.
        new[3] ^= 0x01;
        db.put_cf(cf, &key, &new).expect("put");
        db.flush_cf(cf).expect("flush");
        (old, new)
    };

    let out = hearth(&["audit", "--data-dir", path_str(&f.data), "--json"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let v = json_of(&out);
    let tables = v["projections"]["tables"].as_array().expect("tables");
    let bad: Vec<&Value> = tables.iter().filter(|t| t["matches"] == false).collect();
    assert_eq!(bad.len(), 1, "{v}");
    assert_eq!(bad[0]["table"], "blobs-3");
    let diff = &bad[0]["first_difference"];
    let hex = hearth_services::hex::encode;
    assert_eq!(diff["key"], hex(&key).as_str(), "{diff}");
    let shown = |v: &[u8]| hex(&v[..v.len().min(256)]);
    assert_eq!(diff["live"], shown(&new).as_str());
    assert_eq!(diff["rebuilt"], shown(&old).as_str());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("blobs-3") && stderr.contains(&hex(&key)),
        "{stderr}"
    );

    let out = hearth(&["audit", "--data-dir", path_str(&f.data)]);
    assert_eq!(out.status.code(), Some(4));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("MISMATCH") && stdout.contains(&hex(&key)),
        "{stdout}"
    );
}

#[test]
fn replay_to_an_index_shows_the_earlier_state() {
    let f = workload(Signature::Good, false);
    let d = path_str(&f.data);
    let root = tempfile::tempdir().expect("tempdir");
    let before = root.path().join("before-delete");
    let at = (f.deleted_index - 1).to_string();
    let out = hearth(&[
        "replay",
        "--data-dir",
        d,
        "--to",
        &at,
        "--out",
        path_str(&before),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = json_of(&out);
    assert_eq!(info["through"]["index"], f.deleted_index - 1, "{info}");
    assert!(before.join("REPLAY.json").is_file());

    let status =
        |dir: &Path, hash: &str| hearth(&["status", hash, "--data-dir", path_str(dir), "--json"]);
    // At the earlier index the inline blob is there; now it is deleted.
    let then = status(&before, &f.inline);
    assert!(then.status.success(), "{}", text(&then.stderr));
    let then = json_of(&then);
    assert_eq!(then["deleted"], false, "{then}");
    assert_eq!(then["accepted_index"], f.inline_index);
    assert_eq!(then["as_of_index"], f.deleted_index - 1);
    let now = json_of(&status(&f.data, &f.inline));
    assert_eq!(now["deleted"], true, "{now}");
    assert_eq!(now["deleted_index"], f.deleted_index);

    // Before its acceptance the blob is unknown: one line, exit 1.
    let early = root.path().join("before-accept");
    let at = (f.inline_index - 1).to_string();
    let out = hearth(&[
        "replay",
        "--data-dir",
        d,
        "--to",
        &at,
        "--out",
        path_str(&early),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = status(&early, &f.inline);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not in the blob index"),
        "{}",
        text(&out.stderr)
    );

    // --at the deletion's log time includes it; the replay through the log's end matches the
    // live store.
    let sharded = json_of(&status(&f.data, &f.sharded));
    assert_eq!(
        sharded["holders"].as_array().map(Vec::len),
        Some(1),
        "{sharded}"
    );
    let later = root.path().join("at-now");
    let out = hearth(&[
        "replay",
        "--data-dir",
        d,
        "--at",
        "2100-01-01T00:00:00Z",
        "--out",
        path_str(&later),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(json_of(&status(&later, &f.inline))["deleted"], true);

    // An OUT that is not empty, an index past the end: one line, exit 1, nothing written.
    let out = hearth(&[
        "replay",
        "--data-dir",
        d,
        "--to",
        "1",
        "--out",
        path_str(&before),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not empty"),
        "{}",
        text(&out.stderr)
    );
    let past = root.path().join("past");
    let out = hearth(&[
        "replay",
        "--data-dir",
        d,
        "--to",
        "100000",
        "--out",
        path_str(&past),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!past.exists());
    let out = hearth(&["replay", "--data-dir", d, "--out", path_str(&past)]);
    assert_eq!(out.status.code(), Some(64), "--to or --at is required");
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .expect("read root")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".hearth-replay")
        })
        .collect();
    assert!(leftovers.is_empty(), "temporary directories left behind");
}

/// `hearth log dump --json ARGS` as parsed lines.
fn dump(data: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["log", "dump", "--data-dir", path_str(data), "--json"];
    all.extend_from_slice(args);
    let out = hearth(&all);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[test]
fn log_dump_filters_by_kind_blob_peer_and_position() {
    let f = workload(Signature::Good, false);
    let all = dump(&f.data, &[]);
    let kinds = |lines: &[Value]| -> Vec<String> {
        lines
            .iter()
            .map(|l| l["kind"].as_str().unwrap_or("?").to_string())
            .collect()
    };

    let deleted = dump(&f.data, &["--kind", "BlobDeleted"]);
    assert_eq!(kinds(&deleted), ["BlobDeleted"]);
    assert_eq!(deleted[0]["index"], f.deleted_index);
    let two = dump(&f.data, &["--kind", "blobaccepted", "--kind", "PeerSeen"]);
    assert_eq!(two.len(), 2 + 3, "{:?}", kinds(&two));
    assert!(kinds(&two)
        .iter()
        .all(|k| k == "BlobAccepted" || k == "PeerSeen"));

    let by_blob = dump(&f.data, &["--blob", &f.sharded]);
    assert_eq!(
        kinds(&by_blob),
        ["BlobAccepted", "ShardPlaced", "ManifestVerified"],
        "{by_blob:?}"
    );
    let inline = dump(&f.data, &["--blob", &f.inline, "--kind", "BlobDeleted"]);
    assert_eq!(inline.len(), 1);

    // Every event's origin is the node: --peer keeps them all and drops the raft entries.
    let by_peer = dump(&f.data, &["--peer", &f.peer]);
    let events = all
        .iter()
        .filter(|l| !l["kind"].as_str().unwrap_or("").starts_with("Raft"))
        .count();
    assert_eq!(by_peer.len(), events);
    assert!(dump(
        &f.data,
        &[
            "--peer",
            "12D3KooWAZ2X7Vg3ZcZnHYqUwm8iUYSpWmD6JjLFBwshkW1XgCDV"
        ]
    )
    .is_empty());

    let since = f.inline_index.to_string();
    let until = f.deleted_index.to_string();
    let window = dump(&f.data, &["--since", &since, "--until", &until]);
    assert!(window.iter().all(|l| {
        let i = l["index"].as_u64().unwrap_or(0);
        i >= f.inline_index && i <= f.deleted_index
    }));
    assert_eq!(
        window.first().map(|l| l["kind"].clone()),
        Some("BlobAccepted".into())
    );
    assert_eq!(
        window.last().map(|l| l["kind"].clone()),
        Some("BlobDeleted".into())
    );
    // Log time: nothing is as old as 2001, everything is before 2100.
    assert!(dump(&f.data, &["--until", "2001-01-01T00:00:00Z"])
        .iter()
        .all(|l| l["kind"].as_str().unwrap_or("").starts_with("Raft")));
    assert_eq!(
        dump(&f.data, &["--since", "2001-01-01T00:00:00Z"]).len(),
        events
    );
    assert!(dump(&f.data, &["--since", "2100-01-01T00:00:00Z"]).is_empty());

    let out = hearth(&[
        "log",
        "dump",
        "--data-dir",
        path_str(&f.data),
        "--blob",
        "xyz",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).starts_with("error: --blob"),
        "{}",
        text(&out.stderr)
    );
    let out = hearth(&[
        "log",
        "dump",
        "--data-dir",
        path_str(&f.data),
        "--since",
        "soon",
    ]);
    assert_eq!(out.status.code(), Some(64));
}

#[test]
fn bench_audit_reports_every_figure_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = hearth(&[
        "bench",
        "audit",
        "--dir",
        path_str(dir.path()),
        "--events",
        "2000",
        "--signed",
        "50",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v = json_of(&out);
    assert_eq!(v["audit_ok"], true, "{v}");
    assert_eq!(v["log"]["entries"], 2100);
    let figures = v["figures"].as_array().expect("figures");
    assert_eq!(figures.len(), 4, "{v}");
    for f in figures {
        assert!(f["per_s"].as_f64().is_some_and(|x| x > 0.0), "{f}");
        assert!(f["ratio_to_baseline"].is_number(), "{f}");
    }
    assert!(v["baseline"]["overwrite_fdatasync_iops"].as_f64() > Some(0.0));
    assert!(v["audit_peak_rss_kib"].as_u64() > Some(0));
    assert_eq!(v["phases"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("read dir").count(),
        0,
        "the scratch directory is removed"
    );
}

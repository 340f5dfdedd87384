//! Model-based property test of the log on `SimVfs`.
//!
//! A random sequence of operations (appends, truncations, purges, metadata writes, redactions,
//! reopens and power losses) is run against the log and against a plain in-memory model; after
//! every step the log must read back exactly the model, and the hash chain is recomputed here,
//! independently of the log, from `GENESIS_CHAIN` (or the purge position).
//!
//! The same runs with 1 MiB segments and requests of hundreds of KiB, so the sparse index
//! gets points inside segments (every `INDEX_STRIDE`, 256 KiB) that truncations and purges cut.
//!
//! A third property injects a write or fsync failure at a random point: the failing request
//! must fail, the log must be poisoned from then on, and after a reopen (with or without power
//! loss) the log must equal the model either with or without the failed request.
//!
//! 64 cases each by default; `HEARTH_MODEL_CASES=n` runs more, `HEARTH_MODEL_TRACE=1` prints
//! every step of the sequential runs.

use bytes::Bytes;
use hearth_log::format::{MAX_META_LEN, RECORD_HEADER_LEN, SEGMENT_HEADER_FIXED};
use hearth_log::vfs::{SimFault, SimVfs};
use hearth_log::{
    chain_next, payload_hash, Entry, Hash, Log, LogError, LogOptions, LogPosition, OpenMode,
    Verification, GENESIS_CHAIN,
};
use proptest::prelude::*;
use std::collections::VecDeque;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

const DIR: &str = "/log";

/// How the log under test is configured.
#[derive(Debug, Clone, Copy)]
struct Cfg {
    segment_size: u64,
}

/// Tiny segments: rotation and segment deletion happen every few steps.
const SMALL: Cfg = Cfg {
    segment_size: 16 << 10,
};

/// Segments that hold batches past `INDEX_STRIDE` (256 KiB), so the sparse index gets points
/// inside segments, not only at their starts.
const LARGE: Cfg = Cfg {
    segment_size: 1 << 20,
};

impl Cfg {
    fn opts(self) -> LogOptions {
        LogOptions {
            segment_size: self.segment_size,
            prepare_in_background: false,
            ..LogOptions::default()
        }
    }

    /// The largest request the log accepts: mirrors `Log::open_with` (tiny segments leave
    /// room for a maximal segment header only at the 1 KiB floor).
    fn max_batch(self) -> usize {
        let header_room = (SEGMENT_HEADER_FIXED + MAX_META_LEN + 8) as u64;
        let o = self.opts();
        (o.max_batch_bytes as u64)
            .min(o.segment_size.saturating_sub(header_room + 64))
            .max(1024) as usize
    }

    fn open(self, vfs: &Arc<SimVfs>) -> Log {
        Log::open_with(
            Path::new(DIR),
            self.opts(),
            OpenMode::ReadWrite,
            vfs.clone(),
        )
        .expect("open log")
    }
}

// ---------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct MEntry {
    index: u64,
    term: u64,
    /// The payload as it reads now (redacted ranges zeroed).
    payload: Vec<u8>,
    /// blake3 of the payload as appended.
    hash: Hash,
    chain: Hash,
    redacted: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    /// The position before the first live entry (`None`: the chain starts at genesis).
    base: Option<LogPosition>,
    entries: VecDeque<MEntry>,
    purged: Option<LogPosition>,
    meta: Option<Vec<u8>>,
    /// Highest term used so far (terms only grow in the generated operations).
    term: u64,
}

impl Model {
    fn last(&self) -> Option<LogPosition> {
        self.entries.back().map(|e| LogPosition {
            index: e.index,
            term: e.term,
            chain: e.chain,
        })
    }

    fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    /// The index the next append must have (`None`: fresh, any index is accepted).
    fn expected_next(&self) -> Option<u64> {
        self.last().or(self.base).map(|p| p.index + 1)
    }

    fn head_chain(&self) -> Hash {
        self.last().or(self.base).map_or(GENESIS_CHAIN, |p| p.chain)
    }

    fn get(&self, index: u64) -> Option<&MEntry> {
        let first = self.first_index()?;
        let i = index.checked_sub(first)?;
        self.entries.get(usize::try_from(i).ok()?)
    }

    fn pos(&self, index: u64) -> Option<LogPosition> {
        self.get(index).map(|e| LogPosition {
            index: e.index,
            term: e.term,
            chain: e.chain,
        })
    }

    fn push(&mut self, index: u64, term: u64, payload: &[u8]) {
        let hash = payload_hash(payload);
        let chain = chain_next(&self.head_chain(), index, term, &hash);
        self.entries.push_back(MEntry {
            index,
            term,
            payload: payload.to_vec(),
            hash,
            chain,
            redacted: false,
        });
        self.term = self.term.max(term);
    }

    /// Removes every entry after `index`.
    fn keep_through(&mut self, index: u64) {
        while self.entries.back().is_some_and(|e| e.index > index) {
            self.entries.pop_back();
        }
    }

    /// Removes every entry through `index` and records the purge.
    fn purge(&mut self, pos: LogPosition) {
        while self.entries.front().is_some_and(|e| e.index <= pos.index) {
            self.entries.pop_front();
        }
        self.base = Some(pos);
        self.purged = Some(pos);
        self.term = self.term.max(pos.term);
    }

    /// A window of interesting indexes around the live range, for selecting operands.
    fn window(&self) -> (u64, u64) {
        match (self.first_index(), self.last()) {
            (Some(f), Some(l)) => (f.saturating_sub(3), l.index + 3),
            _ => {
                let n = self.expected_next().unwrap_or(0);
                (n.saturating_sub(3), n + 3)
            }
        }
    }

    fn select(&self, sel: u16) -> u64 {
        let (lo, hi) = self.window();
        lo + u64::from(sel) % (hi - lo + 1)
    }
}

/// Deterministic payload bytes: mostly non-zero so that redacted (zeroed) ranges show.
fn payload(len: u16, seed: u8) -> Vec<u8> {
    (0..usize::from(len))
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

/// A generated operation; operands are resolved against the model when it runs.
#[derive(Debug, Clone)]
enum OpSpec {
    Append {
        sizes: Vec<(u16, u8)>,
        bump: u8,
        fresh_first: u16,
    },
    /// An append that does not continue the log (ignored on a fresh log, which accepts any).
    AppendWrong {
        skip: u8,
    },
    AppendNext {
        sizes: Vec<(u16, u8)>,
        bump: u8,
    },
    /// Many entries of `len` bytes in one request (for large segments).
    AppendBulk {
        n: u16,
        len: u16,
        bump: u8,
    },
    /// `truncate_after(index)`.
    Truncate(u16),
    /// `truncate_from(index)`.
    TruncateFrom(u16),
    PurgeThrough(u16),
    /// Purge to a position past the end, with an arbitrary chain hash.
    PurgeToPast {
        k: u8,
        bump: u8,
        chain_seed: u8,
    },
    /// Purge to a position inside the log, the right one or one with a wrong chain hash.
    PurgeToInside {
        sel: u16,
        wrong: bool,
    },
    WriteMeta(Vec<u8>),
    Redact {
        sel: u16,
        a: u16,
        b: u16,
    },
    Reopen,
    PowerLoss(u64),
}

fn sizes() -> impl Strategy<Value = Vec<(u16, u8)>> {
    prop::collection::vec(
        (prop_oneof![3 => 0u16..64, 1 => 0u16..600], any::<u8>()),
        1..5,
    )
}

fn op_strategy() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        8 => (sizes(), 0u8..3, 0u16..2000).prop_map(|(sizes, bump, fresh_first)| {
            OpSpec::Append { sizes, bump, fresh_first }
        }),
        1 => (1u8..4).prop_map(|skip| OpSpec::AppendWrong { skip }),
        4 => (sizes(), 0u8..3).prop_map(|(sizes, bump)| OpSpec::AppendNext { sizes, bump }),
        1 => any::<u16>().prop_map(OpSpec::Truncate),
        1 => any::<u16>().prop_map(OpSpec::TruncateFrom),
        2 => any::<u16>().prop_map(OpSpec::PurgeThrough),
        1 => (1u8..20, 0u8..3, any::<u8>())
            .prop_map(|(k, bump, chain_seed)| OpSpec::PurgeToPast { k, bump, chain_seed }),
        1 => (any::<u16>(), any::<bool>())
            .prop_map(|(sel, wrong)| OpSpec::PurgeToInside { sel, wrong }),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(OpSpec::WriteMeta),
        2 => (any::<u16>(), any::<u16>(), any::<u16>())
            .prop_map(|(sel, a, b)| OpSpec::Redact { sel, a, b }),
        1 => Just(OpSpec::Reopen),
        1 => any::<u64>().prop_map(OpSpec::PowerLoss),
    ]
}

/// With large segments: also requests of hundreds of KiB.
fn large_op_strategy() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        6 => op_strategy(),
        1 => (50u16..400, 100u16..1500, 0u8..2)
            .prop_map(|(n, len, bump)| OpSpec::AppendBulk { n, len, bump }),
    ]
}

/// A concrete request to the log.
#[derive(Debug, Clone)]
enum Action {
    Append(Vec<Entry>),
    AppendNext(u64, Vec<Bytes>),
    /// Remove the entries from this index on.
    TruncateFrom(u64),
    PurgeThrough(u64),
    PurgeTo(LogPosition),
    Meta(Vec<u8>),
    Redact(u64, Range<usize>),
}

/// Resolves a generated operation against the model (`None` for reopen / power loss).
fn resolve(m: &Model, op: &OpSpec) -> Option<Action> {
    Some(match op {
        OpSpec::Append {
            sizes,
            bump,
            fresh_first,
        } => {
            let first = m.expected_next().unwrap_or(u64::from(*fresh_first));
            let term = m.term + u64::from(*bump);
            Action::Append(
                sizes
                    .iter()
                    .enumerate()
                    .map(|(i, &(len, seed))| Entry::new(first + i as u64, term, payload(len, seed)))
                    .collect(),
            )
        }
        OpSpec::AppendWrong { skip } => {
            let first = m.expected_next().map_or(0, |n| n + u64::from(*skip));
            Action::Append(vec![Entry::new(first, m.term, payload(10, *skip))])
        }
        OpSpec::AppendBulk { n, len, bump } => {
            let first = m.expected_next().unwrap_or(1);
            let term = m.term + u64::from(*bump);
            Action::Append(
                (0..u64::from(*n))
                    .map(|i| Entry::new(first + i, term, payload(*len, i as u8)))
                    .collect(),
            )
        }
        OpSpec::AppendNext { sizes, bump } => Action::AppendNext(
            m.term + u64::from(*bump),
            sizes
                .iter()
                .map(|&(len, seed)| Bytes::from(payload(len, seed)))
                .collect(),
        ),
        // truncate_after(i) is truncate_from(i + 1); the log runs it as such
        OpSpec::Truncate(sel) => Action::TruncateFrom(m.select(*sel) + 1),
        OpSpec::TruncateFrom(sel) => Action::TruncateFrom(m.select(*sel)),
        OpSpec::PurgeThrough(sel) => Action::PurgeThrough(m.select(*sel)),
        OpSpec::PurgeToPast {
            k,
            bump,
            chain_seed,
        } => {
            let index = match m.expected_next() {
                Some(n) => n - 1 + u64::from(*k),
                None => u64::from(*k) * 7,
            };
            Action::PurgeTo(LogPosition {
                index,
                term: m.term + u64::from(*bump),
                chain: payload_hash(&[*chain_seed, *k]),
            })
        }
        OpSpec::PurgeToInside { sel, wrong } => {
            let index = m.select(*sel);
            let mut pos = m.pos(index).unwrap_or(LogPosition {
                index,
                term: m.term,
                chain: [3; 32],
            });
            if *wrong {
                pos.chain[0] ^= 1;
            }
            Action::PurgeTo(pos)
        }
        OpSpec::WriteMeta(b) => Action::Meta(b.clone()),
        OpSpec::Redact { sel, a, b } => {
            let index = m.select(*sel);
            let len = m.get(index).map_or(8, |e| e.payload.len());
            // mostly a valid range, sometimes one that is empty or runs past the payload
            let span = len + 2;
            let (x, y) = (usize::from(*a) % span, usize::from(*b) % span);
            let range = if (a ^ b) % 5 == 0 {
                x..y
            } else {
                x.min(y)..x.max(y).max(x.min(y) + 1)
            };
            Action::Redact(index, range)
        }
        OpSpec::Reopen | OpSpec::PowerLoss(_) => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    TooLarge,
    OutOfOrder,
    Invalid,
    NotFound,
}

fn kind_of(e: &LogError) -> Option<Kind> {
    Some(match e {
        LogError::TooLarge { .. } => Kind::TooLarge,
        LogError::OutOfOrder { .. } => Kind::OutOfOrder,
        LogError::Invalid(_) => Kind::Invalid,
        LogError::NotFound { .. } => Kind::NotFound,
        _ => return None,
    })
}

/// What a request must do, according to the model.
#[derive(Debug)]
enum Expect {
    /// Succeeds; the model afterwards; whether it writes a batch (so a fault can hit it).
    Ok {
        model: Model,
        writes: bool,
        first: Option<u64>,
    },
    /// Fails without touching the log.
    Err(Kind),
}

fn request_bytes(a: &Action) -> usize {
    match a {
        Action::Append(es) => es.iter().map(|e| RECORD_HEADER_LEN + e.payload.len()).sum(),
        Action::AppendNext(_, ps) => ps.iter().map(|p| RECORD_HEADER_LEN + p.len()).sum(),
        Action::Meta(m) => RECORD_HEADER_LEN + m.len(),
        _ => RECORD_HEADER_LEN + 24,
    }
}

fn predict(m: &Model, a: &Action, max_batch: usize) -> Expect {
    if request_bytes(a) > max_batch {
        return Expect::Err(Kind::TooLarge);
    }
    let mut n = m.clone();
    let ok = |model: Model, writes: bool| Expect::Ok {
        model,
        writes,
        first: None,
    };
    match a {
        Action::Append(es) => {
            let first = es[0].index;
            if m.expected_next().is_some_and(|x| x != first) {
                return Expect::Err(Kind::OutOfOrder);
            }
            for e in es {
                n.push(e.index, e.term, &e.payload);
            }
            Expect::Ok {
                model: n,
                writes: true,
                first: Some(first),
            }
        }
        Action::AppendNext(term, ps) => {
            let first = m.expected_next().unwrap_or(0);
            for (i, p) in ps.iter().enumerate() {
                n.push(first + i as u64, *term, p);
            }
            Expect::Ok {
                model: n,
                writes: true,
                first: Some(first),
            }
        }
        Action::Meta(b) => {
            n.meta = Some(b.clone());
            ok(n, true)
        }
        Action::TruncateFrom(from) => {
            let Some(last) = m.last() else {
                return ok(n, false);
            };
            if *from > last.index {
                return ok(n, false);
            }
            if let Some(b) = m.base {
                if *from <= b.index {
                    return Expect::Err(Kind::Invalid);
                }
            }
            if m.base.is_none() && m.first_index().is_some_and(|f| *from <= f) {
                // back to a fresh log: the chain restarts at genesis, any index is accepted
                n.entries.clear();
            } else {
                n.keep_through(*from - 1);
            }
            ok(n, true)
        }
        Action::PurgeThrough(index) => {
            match (m.first_index(), m.last()) {
                (Some(f), Some(l)) if *index >= f => {
                    if *index > l.index {
                        return Expect::Err(Kind::Invalid);
                    }
                    let pos = m.pos(*index).expect("live");
                    n.purge(pos);
                    ok(n, true)
                }
                _ => ok(n, false), // nothing at or below it is left
            }
        }
        Action::PurgeTo(pos) => {
            if m.base.is_some_and(|b| pos.index <= b.index) {
                return ok(n, false);
            }
            if m.last().is_some_and(|l| pos.index <= l.index) {
                match m.pos(pos.index) {
                    None => return Expect::Err(Kind::NotFound),
                    Some(have) if have != *pos => return Expect::Err(Kind::Invalid),
                    Some(_) => {}
                }
            }
            n.purge(*pos);
            ok(n, true)
        }
        Action::Redact(index, range) => {
            let Some(e) = m.get(*index) else {
                return Expect::Err(Kind::NotFound);
            };
            if range.start >= range.end || range.end > e.payload.len() {
                return Expect::Err(Kind::Invalid);
            }
            let i = (*index - m.first_index().expect("live")) as usize;
            let e = &mut n.entries[i];
            e.payload[range.clone()].fill(0);
            e.redacted = true;
            ok(n, true)
        }
    }
}

/// Runs a request; returns the first index for appends.
async fn run(log: &Log, a: &Action) -> Result<Option<u64>, LogError> {
    match a {
        Action::Append(es) => log.append(es.clone()).await.map(|()| Some(es[0].index)),
        Action::AppendNext(term, ps) => log.append_next(*term, ps.clone()).await.map(Some),
        Action::TruncateFrom(i) => {
            // both entry points, alternately
            if i % 2 == 0 {
                log.truncate_from(*i).await.map(|()| None)
            } else {
                log.truncate_after(*i - 1).await.map(|()| None)
            }
        }
        Action::PurgeThrough(i) => log.purge_through(*i).await.map(|()| None),
        Action::PurgeTo(p) => log.purge_to(*p).await.map(|()| None),
        Action::Meta(b) => log.write_meta(Bytes::from(b.clone())).await.map(|()| None),
        Action::Redact(i, r) => log.redact(*i, r.clone()).await.map(|()| None),
    }
}

// ---------------------------------------------------------------------------------------------
// Checking the log against the model
// ---------------------------------------------------------------------------------------------

macro_rules! ensure_eq {
    ($a:expr, $b:expr, $($what:tt)+) => {{
        let (a, b) = (&$a, &$b);
        if a != b {
            return Err(format!("{}: log has {:?}, model has {:?}", format!($($what)+), a, b));
        }
    }};
}

/// Whether the log reads back exactly the model (a description of the first difference if not).
fn compare(log: &Log, m: &Model) -> Result<(), String> {
    ensure_eq!(log.first_index(), m.first_index(), "first_index");
    ensure_eq!(log.last(), m.last(), "last");
    ensure_eq!(
        log.next_index(),
        m.expected_next().unwrap_or(0),
        "next_index"
    );
    ensure_eq!(log.purged(), m.purged, "purged");
    ensure_eq!(log.meta().map(|b| b.to_vec()), m.meta, "meta");
    let recs = log.read(..).map_err(|e| format!("read(..) failed: {e}"))?;
    ensure_eq!(recs.len(), m.entries.len(), "number of entries");
    for (r, e) in recs.iter().zip(&m.entries) {
        ensure_eq!(r.index, e.index, "index");
        ensure_eq!(r.term, e.term, "term of {}", e.index);
        ensure_eq!(&r.payload[..], &e.payload[..], "payload of {}", e.index);
        ensure_eq!(r.payload_hash, e.hash, "payload hash of {}", e.index);
        ensure_eq!(r.chain, e.chain, "chain of {}", e.index);
        ensure_eq!(r.redacted, e.redacted, "redacted flag of {}", e.index);
    }
    // a sub-range, and ranges outside the log, read back the same
    if let (Some(f), Some(l)) = (m.first_index(), m.last()) {
        let mid = f + (l.index - f) / 2;
        let sub = log
            .read(mid..=l.index)
            .map_err(|e| format!("read({mid}..={}) failed: {e}", l.index))?;
        ensure_eq!(
            sub.len() as u64,
            l.index - mid + 1,
            "length of read({mid}..)"
        );
        ensure_eq!(sub[0].index, mid, "first index of read({mid}..)");
        let past = log
            .read(l.index + 1..)
            .map_err(|e| format!("read past end: {e}"))?;
        ensure_eq!(past.len(), 0, "entries read past the end");
        if f > 0 {
            let before = log
                .read(..f)
                .map_err(|e| format!("read before first: {e}"))?;
            ensure_eq!(before.len(), 0, "entries read before the first");
        }
    }
    let mut chained = 0u64;
    log.scan_with(.., Verification::Chain, |_| {
        chained += 1;
        Ok(true)
    })
    .map_err(|e| format!("scan_with(Chain) failed: {e}"))?;
    ensure_eq!(
        chained,
        m.entries.len() as u64,
        "entries scanned with chain checks"
    );
    let rep = log.verify(..).map_err(|e| format!("verify failed: {e}"))?;
    ensure_eq!(rep.entries, m.entries.len() as u64, "verified entries");
    ensure_eq!(
        rep.redacted,
        m.entries.iter().filter(|e| e.redacted).count() as u64,
        "verified redacted entries"
    );
    ensure_eq!(rep.last, m.last(), "verified last");
    ensure_eq!(
        rep.first,
        m.pos(m.first_index().unwrap_or(0)),
        "verified first"
    );
    Ok(())
}

fn check(log: &Log, m: &Model, ctx: &str) {
    if let Err(e) = compare(log, m) {
        panic!("{ctx}: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

/// Runs `ops` sequentially, checking the log against the model after every step.
async fn run_sequential(ops: Vec<OpSpec>, cfg: Cfg) {
    let vfs = SimVfs::new();
    let mut log = cfg.open(&vfs);
    let mut m = Model::default();
    check(&log, &m, "fresh log");
    let trace = std::env::var_os("HEARTH_MODEL_TRACE").is_some();
    for (step, op) in ops.iter().enumerate() {
        let ctx = format!("step {step} ({op:?})");
        if trace {
            let a = resolve(&m, op);
            eprintln!(
                "step {step}: {:?} | model {:?}..{:?} base {:?} | segs {:?}",
                a.as_ref().map_or_else(
                    || format!("{op:?}"),
                    |a| format!("{a:?}").chars().take(120).collect()
                ),
                m.first_index(),
                m.last().map(|l| l.index),
                m.base.map(|b| b.index),
                log.segments()
                    .iter()
                    .map(|s| (s.seq, s.bytes, s.max_index))
                    .collect::<Vec<_>>()
            );
        }
        match op {
            OpSpec::Reopen => {
                log.close().await.expect("close");
                log = cfg.open(&vfs);
                assert_eq!(log.recovery_report().torn_tail, None, "{ctx}");
                assert_eq!(log.recovery_report().redactions_repaired, 0, "{ctx}");
            }
            OpSpec::PowerLoss(seed) => {
                drop(log);
                vfs.power_loss(*seed);
                log = cfg.open(&vfs);
                // every request was acknowledged, so everything it did is durable
            }
            op => {
                let a = resolve(&m, op).expect("a request");
                let ctx = format!("{ctx} = {a:?}");
                let expect = predict(&m, &a, cfg.max_batch());
                let got = run(&log, &a).await;
                match (expect, got) {
                    (
                        Expect::Ok {
                            model,
                            first,
                            writes: _,
                        },
                        Ok(f),
                    ) => {
                        if first.is_some() {
                            assert_eq!(f, first, "{ctx}: first index");
                        }
                        m = model;
                    }
                    (Expect::Err(k), Err(e)) if kind_of(&e) == Some(k) => {}
                    (expect, got) => panic!("{ctx}: expected {expect:?}, got {got:?}"),
                }
            }
        }
        check(&log, &m, &ctx);
        assert!(log.poisoned().is_none(), "{ctx}");
    }
    log.close().await.expect("close");
    // the final state survives a power loss as well
    vfs.power_loss(ops.len() as u64);
    let log = cfg.open(&vfs);
    check(&log, &m, "after final power loss");
    log.close().await.expect("close");
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    Writes(u32),
    Sync(u32),
    SyncDir(u32),
}

impl Fault {
    fn sim(self) -> SimFault {
        match self {
            Fault::Writes(after) => SimFault::FailWrites { after },
            Fault::Sync(after) => SimFault::FailSync { after },
            Fault::SyncDir(after) => SimFault::FailSyncDir { after },
        }
    }
}

fn fault_strategy() -> impl Strategy<Value = Fault> {
    prop_oneof![
        (0u32..3).prop_map(Fault::Writes),
        (0u32..3).prop_map(Fault::Sync),
        (0u32..2).prop_map(Fault::SyncDir),
    ]
}

/// Runs `ops`, injecting `fault` before op `at`. The first request that fails with an IO error
/// poisons the log; then every request fails with `Poisoned`, reads still work, and a reopen
/// (after power loss if `power_loss`) yields the model with or without the failed request.
async fn run_with_fault(ops: Vec<OpSpec>, at: usize, fault: Fault, power_loss: Option<u64>) {
    let cfg = SMALL;
    let vfs = SimVfs::new();
    let mut log = cfg.open(&vfs);
    let mut m = Model::default();
    // (model without the failed request, model with it)
    let mut failed: Option<(Model, Model, String)> = None;
    let mut injected = false;
    let at = at % ops.len();
    for (step, op) in ops.iter().enumerate() {
        if step == at {
            vfs.inject(fault.sim());
            injected = true;
        }
        let ctx = format!("step {step} ({op:?}), fault {fault:?} at {at}");
        if let Some((without, with, what)) = &failed {
            // Poisoned: requests fail, reads show one of the two outcomes.
            if let Some(a) = resolve(without, op) {
                let e = run(&log, &a)
                    .await
                    .expect_err("poisoned log accepted a request");
                let too_large = request_bytes(&a) > cfg.max_batch();
                assert!(
                    matches!(e, LogError::Poisoned(_))
                        || (too_large && kind_of(&e) == Some(Kind::TooLarge)),
                    "{ctx}: {e}"
                );
                assert!(log.poisoned().is_some());
                if compare(&log, with).is_err() {
                    check(&log, without, &format!("{ctx}: after failed {what}"));
                }
                continue;
            }
            // Reopen or power loss: recover and adopt whichever outcome the log shows.
            vfs.clear_faults();
            injected = false;
            drop(log);
            match (op, power_loss) {
                (OpSpec::PowerLoss(seed), _) => vfs.power_loss(*seed),
                (_, Some(seed)) => vfs.power_loss(seed),
                _ => {}
            }
            log = cfg.open(&vfs);
            let r_with = compare(&log, with);
            let r_without = compare(&log, without);
            m = match (r_with, r_without) {
                (Ok(()), _) => with.clone(),
                (_, Ok(())) => without.clone(),
                (Err(a), Err(b)) => panic!(
                    "{ctx}: after failed {what} the log is neither the model with it ({a}) nor \
                     without it ({b})"
                ),
            };
            failed = None;
            continue;
        }
        match op {
            // a restart with a fault armed but not yet hit: the disk is fine again after it
            // (with the fault armed, recovery's own fsyncs could fail and the open with them)
            OpSpec::Reopen => {
                log.close().await.expect("close");
                vfs.clear_faults();
                injected = false;
                log = cfg.open(&vfs);
            }
            OpSpec::PowerLoss(seed) => {
                drop(log);
                vfs.clear_faults();
                injected = false;
                vfs.power_loss(*seed);
                log = cfg.open(&vfs);
            }
            op => {
                let a = resolve(&m, op).expect("a request");
                let ctx = format!("{ctx} = {a:?}");
                let expect = predict(&m, &a, cfg.max_batch());
                let got = run(&log, &a).await;
                match (expect, got) {
                    (Expect::Ok { model, first, .. }, Ok(f)) => {
                        if first.is_some() {
                            assert_eq!(f, first, "{ctx}: first index");
                        }
                        m = model;
                    }
                    (Expect::Ok { model, writes, .. }, Err(e)) => {
                        assert!(
                            injected && writes && matches!(e, LogError::Io { .. }),
                            "{ctx}: expected success, got {e}"
                        );
                        assert!(log.poisoned().is_some(), "{ctx}: not poisoned after {e}");
                        // reads still work and show one of the outcomes
                        if compare(&log, &model).is_err() {
                            check(&log, &m, &format!("{ctx}: reads after the failure"));
                        }
                        failed = Some((m.clone(), model, format!("{a:?}")));
                        continue;
                    }
                    (Expect::Err(k), Err(e)) if kind_of(&e) == Some(k) => {}
                    (expect, got) => panic!("{ctx}: expected {expect:?}, got {got:?}"),
                }
            }
        }
        check(&log, &m, &ctx);
    }
    if let Some((without, with, what)) = failed {
        vfs.clear_faults();
        drop(log);
        vfs.power_loss(power_loss.unwrap_or(7));
        log = cfg.open(&vfs);
        if compare(&log, &with).is_err() {
            check(&log, &without, &format!("at the end, after failed {what}"));
        }
    } else {
        vfs.clear_faults();
    }
    log.append_next(m.term, vec![Bytes::from_static(b"after")])
        .await
        .expect("the recovered log accepts appends");
    log.verify(..).expect("verify");
    drop(log);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

proptest! {
    #![proptest_config(ProptestConfig {
        // fixed, so a plain `cargo test` is quick and reproducible; HEARTH_MODEL_CASES runs more
        cases: std::env::var("HEARTH_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/model.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(ops in prop::collection::vec(op_strategy(), 1..80)) {
        rt().block_on(run_sequential(ops, SMALL));
    }

    #[test]
    fn log_matches_model_large_segments(
        ops in prop::collection::vec(large_op_strategy(), 1..50),
    ) {
        rt().block_on(run_sequential(ops, LARGE));
    }

    #[test]
    fn log_matches_model_with_a_fault(
        ops in prop::collection::vec(op_strategy(), 1..60),
        at in 0usize..60,
        fault in fault_strategy(),
        power_loss in prop::option::of(any::<u64>()),
    ) {
        rt().block_on(run_with_fault(ops, at, fault, power_loss));
    }
}

/// A fixed sequence touching every operation, so a plain `cargo test` always covers them all.
#[test]
fn fixed_sequence() {
    let sz = |n: u16| vec![(n, 7u8); 3];
    let mut ops = vec![
        OpSpec::Append {
            sizes: sz(100),
            bump: 1,
            fresh_first: 10,
        },
        OpSpec::WriteMeta(b"vote-1".to_vec()),
    ];
    for i in 0..40u16 {
        ops.push(OpSpec::AppendNext {
            sizes: sz(200 + i),
            bump: 0,
        });
    }
    ops.extend([
        OpSpec::Redact { sel: 5, a: 3, b: 9 },
        OpSpec::Truncate(60),
        OpSpec::PowerLoss(1),
        OpSpec::PurgeThrough(40),
        OpSpec::Reopen,
        OpSpec::PurgeToInside {
            sel: 9,
            wrong: true,
        },
        OpSpec::PurgeToInside {
            sel: 9,
            wrong: false,
        },
        OpSpec::PurgeToPast {
            k: 5,
            bump: 1,
            chain_seed: 3,
        },
        OpSpec::PowerLoss(2),
        OpSpec::Append {
            sizes: sz(10),
            bump: 0,
            fresh_first: 0,
        },
        OpSpec::Truncate(0),
        OpSpec::Reopen,
    ]);
    rt().block_on(run_sequential(ops, SMALL));
}

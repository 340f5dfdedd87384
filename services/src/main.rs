//! `hearth`: the command-line tool. Only argument parsing and dispatch live here; every command
//! is implemented in the `hearth_services` library.
//!
//! A failed command prints ONE line `error: …` on stderr and exits non-zero (2 when the log is
//! damaged, 3 and 4 for what `audit` finds, 64 for a bad command line, 1 otherwise); see
//! [`hearth_services::cli`].

use clap::{Parser, Subcommand};
use hearth_services::bench::BenchLogArgs;
use hearth_services::cli::{
    self, cluster, id::IdArgs, log_dump::DumpArgs, log_verify::VerifyArgs, serve::ServeArgs,
};
use hearth_services::telemetry::{self, LogFormat};
use std::io::Write;

/// hearth: an event-sourced storage service for family clusters.
#[derive(Debug, Parser)]
#[command(name = "hearth", version)]
struct Cli {
    /// Format of diagnostic log lines on stderr (filter them with RUST_LOG).
    #[arg(
        long,
        global = true,
        env = "HEARTH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node until SIGTERM/Ctrl-C: founds a one-member cluster on an empty data directory,
    /// or joins one with --join.
    Serve(Box<ServeArgs>),
    /// Look at and change the cluster's membership.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Store a file as a blob; prints its hash as the last line.
    Put(cli::blob::PutArgs),
    /// Fetch a blob by hash, to stdout or -o FILE (checked against the hash).
    Get(cli::blob::GetArgs),
    /// A blob's tier, code, shards and holders, and this node's copy of each shard.
    Status(cli::blob::StatusArgs),
    /// Delete a blob: reads answer "gone" and every member removes its copies.
    Rm(cli::blob::RmArgs),
    /// Print the node's PeerId (its identity is created by the first `serve`).
    Id(IdArgs),
    /// A running member's committed log as events, one line each (live with --follow).
    Events(cli::events::EventsArgs),
    /// The cluster's peers, best reputation first, each score with its explanation.
    Peers(cli::peers::PeersArgs),
    /// Documents (Automerge, offline-first): create, get, put JSON, list.
    #[command(subcommand)]
    Doc(cli::doc::DocCommand),
    /// Devices outside the cluster that may sync documents: pair, show.
    #[command(subcommand)]
    Device(cli::doc::DeviceCommand),
    /// Offline: verify a stopped node's log and signatures, rebuild its projections from the
    /// log and compare them with the live ones (exit 0 only when everything matches).
    Audit(cli::audit::AuditArgs),
    /// Offline: rebuild the projections as they stood at a log index or time into a new
    /// directory, for `status --data-dir` and other read-only queries.
    Replay(cli::replay::ReplayArgs),
    /// Offline: upgrade a stopped node's data directory to this build's format (backup first;
    /// --dry-run only reports the plan).
    Migrate(cli::migrate::MigrateArgs),
    /// Inspect a node's write-ahead log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Measure performance (against the disk's own fdatasync baseline).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Cluster id, leader, term, voters, learners, commit index, each member's lag.
    Status(cluster::StatusArgs),
    /// Remove a member (voter or learner) by PeerId.
    Remove(cluster::RemoveArgs),
    /// Offline: re-form a one-voter cluster from this node when a quorum is lost for good.
    Recover(cluster::RecoverArgs),
}

#[derive(Debug, Subcommand)]
enum LogCommand {
    /// Check every record's CRC and the whole hash chain (read-only).
    Verify(VerifyArgs),
    /// Print entries as decoded events, one per line.
    Dump(DumpArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Closed-loop append throughput and latency of the log, then replay speed.
    Log(BenchLogArgs),
    /// Committed events/s and commit latency of an N-node cluster on loopback, vs one node.
    Cluster(hearth_services::bench::cluster_bench::BenchClusterArgs),
    /// PUT and GET throughput and latency of a 4+3 node over HTTP, healthy and degraded.
    Blobs(hearth_services::bench::blobs_bench::BenchBlobsArgs),
    /// Accepted → durable time of a large blob on a cluster of real processes, vs the disk.
    Replication(hearth_services::bench::replication_bench::BenchReplicationArgs),
    /// Documents: PUT rate, offline device sync, memory for many documents.
    Docs(hearth_services::bench::docs_bench::BenchDocsArgs),
    /// The offline audit on a generated log: CRC + chain events/s, signature checks/s,
    /// projection rebuild events/s, peak RSS.
    Audit(hearth_services::bench::audit_bench::BenchAuditArgs),
    /// Commit → delivery latency of a live `GET /v1/events` consumer at a fixed write rate.
    Stream(hearth_services::bench::stream_bench::BenchStreamArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version: print and exit 0
        Err(e) => {
            let _ = e.print();
            std::process::exit(cli::EXIT_USAGE);
        }
    };
    telemetry::init(cli.log_format);

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = match &cli.command {
        Command::Serve(args) => cli::serve::run(args, &mut out),
        Command::Cluster(ClusterCommand::Status(args)) => cluster::status(args, &mut out),
        Command::Cluster(ClusterCommand::Remove(args)) => cluster::remove(args, &mut out),
        Command::Cluster(ClusterCommand::Recover(args)) => cluster::recover(args, &mut out),
        Command::Put(args) => cli::blob::put(args, &mut out),
        Command::Get(args) => cli::blob::get(args, &mut out),
        Command::Status(args) => cli::blob::status(args, &mut out),
        Command::Rm(args) => cli::blob::rm(args, &mut out),
        Command::Id(args) => cli::id::run(args, &mut out),
        Command::Peers(args) => cli::peers::run(args, &mut out),
        Command::Doc(cmd) => cli::doc::run(cmd, &mut out),
        Command::Device(cmd) => cli::doc::run_device(cmd, &mut out),
        Command::Events(args) => cli::events::run(args, &mut out),
        Command::Audit(args) => cli::audit::run(args, &mut out),
        Command::Replay(args) => cli::replay::run(args, &mut out),
        Command::Migrate(args) => cli::migrate::run(args, &mut out),
        Command::Log(LogCommand::Verify(args)) => cli::log_verify::run(args, &mut out),
        Command::Log(LogCommand::Dump(args)) => cli::log_dump::run(args, &mut out),
        Command::Bench(BenchCommand::Log(args)) => hearth_services::bench::run_log(args, &mut out),
        Command::Bench(BenchCommand::Cluster(args)) => {
            hearth_services::bench::cluster_bench::run_cluster(args, &mut out)
        }
        Command::Bench(BenchCommand::Blobs(args)) => {
            hearth_services::bench::blobs_bench::run_blobs(args, &mut out)
        }
        Command::Bench(BenchCommand::Docs(args)) => {
            hearth_services::bench::docs_bench::run_docs(args, &mut out)
        }
        Command::Bench(BenchCommand::Replication(args)) => {
            hearth_services::bench::replication_bench::run_replication(args, &mut out)
        }
        Command::Bench(BenchCommand::Audit(args)) => {
            hearth_services::bench::audit_bench::run_audit_bench(args, &mut out)
        }
        Command::Bench(BenchCommand::Stream(args)) => {
            hearth_services::bench::stream_bench::run_stream(args, &mut out)
        }
    };
    let result = result.and_then(|()| out.flush().map_err(Into::into));
    drop(out);
    match result {
        Ok(()) => {}
        Err(e) if cli::is_broken_pipe(&e) => {} // e.g. `hearth log dump | head`
        Err(e) => {
            eprintln!("error: {}", cli::one_line(&e));
            std::process::exit(cli::exit_code(&e));
        }
    }
}

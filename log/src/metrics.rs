//! The log's metrics, through the [`metrics`] facade: names and descriptions here, recorded by
//! the writer thread. Nothing is exported from this crate — without an installed recorder (a
//! test, `hearth log verify`) every update is a no-op; the node installs the Prometheus one
//! (`hearth_services::metrics`), which calls [`describe`].
//!
//! What it is **not**: it reads no state and takes no lock; each update is one atomic add.

/// Counter: entries made durable by the writer (raft entries; control records not counted).
pub const ENTRIES_APPENDED: &str = "hearth_log_entries_appended_total";
/// Counter: group-commit batches written (one write + one fdatasync each).
pub const BATCHES: &str = "hearth_log_batches_total";
/// Counter: bytes written to segments (batches, padded).
pub const BYTES_WRITTEN: &str = "hearth_log_bytes_written_total";
/// Histogram: records per group-commit batch.
pub const BATCH_RECORDS: &str = "hearth_log_batch_records";
/// Histogram: bytes per group-commit batch.
pub const BATCH_BYTES: &str = "hearth_log_batch_bytes";
/// Histogram: seconds the `fdatasync` of one group-commit batch took.
pub const FSYNC_SECONDS: &str = "hearth_log_fsync_seconds";

/// Registers the descriptions of the metrics above with the installed recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_histogram, Unit};
    describe_counter!(
        ENTRIES_APPENDED,
        Unit::Count,
        "Log entries made durable by the writer"
    );
    describe_counter!(
        BATCHES,
        Unit::Count,
        "Group-commit batches written (one write and one fdatasync each)"
    );
    describe_counter!(BYTES_WRITTEN, Unit::Bytes, "Bytes written to log segments");
    describe_histogram!(BATCH_RECORDS, Unit::Count, "Records per group-commit batch");
    describe_histogram!(BATCH_BYTES, Unit::Bytes, "Bytes per group-commit batch");
    describe_histogram!(
        FSYNC_SECONDS,
        Unit::Seconds,
        "Time the fdatasync of one group-commit batch took"
    );
}

//! Resident memory of this process, read from `/proc/self/status` (Linux; `None` elsewhere).

/// A `kB` field of `/proc/self/status`, e.g. `VmRSS` or `VmHWM`.
pub fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_status_kib(&status, field)
}

/// Current resident set size in KiB.
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS")
}

/// Peak resident set size in KiB (`VmHWM`), falling back to the current one.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM").or_else(rss_kib)
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_lines() {
        let s = "Name:\thearth\nVmHWM:\t   12345 kB\nVmRSS:\t    2048 kB\n";
        assert_eq!(parse_status_kib(s, "VmRSS"), Some(2048));
        assert_eq!(parse_status_kib(s, "VmHWM"), Some(12345));
        assert_eq!(parse_status_kib(s, "VmSwap"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_own_rss() {
        assert!(rss_kib().is_some_and(|k| k > 0));
        assert!(peak_rss_kib() >= rss_kib());
    }
}

//! Where things live inside a node's data directory. Every path is derived here, in one place.

use std::path::{Path, PathBuf};

/// The write-ahead log's directory inside a node's data directory: `DATA_DIR/log`.
pub fn log_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_dir_is_under_data_dir() {
        assert_eq!(log_dir(Path::new("/d")), PathBuf::from("/d/log"));
    }
}

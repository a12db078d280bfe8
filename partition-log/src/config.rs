//! Tunables of a partition log, with the defaults a broker ships with.

use std::{fmt, str::FromStr, time::Duration};

/// When appended bytes are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` after every append, before it returns.
    Always,
    /// At most this long between an append and its `fdatasync`. Appends do
    /// not sync: the owner takes [`PartitionLog::sync_due`]'s job from a
    /// timer and runs it off the async runtime.
    ///
    /// [`PartitionLog::sync_due`]: crate::PartitionLog::sync_due
    Interval(Duration),
    /// Leave it to the OS. Durability then comes from replication alone.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        Self::Interval(Duration::from_millis(100))
    }
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Always => f.write_str("always"),
            Self::Never => f.write_str("never"),
            Self::Interval(d) => write!(f, "interval:{}ms", d.as_millis()),
        }
    }
}

/// Error for an unparseable [`FsyncPolicy`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid fsync policy {0:?}: expected `always`, `never` or `interval:<ms>` (e.g. interval:100ms)"
)]
pub struct ParseFsyncPolicyError(String);

impl FromStr for FsyncPolicy {
    type Err = ParseFsyncPolicyError;

    /// Accepts `always`, `never`, `interval` (100 ms) and `interval:<n>[ms]`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseFsyncPolicyError(s.to_owned());
        match s.trim().to_ascii_lowercase().as_str() {
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            "interval" => Ok(Self::default()),
            other => {
                let ms = other.strip_prefix("interval:").ok_or_else(err)?;
                let ms = ms.strip_suffix("ms").unwrap_or(ms);
                let ms: u64 = ms.parse().map_err(|_| err())?;
                if ms == 0 {
                    return Err(err());
                }
                Ok(Self::Interval(Duration::from_millis(ms)))
            }
        }
    }
}

/// Which closed segments may be deleted. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    /// Delete the oldest closed segments while the log is larger than this.
    pub max_bytes: Option<u64>,
    /// Delete closed segments last written longer ago than this.
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls when the next append would take it past this size.
    pub segment_bytes: u64,
    /// One index entry at least every this many bytes of log.
    pub index_interval_bytes: u64,
    /// Largest single batch accepted by `append`.
    pub max_batch_bytes: usize,
    pub fsync: FsyncPolicy,
    pub retention: Retention,
}

impl LogConfig {
    /// Largest segment size: index positions are 32-bit.
    pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 128 * 1024 * 1024,
            index_interval_bytes: 4096,
            max_batch_bytes: 16 * 1024 * 1024,
            fsync: FsyncPolicy::default(),
            retention: Retention::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fsync_policies() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!("NEVER".parse(), Ok(FsyncPolicy::Never));
        let ms = |n| Ok(FsyncPolicy::Interval(Duration::from_millis(n)));
        assert_eq!("interval".parse(), ms(100));
        assert_eq!("interval:250".parse(), ms(250));
        assert_eq!("interval:5ms".parse(), ms(5));
        for bad in [
            "",
            "sometimes",
            "interval:",
            "interval:0",
            "interval:-1",
            "interval:1s",
        ] {
            assert!(bad.parse::<FsyncPolicy>().is_err(), "{bad:?} parsed");
        }
        let p = FsyncPolicy::Interval(Duration::from_millis(30));
        assert_eq!(p.to_string().parse(), Ok(p));
    }
}

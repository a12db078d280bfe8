//! # partition-log
//!
//! The append-only, segmented log of one topic-partition: the only code in
//! YAK that touches log files. It knows nothing of HTTP, Redis or async
//! runtimes, so it can be tested and benchmarked on a temporary directory.
//!
//! ## Layout
//! - [`batch`]: the record batch format — encoding ([`BatchBuilder`]),
//!   decoding ([`Batch`], [`Record`]) and CRC-32C checking. A batch's bytes
//!   are stored and replicated as they are.
//! - `segment`: one `.log` file and its sparse `.index`; recovery scans.
//! - `index`: the sparse offset index.
//! - `epoch`: the leader-epoch history (`leader-epoch-checkpoint`).
//! - `log`: [`PartitionLog`] (the one writer) and [`LogReader`] (cloneable
//!   readers): append, read, truncate, retention and fsync policy.
//! - [`config`]: [`LogConfig`], [`FsyncPolicy`], [`Retention`].
//! - `error`: [`LogError`].
//!
//! The on-disk format and the recovery rules are in `docs/storage.md`.
//!
//! ```
//! use partition_log::{BatchBuilder, LogConfig, PartitionLog, batch};
//!
//! let dir = tempfile::tempdir()?;
//! let (mut log, _) = PartitionLog::open(dir.path(), LogConfig::default())?;
//! let mut builder = BatchBuilder::new(1_700_000_000_000);
//! builder.push(1_700_000_000_000, Some(b"key"), b"value");
//! let mut bytes = builder.finish();
//! batch::stamp(&mut bytes, log.end_offset(), 1);
//! let appended = log.append(&bytes)?;
//! assert_eq!((appended.first_offset, appended.next_offset), (0, 1));
//!
//! let read = log.reader().read(0, appended.next_offset, 1 << 20)?;
//! let batch = batch::batches(&read).next().unwrap()?;
//! let record = batch.records().next().unwrap()?;
//! assert_eq!(record.value, b"value");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod batch;
pub mod config;
mod epoch;
mod error;
mod index;
mod log;
mod segment;

pub use batch::{Batch, BatchBuilder, BatchError, BatchHeader, Record};
pub use config::{FsyncPolicy, LogConfig, ParseFsyncPolicyError, Retention};
pub use epoch::EpochEntry;
pub use error::{LogError, Result};
pub use log::{AppendInfo, LogReader, OpenReport, PartitionLog, SyncJob};
pub use segment::Recovery;

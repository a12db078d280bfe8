//! Reading an uploaded CSV file as records, one [`Chunk`] (a batch) at a
//! time, on a blocking thread.
//!
//! The file is parsed incrementally with the `csv` crate and each chunk is
//! handed over through a channel, so neither the file nor the records are
//! ever all in memory. Invariants: a chunk holds at most `batch` rows (read
//! or failed); every record keeps the line it came from; a row that cannot
//! be mapped is a [`RowFailure`] with its line, and the rest go through;
//! the last chunk's `bytes_done` is the file's size.

use std::path::Path;

use tokio::sync::mpsc;
use yak_client::Record;

use crate::rows::{RowFailure, RowMapping};

/// One batch handed from the reader to the job.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    pub(crate) records: Vec<Record>,
    /// The line of each record.
    pub(crate) lines: Vec<u64>,
    /// Rows that could not be read.
    pub(crate) failures: Vec<RowFailure>,
    /// Bytes of the file read so far.
    pub(crate) bytes_done: u64,
}

/// Reads `path` (blocking) and sends it on in chunks of `batch` rows.
pub(crate) fn read_chunks(
    path: &Path,
    delimiter: u8,
    mapping: &RowMapping,
    topic: &str,
    batch: usize,
    tx: &mpsc::Sender<Chunk>,
) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot open the upload: {e}"))?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(std::io::BufReader::with_capacity(256 * 1024, file));
    reader
        .byte_headers()
        .map_err(|e| format!("cannot read the header: {e}"))?;
    let mut row = csv::ByteRecord::new();
    let mut chunk = Chunk::default();
    loop {
        let more = reader
            .read_byte_record(&mut row)
            .map_err(|e| format!("reading the file failed: {e}"))?;
        if more {
            let line = row.position().map_or(0, |p| p.line());
            match mapping.map_row(&row) {
                Ok((key, payload)) => {
                    let mut record = Record::new(topic, payload);
                    record.key = key;
                    chunk.records.push(record);
                    chunk.lines.push(line);
                }
                Err(reason) => chunk.failures.push(RowFailure { line, reason }),
            }
        }
        if !more || chunk.records.len() + chunk.failures.len() >= batch {
            chunk.bytes_done = reader.position().byte();
            if tx.blocking_send(std::mem::take(&mut chunk)).is_err() {
                return Ok(()); // the job stopped
            }
        }
        if !more {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::MappingChoice;

    fn chunks_of(csv: &str, batch: usize) -> Vec<Chunk> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, csv).unwrap();
        let headers: Vec<String> = csv
            .lines()
            .next()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        let mapping = RowMapping::new(&headers, &MappingChoice::default()).unwrap();
        let (tx, mut rx) = mpsc::channel(1000);
        read_chunks(&path, b',', &mapping, "t", batch, &tx).unwrap();
        drop(tx);
        let mut out = Vec::new();
        while let Ok(c) = rx.try_recv() {
            out.push(c);
        }
        out
    }

    #[test]
    fn batches_rows_and_reports_bad_ones_by_line() {
        let csv = "a,b\n1,2\n3\n4,5\n\"multi\nline\",6\n7,8,9\n10,11\n";
        let chunks = chunks_of(csv, 2);
        let records: Vec<&Record> = chunks.iter().flat_map(|c| &c.records).collect();
        let lines: Vec<u64> = chunks.iter().flat_map(|c| c.lines.clone()).collect();
        let failures: Vec<&RowFailure> = chunks.iter().flat_map(|c| &c.failures).collect();
        assert_eq!(records.len(), 4);
        assert_eq!(lines, [2, 4, 5, 8]);
        assert_eq!(records[2].payload["a"], "multi\nline");
        assert_eq!(records[3].payload["b"], 11);
        assert_eq!(
            failures,
            [
                &RowFailure {
                    line: 3,
                    reason: "expected 2 fields, found 1".to_owned()
                },
                &RowFailure {
                    line: 7,
                    reason: "expected 2 fields, found 3".to_owned()
                }
            ]
        );
        assert!(
            chunks
                .iter()
                .all(|c| c.records.len() + c.failures.len() <= 2)
        );
        assert_eq!(chunks.last().unwrap().bytes_done, csv.len() as u64);
    }
}

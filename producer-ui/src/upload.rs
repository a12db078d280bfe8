//! CSV uploads: the multipart body is streamed straight into a temporary
//! file (never held in memory), then [`inspect`]ed — is it CSV at all, what
//! are its headers, what do the first rows look like. Uploaded files are
//! kept (a few at a time) until a job has sent them.

use std::{
    collections::VecDeque,
    io::Read,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use actix_multipart::Multipart;
use futures_util::TryStreamExt;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use yak_ui::UiError;

use yak_client::fields::unique_headers;

/// Rows shown in the preview.
pub const PREVIEW_ROWS: usize = 10;
/// How much of the file the binary/header checks look at.
const SAMPLE_BYTES: usize = 64 * 1024;
/// Uploads kept for sending; older ones are deleted (unless a job is
/// still sending them).
const KEPT_UPLOADS: usize = 8;

/// What the page shows after an upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub delimiter: char,
    pub headers: Vec<String>,
    /// The first rows, as text (invalid UTF-8 shown with U+FFFD).
    pub preview: Vec<Vec<String>>,
    /// The line each preview row starts on (a quoted field may span lines).
    pub preview_lines: Vec<u64>,
}

/// Why a file is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    Empty(String),
    NotCsv(String),
}

impl From<Rejected> for UiError {
    fn from(r: Rejected) -> Self {
        match r {
            Rejected::Empty(m) => UiError::bad_request("empty_file", m),
            Rejected::NotCsv(m) => UiError::bad_request("not_csv", m),
        }
    }
}

/// The delimiter the header line uses most, of `,` `;` tab `|` (`,` when
/// none: a single-column file).
pub fn sniff_delimiter(header_line: &str) -> u8 {
    let mut best = (0, b',');
    for d in [b',', b';', b'\t', b'|'] {
        let mut quoted = false;
        let n = header_line
            .bytes()
            .filter(|&b| {
                if b == b'"' {
                    quoted = !quoted;
                }
                !quoted && b == d
            })
            .count();
        if n > best.0 {
            best = (n, d);
        }
    }
    best.1
}

/// Decides whether `file` is a CSV file with a header and at least one row,
/// and reads its headers and first rows.
pub fn inspect(mut file: impl Read) -> Result<Inspection, Rejected> {
    let mut sample = Vec::with_capacity(SAMPLE_BYTES);
    (&mut file)
        .take(SAMPLE_BYTES as u64)
        .read_to_end(&mut sample)
        .map_err(|e| Rejected::NotCsv(format!("the file cannot be read: {e}")))?;
    if sample.is_empty() {
        return Err(Rejected::Empty("the file is empty".to_owned()));
    }
    if sample.contains(&0) {
        return Err(Rejected::NotCsv(
            "this is not a CSV file: it contains binary data (NUL bytes)".to_owned(),
        ));
    }
    let body = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&sample);
    let first_line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(first_line) = std::str::from_utf8(first_line) else {
        return Err(Rejected::NotCsv(
            "this is not a CSV file: its first line (the header) is not UTF-8 text".to_owned(),
        ));
    };
    let first_line = first_line.trim_end_matches('\r');
    if first_line.trim().is_empty() {
        return Err(Rejected::NotCsv(
            "the first line must be the header (column names), but it is blank".to_owned(),
        ));
    }
    if first_line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Rejected::NotCsv(
            "this is not a CSV file: its header contains control characters".to_owned(),
        ));
    }
    let delimiter = sniff_delimiter(first_line);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(std::io::Cursor::new(sample.clone()).chain(file));
    let headers = reader
        .headers()
        .map_err(|e| Rejected::NotCsv(format!("the header cannot be read: {e}")))?
        .iter()
        .map(str::to_owned);
    let headers = unique_headers(headers);
    let mut preview = Vec::new();
    let mut preview_lines = Vec::new();
    let mut row = csv::ByteRecord::new();
    while preview.len() < PREVIEW_ROWS {
        match reader.read_byte_record(&mut row) {
            Ok(true) => {
                preview_lines.push(row.position().map_or(0, |p| p.line()));
                preview.push(
                    row.iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect(),
                );
            }
            Ok(false) => break,
            Err(e) => return Err(Rejected::NotCsv(format!("the file cannot be read: {e}"))),
        }
    }
    if preview.is_empty() {
        return Err(Rejected::Empty(
            "the file has a header but no rows to send".to_owned(),
        ));
    }
    Ok(Inspection {
        delimiter: delimiter as char,
        headers,
        preview,
        preview_lines,
    })
}

/// An uploaded file on disk (deleted when the last holder drops it).
#[derive(Debug)]
pub struct Upload {
    pub id: u64,
    pub filename: String,
    pub size: u64,
    pub inspection: Inspection,
    file: tempfile::NamedTempFile,
}

impl Upload {
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// What `POST /api/upload` answers.
#[derive(Debug, Serialize)]
pub struct UploadInfo<'a> {
    pub upload_id: u64,
    pub filename: &'a str,
    pub size: u64,
    #[serde(flatten)]
    pub inspection: &'a Inspection,
}

impl Upload {
    pub fn info(&self) -> UploadInfo<'_> {
        UploadInfo {
            upload_id: self.id,
            filename: &self.filename,
            size: self.size,
            inspection: &self.inspection,
        }
    }
}

/// The kept uploads, newest last.
#[derive(Debug)]
pub struct Uploads {
    dir: tempfile::TempDir,
    max_bytes: u64,
    next_id: AtomicU64,
    kept: Mutex<VecDeque<Arc<Upload>>>,
}

impl Uploads {
    /// Uploads go to a fresh directory under `parent` (the system's temp
    /// directory by default), removed when the server stops.
    pub fn new(parent: Option<PathBuf>, max_bytes: u64) -> std::io::Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("yak-producer-ui-");
        let dir = match parent {
            Some(parent) => builder.tempdir_in(parent)?,
            None => builder.tempdir()?,
        };
        Ok(Self {
            dir,
            max_bytes,
            next_id: AtomicU64::new(1),
            kept: Mutex::default(),
        })
    }

    pub fn get(&self, id: u64) -> Option<Arc<Upload>> {
        self.kept
            .lock()
            .unwrap()
            .iter()
            .find(|u| u.id == id)
            .cloned()
    }

    /// Streams the form's `file` field to disk and inspects it.
    pub async fn receive(&self, mut form: Multipart) -> Result<Arc<Upload>, UiError> {
        let invalid = |e: actix_multipart::MultipartError| {
            UiError::bad_request("invalid_upload", format!("the upload failed: {e}"))
        };
        while let Some(mut field) = form.try_next().await.map_err(invalid)? {
            if field.name() != Some("file") {
                while field.try_next().await.map_err(invalid)?.is_some() {}
                continue;
            }
            let filename: String = field
                .content_disposition()
                .and_then(|cd| cd.get_filename())
                .unwrap_or("upload.csv")
                .chars()
                .take(200)
                .collect();
            // Recreate the directory if something cleaned the temp dir.
            std::fs::create_dir_all(self.dir.path())
                .map_err(|e| UiError::internal(format!("cannot store the upload: {e}")))?;
            let temp = tempfile::Builder::new()
                .prefix("upload-")
                .suffix(".csv")
                .tempfile_in(self.dir.path())
                .map_err(|e| UiError::internal(format!("cannot store the upload: {e}")))?;
            let mut out = tokio::fs::File::from_std(
                temp.reopen()
                    .map_err(|e| UiError::internal(format!("cannot store the upload: {e}")))?,
            );
            let mut size = 0u64;
            while let Some(chunk) = field.try_next().await.map_err(invalid)? {
                size += chunk.len() as u64;
                if size > self.max_bytes {
                    return Err(UiError::too_large(
                        "file_too_large",
                        format!("the file is larger than {} bytes", self.max_bytes),
                    ));
                }
                out.write_all(&chunk)
                    .await
                    .map_err(|e| UiError::internal(format!("cannot store the upload: {e}")))?;
            }
            out.flush()
                .await
                .map_err(|e| UiError::internal(format!("cannot store the upload: {e}")))?;
            drop(out);
            let path = temp.path().to_owned();
            let inspection = tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(path).map_err(|e| {
                    Rejected::NotCsv(format!("the stored upload cannot be read: {e}"))
                })?;
                inspect(std::io::BufReader::new(file))
            })
            .await
            .map_err(|e| UiError::internal(e.to_string()))??;
            let upload = Arc::new(Upload {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                filename,
                size,
                inspection,
                file: temp,
            });
            let mut kept = self.kept.lock().unwrap();
            kept.push_back(upload.clone());
            while kept.len() > KEPT_UPLOADS {
                kept.pop_front();
            }
            return Ok(upload);
        }
        Err(UiError::bad_request(
            "no_file",
            "choose a file to upload (form field \"file\")",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inspect_bytes(b: &[u8]) -> Result<Inspection, Rejected> {
        inspect(std::io::Cursor::new(b.to_vec()))
    }

    #[test]
    fn reads_headers_and_preview() {
        let mut csv = String::from("ts,server_id,cpu_pct\n");
        for i in 0..20 {
            csv.push_str(&format!("t{i},server_{i},{i}.5\n"));
        }
        let i = inspect_bytes(csv.as_bytes()).unwrap();
        assert_eq!(i.delimiter, ',');
        assert_eq!(i.headers, ["ts", "server_id", "cpu_pct"]);
        assert_eq!(i.preview.len(), PREVIEW_ROWS);
        assert_eq!(i.preview[0], ["t0", "server_0", "0.5"]);
        assert_eq!(i.preview_lines[..3], [2, 3, 4]);
    }

    #[test]
    fn the_sample_file_inspects() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/data/server_metrics.csv"
        );
        let file = std::fs::File::open(path).expect("examples/data ships with the repo");
        let i = inspect(file).unwrap();
        assert_eq!(
            i.headers,
            [
                "ts",
                "server_id",
                "cpu_pct",
                "mem_pct",
                "net_in",
                "net_out",
                "disk_io"
            ]
        );
        assert_eq!(i.preview[0][1], "server_1");
    }

    #[test]
    fn other_delimiters_bom_and_crlf() {
        let i = inspect_bytes(b"\xEF\xBB\xBFa;b;\"c;d\"\r\n1;2;3\r\n").unwrap();
        assert_eq!(i.delimiter, ';');
        assert_eq!(i.headers, ["a", "b", "c;d"]);
        assert_eq!(i.preview, [["1", "2", "3"]]);
        assert_eq!(sniff_delimiter("a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter("\"x,y\"|z"), b'|');
    }

    #[test]
    fn a_single_column_without_delimiter_is_csv() {
        let i = inspect_bytes(b"name\nalice\nbob\n").unwrap();
        assert_eq!(i.headers, ["name"]);
        assert_eq!(i.preview.len(), 2);
    }

    #[test]
    fn ragged_and_multi_line_rows_still_preview() {
        let i = inspect_bytes(b"a,b,c\n1,2\n\"x\ny\",2,3,4\n5,6,7\n").unwrap();
        assert_eq!(i.preview[0].len(), 2);
        assert_eq!(i.preview[1], ["x\ny", "2", "3", "4"]);
        assert_eq!(
            i.preview_lines,
            [2, 3, 5],
            "line numbers count quoted newlines"
        );
    }

    #[test]
    fn empty_and_header_only_files() {
        assert!(matches!(inspect_bytes(b""), Err(Rejected::Empty(_))));
        let Err(Rejected::Empty(m)) = inspect_bytes(b"a,b\n") else {
            panic!("header-only accepted");
        };
        assert!(m.contains("no rows"));
    }

    #[test]
    fn binary_files_are_not_csv() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let Err(Rejected::NotCsv(m)) = inspect_bytes(png) else {
            panic!("png accepted");
        };
        assert!(m.contains("binary"), "{m}");
        let latin1 = b"caf\xe9,x\n1,2\n";
        assert!(matches!(inspect_bytes(latin1), Err(Rejected::NotCsv(_))));
        assert!(matches!(
            inspect_bytes(b"\n\na,b\n"),
            Err(Rejected::NotCsv(_))
        ));
        assert!(matches!(
            inspect_bytes(b"\x1b[0m,x\n1,2\n"),
            Err(Rejected::NotCsv(_))
        ));
    }
}

//! From CSV rows to records: which column is the key, which columns make
//! the payload, how values are typed, and how rows that cannot be sent are
//! reported (by line number, in a bounded list plus a count).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use yak_client::fields::field_value;

/// How rows become records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowMapping {
    headers: Vec<String>,
    key: Option<usize>,
    columns: Vec<usize>,
    typed: bool,
}

/// What the user chose on the page.
#[derive(Debug, Clone, Deserialize)]
pub struct MappingChoice {
    /// The key column's header, or none.
    #[serde(default)]
    pub key_column: Option<String>,
    /// The payload's columns, in this order; absent means every column, in
    /// the file's order.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Numbers and `true`/`false` become JSON numbers and booleans
    /// (default; see [`yak_client::fields`]), otherwise every value is a
    /// string.
    #[serde(default = "yes")]
    pub typed: bool,
}

fn yes() -> bool {
    true
}

impl Default for MappingChoice {
    fn default() -> Self {
        Self {
            key_column: None,
            columns: None,
            typed: true,
        }
    }
}

impl RowMapping {
    /// Checks the choice against the file's headers.
    pub fn new(headers: &[String], choice: &MappingChoice) -> Result<Self, String> {
        let find = |name: &str| {
            headers
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| format!("the file has no column {name:?}"))
        };
        let key = match choice.key_column.as_deref() {
            None | Some("") => None,
            Some(name) => Some(find(name)?),
        };
        let columns = match &choice.columns {
            None => (0..headers.len()).collect(),
            Some(names) => {
                let mut columns = Vec::with_capacity(names.len());
                for name in names {
                    let i = find(name)?;
                    if !columns.contains(&i) {
                        columns.push(i);
                    }
                }
                columns
            }
        };
        if columns.is_empty() {
            return Err("choose at least one column for the payload".to_owned());
        }
        Ok(Self {
            headers: headers.to_vec(),
            key,
            columns,
            typed: choice.typed,
        })
    }

    /// The key and payload of one row, or why the row cannot be sent.
    pub fn map_row(&self, row: &csv::ByteRecord) -> Result<(Option<String>, Value), String> {
        if row.len() != self.headers.len() {
            return Err(format!(
                "expected {} fields, found {}",
                self.headers.len(),
                row.len()
            ));
        }
        let text = |i: usize| {
            std::str::from_utf8(&row[i])
                .map_err(|_| format!("field {} ({}) is not valid UTF-8", i + 1, self.headers[i]))
        };
        let key = self.key.map(text).transpose()?.map(str::to_owned);
        let mut payload = Map::with_capacity(self.columns.len());
        for &i in &self.columns {
            payload.insert(self.headers[i].clone(), field_value(text(i)?, self.typed));
        }
        Ok((key, Value::Object(payload)))
    }
}

/// A row that was not sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowFailure {
    /// The line the row starts on (the header is line 1).
    pub line: u64,
    pub reason: String,
}

/// The first failures, and how many there were in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FailureLog {
    pub first: Vec<RowFailure>,
    pub total: u64,
}

/// Failures listed one by one; past that they are only counted.
pub const LISTED_FAILURES: usize = 100;

impl FailureLog {
    pub fn push(&mut self, failure: RowFailure) {
        self.total += 1;
        if self.first.len() < LISTED_FAILURES {
            self.first.push(failure);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn headers() -> Vec<String> {
        ["ts", "server_id", "cpu_pct", "ok"]
            .map(str::to_owned)
            .to_vec()
    }

    fn row(fields: &[&[u8]]) -> csv::ByteRecord {
        csv::ByteRecord::from(fields.to_vec())
    }

    #[test]
    fn whole_row_is_the_default_payload() {
        let m = RowMapping::new(&headers(), &MappingChoice::default()).unwrap();
        let (key, payload) = m
            .map_row(&row(&[
                b"2026-11-01T00:00:00Z",
                b"server_1",
                b"92.4",
                b"true",
            ]))
            .unwrap();
        assert_eq!(key, None);
        assert_eq!(
            payload,
            json!({"ts": "2026-11-01T00:00:00Z", "server_id": "server_1", "cpu_pct": 92.4, "ok": true})
        );
    }

    #[test]
    fn chosen_key_and_columns() {
        let choice = MappingChoice {
            key_column: Some("server_id".to_owned()),
            columns: Some(vec!["cpu_pct".to_owned(), "ts".to_owned()]),
            typed: false,
        };
        let m = RowMapping::new(&headers(), &choice).unwrap();
        let (key, payload) = m.map_row(&row(&[b"t", b"s7", b"1.5", b"x"])).unwrap();
        assert_eq!(key.as_deref(), Some("s7"));
        assert_eq!(payload, json!({"cpu_pct": "1.5", "ts": "t"}));
    }

    #[test]
    fn bad_choices_are_refused() {
        let unknown = MappingChoice {
            key_column: Some("nope".to_owned()),
            ..Default::default()
        };
        assert!(
            RowMapping::new(&headers(), &unknown)
                .unwrap_err()
                .contains("nope")
        );
        let empty = MappingChoice {
            columns: Some(Vec::new()),
            ..Default::default()
        };
        assert!(RowMapping::new(&headers(), &empty).is_err());
    }

    #[test]
    fn ragged_rows_and_bad_utf8_are_row_failures() {
        let m = RowMapping::new(&headers(), &MappingChoice::default()).unwrap();
        assert_eq!(
            m.map_row(&row(&[b"a", b"b"])).unwrap_err(),
            "expected 4 fields, found 2"
        );
        let err = m
            .map_row(&row(&[b"a", b"\xff\xfe", b"1", b"2"]))
            .unwrap_err();
        assert_eq!(err, "field 2 (server_id) is not valid UTF-8");
        // Bad bytes in a column that is not sent do not matter.
        let only_ts = MappingChoice {
            columns: Some(vec!["ts".to_owned()]),
            ..Default::default()
        };
        let m = RowMapping::new(&headers(), &only_ts).unwrap();
        assert!(m.map_row(&row(&[b"a", b"\xff", b"1", b"2"])).is_ok());
    }

    #[test]
    fn failure_log_is_bounded_but_counts_everything() {
        let mut log = FailureLog::default();
        for line in 0..(LISTED_FAILURES as u64 + 50) {
            log.push(RowFailure {
                line,
                reason: "x".to_owned(),
            });
        }
        assert_eq!(log.first.len(), LISTED_FAILURES);
        assert_eq!(log.total, LISTED_FAILURES as u64 + 50);
        assert_eq!(log.first[0].line, 0);
    }
}

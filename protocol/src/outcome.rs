//! What a refused or failed produce says about its records: the
//! `"written"` field of the error body, which decides whether a client may
//! retry without risking a duplicate.

use serde::{Deserialize, Serialize};

/// Whether the records of a failed produce may have been stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Written {
    /// Certainly not stored, and never will be: safe to send again.
    No,
    /// Maybe stored: only an idempotent producer may send again.
    Unknown,
}

impl Written {
    /// The wire form, `"no"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Written::No => "no",
            Written::Unknown => "unknown",
        }
    }

    /// Reads the wire form; anything else is not a known outcome.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "no" => Some(Written::No),
            "unknown" => Some(Written::Unknown),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_round_trips() {
        for w in [Written::No, Written::Unknown] {
            assert_eq!(Written::parse(w.as_str()), Some(w));
            assert_eq!(serde_json::to_value(w).unwrap(), w.as_str());
        }
        assert_eq!(Written::parse("yes"), None);
    }
}

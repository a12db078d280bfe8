//! Where invoices come from: a CSV file (the repository ships
//! `examples/data/invoices.csv`) or generated ones.
//!
//! Either way an invoice is a JSON object `{invoice_id, customer, amount,
//! currency, issued_at}` with `amount` a number where the text is one.
//! A CSV's `valid` column (the shipped file has one, for checking) is not
//! sent: the filter decides validity from the invoice alone.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rand::{Rng, SeedableRng, seq::IndexedRandom};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Number, Value, json};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The shipped CSV, relative to the repository root.
pub const SHIPPED_CSV: &str = "examples/data/invoices.csv";

/// Which invoices to produce.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// CSV file of invoices with the header
    /// invoice_id,customer,amount,currency,issued_at (other columns, such as
    /// the shipped file's `valid`, are not sent).
    #[arg(long, env = "YAK_INVOICES_CSV", default_value = SHIPPED_CSV)]
    pub csv: PathBuf,
    /// Generate this many invoices instead of reading the CSV (about one in
    /// five breaks the rule, in one of five ways).
    #[arg(long, env = "YAK_INVOICES_COUNT", conflicts_with = "csv",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub count: Option<u32>,
    /// Seed of the generated invoices: the same seed gives the same
    /// invoices.
    #[arg(long, env = "YAK_INVOICES_SEED", default_value_t = 1)]
    pub seed: u64,
}

impl SourceArgs {
    /// The invoices, in order.
    pub fn load(&self) -> anyhow::Result<Vec<Value>> {
        match self.count {
            Some(count) => Ok(generated(count, self.seed)
                .into_iter()
                .map(|(invoice, _)| invoice)
                .collect()),
            None => from_csv(&self.csv),
        }
    }

    /// Where they come from, for progress lines.
    pub fn describe(&self) -> String {
        match self.count {
            Some(count) => format!("{count} generated invoices (seed {})", self.seed),
            None => format!("the invoices of {}", self.csv.display()),
        }
    }
}

/// One CSV row, as text.
#[derive(Debug, Deserialize)]
struct Row {
    invoice_id: String,
    customer: String,
    amount: String,
    currency: String,
    issued_at: String,
}

impl Row {
    fn into_invoice(self) -> Value {
        json!({
            "invoice_id": self.invoice_id,
            "customer": self.customer,
            "amount": amount(&self.amount),
            "currency": self.currency,
            "issued_at": self.issued_at,
        })
    }
}

/// An amount's text as a JSON number, or as the text itself where it is
/// no finite number (which the rule then refuses).
fn amount(text: &str) -> Value {
    text.trim()
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or_else(|| Value::String(text.to_owned()), Value::Number)
}

/// Every row of the CSV file at `path` as an invoice.
pub fn from_csv(path: &Path) -> anyhow::Result<Vec<Value>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| {
        format!(
            "opening {} (run from the repository root, or pass --csv)",
            path.display()
        )
    })?;
    reader
        .deserialize::<Row>()
        .enumerate()
        .map(|(i, row)| {
            row.map(Row::into_invoice)
                .with_context(|| format!("{}: row {}", path.display(), i + 1))
        })
        .collect()
}

const CUSTOMERS: [&str; 8] = [
    "Acme Ltd",
    "Globex",
    "Hooli",
    "Initech",
    "Soylent",
    "Stark Industries",
    "Umbrella",
    "Wayne Enterprises",
];
const CURRENCIES: [&str; 4] = ["EUR", "GBP", "JPY", "USD"];
/// 2026-11-01T00:00:00Z, where the shipped CSV starts too.
const FIRST_ISSUED_AT: i64 = 1_793_491_200;

/// `count` invoices from `seed`, each with whether it was made valid: one
/// in five is made invalid, by one defect chosen at random.
pub fn generated(count: u32, seed: u64) -> Vec<(Value, bool)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            let issued = OffsetDateTime::from_unix_timestamp(FIRST_ISSUED_AT + i64::from(i) * 420)
                .ok()
                .and_then(|t| t.format(&Rfc3339).ok())
                .expect("a time in 2026 formats");
            let cents: u32 = rng.random_range(100..500_000);
            let mut invoice = json!({
                "invoice_id": format!("GEN-{seed}-{i:07}"),
                "customer": CUSTOMERS.choose(&mut rng).expect("not empty"),
                "amount": f64::from(cents) / 100.0,
                "currency": CURRENCIES.choose(&mut rng).expect("not empty"),
                "issued_at": issued,
            });
            let valid = rng.random_ratio(4, 5);
            if !valid {
                let (field, value) = match rng.random_range(0..5) {
                    0 => ("currency", json!("")),
                    1 => ("currency", json!("CHF")),
                    2 => ("amount", json!(-f64::from(cents) / 100.0)),
                    3 => ("customer", json!("")),
                    _ => ("issued_at", json!("01/11/2026 09:30")),
                };
                invoice[field] = value;
            }
            (invoice, valid)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rule;

    fn shipped_csv() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/invoices.csv")
    }

    /// The rule, applied to the invoices as sent (without the `valid`
    /// column), agrees with that column on every row of the shipped file.
    #[test]
    fn the_rule_reproduces_the_shipped_valid_column() {
        let invoices = from_csv(&shipped_csv()).unwrap();
        let mut reader = csv::Reader::from_path(shipped_csv()).unwrap();
        let expected: Vec<bool> = reader.records().map(|r| &r.unwrap()[5] == "true").collect();
        assert_eq!(invoices.len(), 5000);
        assert_eq!(expected.len(), invoices.len());
        for (invoice, expected) in invoices.iter().zip(&expected) {
            assert_eq!(rule::is_valid(invoice), *expected, "{invoice}");
            assert!(invoice.get("valid").is_none(), "the answer is not sent");
        }
        assert_eq!(expected.iter().filter(|v| **v).count(), 3972);
    }

    #[test]
    fn amounts_become_numbers_where_they_are_numbers() {
        assert_eq!(amount("578.98"), json!(578.98));
        assert_eq!(amount("-38.71"), json!(-38.71));
        assert_eq!(amount("1289.0"), json!(1289.0));
        assert_eq!(amount("NaN"), json!("NaN"));
        assert_eq!(amount(""), json!(""));
    }

    #[test]
    fn generated_invoices_are_reproducible_and_break_the_rule_as_meant() {
        let invoices = generated(2000, 7);
        assert_eq!(invoices, generated(2000, 7));
        assert_ne!(invoices, generated(2000, 8));
        let invalid = invoices.iter().filter(|(_, valid)| !valid).count();
        assert!((300..500).contains(&invalid), "{invalid} of 2000 invalid");
        for (invoice, valid) in &invoices {
            assert_eq!(rule::is_valid(invoice), *valid, "{invoice}");
        }
        assert_eq!(invoices[0].0["issued_at"], "2026-11-01T00:00:00Z");
        assert_eq!(invoices[1].0["issued_at"], "2026-11-01T00:07:00Z");
    }
}

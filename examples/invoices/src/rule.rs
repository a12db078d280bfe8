//! The validation rule: which invoices are valid, and why the others are
//! not.
//!
//! Invariant: [`check`] is a pure function of the payload — no clock, no
//! lookups, no randomness. The exactly-once claim of the pipeline rests on
//! it: a replayed input record must be routed to the same output topic as
//! the first time, or the broker sees a new (producer id, sequence) pair
//! in a partition where the first copy is not and stores it again.

use std::fmt;

use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// The currencies an invoice may be in.
pub const CURRENCIES: [&str; 4] = ["EUR", "GBP", "JPY", "USD"];

/// The rule as `--help` and the docs state it (docs/groups.md repeats it).
pub const SUMMARY: &str = "\
An invoice (the JSON payload of a record in the input topic) is valid when
  - invoice_id is a non-empty string,
  - customer is a non-empty string,
  - amount is a JSON number greater than 0,
  - currency is one of EUR, GBP, JPY, USD,
  - issued_at is a string that parses as an RFC 3339 timestamp;
and invalid otherwise (also when the payload is not a JSON object).
Valid invoices go to invoices.valid unchanged; invalid ones to
invoices.invalid with an \"errors\" field listing every rule they break.";

/// One rule an invoice breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    NotAnObject,
    InvoiceId,
    Customer,
    Amount,
    Currency,
    IssuedAt,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Violation::NotAnObject => "the invoice is not a JSON object",
            Violation::InvoiceId => "invoice_id must be a non-empty string",
            Violation::Customer => "customer must be a non-empty string",
            Violation::Amount => "amount must be a number greater than 0",
            Violation::Currency => "currency must be one of EUR, GBP, JPY, USD",
            Violation::IssuedAt => "issued_at must be an RFC 3339 timestamp",
        })
    }
}

/// Every rule `invoice` breaks, in field order; empty when it is valid.
pub fn check(invoice: &Value) -> Vec<Violation> {
    let Some(fields) = invoice.as_object() else {
        return vec![Violation::NotAnObject];
    };
    let text = |name: &str| fields.get(name).and_then(Value::as_str);
    let mut broken = Vec::new();
    if text("invoice_id").is_none_or(|s| s.trim().is_empty()) {
        broken.push(Violation::InvoiceId);
    }
    if text("customer").is_none_or(|s| s.trim().is_empty()) {
        broken.push(Violation::Customer);
    }
    // A JSON number is finite; `-0.0 > 0.0` is false, as it should be.
    let amount = fields.get("amount").and_then(Value::as_f64);
    if amount.is_none_or(|a| a <= 0.0) {
        broken.push(Violation::Amount);
    }
    if text("currency").is_none_or(|c| !CURRENCIES.contains(&c)) {
        broken.push(Violation::Currency);
    }
    if text("issued_at").is_none_or(|t| OffsetDateTime::parse(t, &Rfc3339).is_err()) {
        broken.push(Violation::IssuedAt);
    }
    broken
}

/// True when `invoice` breaks no rule.
pub fn is_valid(invoice: &Value) -> bool {
    check(invoice).is_empty()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn valid() -> Value {
        json!({"invoice_id": "INV-100001", "customer": "Wayne Enterprises", "amount": 578.98,
               "currency": "EUR", "issued_at": "2026-11-01T00:07:00Z"})
    }

    fn with(field: &str, value: Value) -> Value {
        let mut invoice = valid();
        invoice[field] = value;
        invoice
    }

    fn without(field: &str) -> Value {
        let mut invoice = valid();
        invoice.as_object_mut().unwrap().remove(field);
        invoice
    }

    #[test]
    fn a_complete_invoice_is_valid() {
        assert_eq!(check(&valid()), []);
        assert!(is_valid(&with(
            "issued_at",
            json!("2026-11-01T02:07:00.250+02:00")
        )));
        assert!(is_valid(&with("amount", json!(1))));
        assert!(is_valid(&with("amount", json!(0.01))));
        for currency in CURRENCIES {
            assert!(is_valid(&with("currency", json!(currency))), "{currency}");
        }
    }

    #[test]
    fn each_field_is_checked() {
        let cases = [
            (with("invoice_id", json!("")), Violation::InvoiceId),
            (with("invoice_id", json!("  ")), Violation::InvoiceId),
            (with("invoice_id", json!(7)), Violation::InvoiceId),
            (without("invoice_id"), Violation::InvoiceId),
            (with("customer", json!("")), Violation::Customer),
            (with("customer", Value::Null), Violation::Customer),
            (with("amount", json!(0)), Violation::Amount),
            (with("amount", json!(-0.0)), Violation::Amount),
            (with("amount", json!(-38.71)), Violation::Amount),
            (with("amount", json!("578.98")), Violation::Amount),
            (without("amount"), Violation::Amount),
            (with("currency", json!("")), Violation::Currency),
            (with("currency", json!("eur")), Violation::Currency),
            (with("currency", json!("XYZ")), Violation::Currency),
            (without("currency"), Violation::Currency),
            (with("issued_at", json!("2026-11-01")), Violation::IssuedAt),
            (
                with("issued_at", json!("2026-11-01 00:07:00")),
                Violation::IssuedAt,
            ),
            (
                with("issued_at", json!("2026-13-01T00:07:00Z")),
                Violation::IssuedAt,
            ),
            (with("issued_at", json!(1_764_547_620)), Violation::IssuedAt),
        ];
        for (invoice, expected) in cases {
            assert_eq!(check(&invoice), [expected], "{invoice}");
        }
    }

    #[test]
    fn every_broken_rule_is_listed_in_field_order() {
        let invoice = json!({"invoice_id": "INV-1", "amount": -1, "currency": ""});
        assert_eq!(
            check(&invoice),
            [
                Violation::Customer,
                Violation::Amount,
                Violation::Currency,
                Violation::IssuedAt
            ]
        );
        for not_an_object in [json!([1]), json!("INV-1"), Value::Null] {
            assert_eq!(check(&not_an_object), [Violation::NotAnObject]);
        }
    }

    #[test]
    fn the_summary_names_every_currency() {
        for currency in CURRENCIES {
            assert!(SUMMARY.contains(currency));
            assert!(Violation::Currency.to_string().contains(currency));
        }
    }
}

//! What the filter writes for one input record: the output record, in the
//! topic the rule chooses.
//!
//! Invariant: a pure function of the input record (see [`crate::rule`]), so
//! a replayed input record produces the same output record, to the same
//! topic and — by its key — the same partition.

use serde_json::{Value, json};
use yak_client::{Consumed, Record};

use crate::{rule, topics};

/// The output record for `input`: the invoice unchanged in
/// `invoices.valid`, or in `invoices.invalid` with an `errors` list (an
/// input that is not an object is wrapped as `{"payload": …}` first).
/// Keyed by the invoice id, else by the input's key.
pub fn output(input: &Consumed) -> Record {
    let broken = rule::check(&input.payload);
    let key = input.payload["invoice_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .or(input.key.as_deref())
        .map(str::to_owned);
    let record = if broken.is_empty() {
        Record::new(topics::VALID, input.payload.clone())
    } else {
        let errors: Vec<String> = broken.iter().map(ToString::to_string).collect();
        let mut payload = match &input.payload {
            Value::Object(_) => input.payload.clone(),
            other => json!({ "payload": other }),
        };
        payload["errors"] = json!(errors);
        Record::new(topics::INVALID, payload)
    };
    match key {
        Some(key) => record.key(key),
        None => record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumed(payload: Value, key: Option<&str>) -> Consumed {
        Consumed {
            offset: 7,
            key: key.map(str::to_owned),
            payload,
            timestamp: 0,
        }
    }

    #[test]
    fn valid_invoices_go_to_the_valid_topic_unchanged() {
        let invoice = json!({"invoice_id": "INV-1", "customer": "Hooli", "amount": 12.5,
                             "currency": "USD", "issued_at": "2026-11-01T00:00:00Z"});
        let out = output(&consumed(invoice.clone(), Some("other-key")));
        assert_eq!(out.topic, topics::VALID);
        assert_eq!(out.payload, invoice);
        assert_eq!(out.key.as_deref(), Some("INV-1"));
        assert_eq!(out.partition, None, "the key chooses the partition");
    }

    #[test]
    fn invalid_invoices_say_why() {
        let invoice = json!({"invoice_id": "INV-2", "customer": "Hooli", "amount": -3,
                             "currency": "", "issued_at": "2026-11-01T00:00:00Z"});
        let out = output(&consumed(invoice, None));
        assert_eq!(out.topic, topics::INVALID);
        assert_eq!(out.payload["invoice_id"], "INV-2");
        assert_eq!(
            out.payload["errors"],
            json!([
                rule::Violation::Amount.to_string(),
                rule::Violation::Currency.to_string()
            ])
        );
        let odd = output(&consumed(json!("not an invoice"), Some("k")));
        assert_eq!(odd.topic, topics::INVALID);
        assert_eq!(odd.payload["payload"], "not an invoice");
        assert_eq!(odd.key.as_deref(), Some("k"));
    }

    #[test]
    fn the_same_input_gives_the_same_output() {
        let input = consumed(json!({"invoice_id": "INV-3", "amount": 1}), None);
        assert_eq!(output(&input), output(&input));
    }
}

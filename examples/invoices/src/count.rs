//! `yak-invoices count`: reads the three topics and checks the pipeline's
//! promise — every invoice of `invoices.all` is in exactly one output
//! topic, the one the rule chooses.
//!
//! Invoices are matched by `invoice_id`, counting copies: an id produced
//! twice to the input must appear twice in the outputs. Per id:
//! - **missing**: fewer output copies than input copies (not routed yet,
//!   or lost);
//! - **duplicates**: more output copies than input copies (docs/groups.md
//!   says when the guarantee allows them);
//! - **misrouted**: copies in an output topic that the rule does not choose
//!   for any input copy of the id;
//! - **strays**: output copies of an id that is not in the input at all.
//!
//! Input and output invoices without an `invoice_id` cannot be matched and
//! are only counted.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;
use yak_client::{ClientConfig, ConnectArgs, YakClient};

use crate::{read, rule, topics};

#[derive(Debug, clap::Args)]
pub struct CountArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Print one JSON object instead of a table.
    #[arg(long, env = "YAK_INVOICES_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
}

/// What the three topics hold, and how it matches.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Records in `invoices.all`.
    pub all: u64,
    /// Records in `invoices.valid`.
    pub valid: u64,
    /// Records in `invoices.invalid`.
    pub invalid: u64,
    /// Input invoices with an output copy.
    pub routed: u64,
    pub duplicates: u64,
    pub missing: u64,
    pub misrouted: u64,
    pub strays: u64,
    /// Records (input or output) without an `invoice_id`.
    pub without_id: u64,
}

impl Counts {
    /// Nothing missing and nothing misrouted: what `count` exits 0 on.
    pub fn ok(&self) -> bool {
        self.missing == 0 && self.misrouted == 0
    }
}

/// Copies of one invoice id.
#[derive(Debug, Default)]
struct Copies {
    inputs: u64,
    inputs_valid: u64,
    in_valid: u64,
    in_invalid: u64,
}

fn invoice_id(payload: &Value) -> Option<&str> {
    payload["invoice_id"].as_str().filter(|id| !id.is_empty())
}

/// Matches the payloads of the three topics (see the module docs).
pub fn tally(all: &[Value], valid: &[Value], invalid: &[Value]) -> Counts {
    let mut counts = Counts {
        all: all.len() as u64,
        valid: valid.len() as u64,
        invalid: invalid.len() as u64,
        ..Counts::default()
    };
    let mut ids: BTreeMap<&str, Copies> = BTreeMap::new();
    for payload in all {
        let Some(id) = invoice_id(payload) else {
            counts.without_id += 1;
            continue;
        };
        let copies = ids.entry(id).or_default();
        copies.inputs += 1;
        copies.inputs_valid += u64::from(rule::is_valid(payload));
    }
    for (outputs, is_valid_topic) in [(valid, true), (invalid, false)] {
        for payload in outputs {
            let Some(id) = invoice_id(payload) else {
                counts.without_id += 1;
                continue;
            };
            let copies = ids.entry(id).or_default();
            match is_valid_topic {
                true => copies.in_valid += 1,
                false => copies.in_invalid += 1,
            }
        }
    }
    for copies in ids.values() {
        let outputs = copies.in_valid + copies.in_invalid;
        if copies.inputs == 0 {
            counts.strays += outputs;
            continue;
        }
        counts.routed += outputs.min(copies.inputs);
        counts.missing += copies.inputs.saturating_sub(outputs);
        counts.duplicates += outputs.saturating_sub(copies.inputs);
        if copies.inputs_valid == 0 {
            counts.misrouted += copies.in_valid;
        }
        if copies.inputs_valid == copies.inputs {
            counts.misrouted += copies.in_invalid;
        }
    }
    counts
}

/// Reads the three topics and tallies them. The outputs' high-water marks
/// are taken before the input's: every output record then stems from an
/// input record below the input's mark, so a count taken while filters
/// run shows invoices not routed yet as missing, never as strays.
pub async fn measure(client: &YakClient) -> anyhow::Result<Counts> {
    let valid = read::snapshot(client, topics::VALID).await?;
    let invalid = read::snapshot(client, topics::INVALID).await?;
    let all = read::snapshot(client, topics::ALL).await?;
    Ok(tally(
        &read::payloads(client, &all).await?,
        &read::payloads(client, &valid).await?,
        &read::payloads(client, &invalid).await?,
    ))
}

/// The counts as lines of a table.
pub fn table(counts: &Counts) -> String {
    let rows = [
        (topics::ALL, counts.all),
        (topics::VALID, counts.valid),
        (topics::INVALID, counts.invalid),
        ("routed", counts.routed),
        ("duplicates", counts.duplicates),
        ("missing", counts.missing),
        ("misrouted", counts.misrouted),
        ("strays", counts.strays),
        ("without an id", counts.without_id),
    ];
    rows.iter()
        .map(|(what, n)| format!("{what:<18} {n:>8}\n"))
        .collect()
}

pub async fn run(args: CountArgs) -> anyhow::Result<()> {
    let client = args.connect.client(ClientConfig::default())?;
    let counts = measure(&client).await?;
    if args.json {
        println!("{}", serde_json::to_string(&counts)?);
    } else {
        print!("{}", table(&counts));
    }
    check(&counts)
}

/// An error naming what is wrong, unless [`Counts::ok`].
pub fn check(counts: &Counts) -> anyhow::Result<()> {
    if !counts.ok() {
        bail!(
            "{} invoices missing, {} misrouted",
            counts.missing,
            counts.misrouted
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn invoice(id: &str, valid: bool) -> Value {
        json!({"invoice_id": id, "customer": "Hooli", "amount": if valid { 10.5 } else { -1.0 },
               "currency": "EUR", "issued_at": "2026-11-01T00:00:00Z"})
    }

    #[test]
    fn a_complete_run_is_ok() {
        let (a, b, c) = (invoice("A", true), invoice("B", false), invoice("C", true));
        let counts = tally(&[a.clone(), b.clone(), c.clone()], &[c, a], &[b]);
        assert_eq!(
            counts,
            Counts {
                all: 3,
                valid: 2,
                invalid: 1,
                routed: 3,
                ..Counts::default()
            }
        );
        assert!(counts.ok());
        assert!(check(&counts).is_ok());
    }

    #[test]
    fn missing_duplicated_misrouted_and_stray_invoices_are_counted() {
        let all = [
            invoice("A", true),
            invoice("B", false),
            invoice("C", true),
            invoice("D", true),
        ];
        let valid = [
            invoice("A", true),
            invoice("A", true),
            invoice("B", false),
            invoice("Z", true),
        ];
        let invalid = [invoice("D", true), json!({"amount": 3})];
        let counts = tally(&all, &valid, &invalid);
        assert_eq!(counts.routed, 3, "A, B and D have a copy");
        assert_eq!(counts.duplicates, 1, "A twice");
        assert_eq!(counts.missing, 1, "C");
        assert_eq!(counts.misrouted, 2, "B in valid, D in invalid");
        assert_eq!(counts.strays, 1, "Z");
        assert_eq!(counts.without_id, 1);
        assert!(!counts.ok());
        let error = check(&counts).unwrap_err().to_string();
        assert_eq!(error, "1 invoices missing, 2 misrouted");
    }

    #[test]
    fn an_invoice_produced_twice_needs_two_copies() {
        let a = invoice("A", true);
        let once = tally(&[a.clone(), a.clone()], std::slice::from_ref(&a), &[]);
        assert_eq!((once.routed, once.missing, once.duplicates), (1, 1, 0));
        let twice = tally(&[a.clone(), a.clone()], &[a.clone(), a], &[]);
        assert_eq!((twice.routed, twice.missing, twice.duplicates), (2, 0, 0));
    }

    #[test]
    fn the_table_lists_every_count() {
        let table = table(&Counts {
            duplicates: 7,
            ..Counts::default()
        });
        assert!(table.contains("invoices.invalid"), "{table}");
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("duplicates") && l.ends_with(" 7"))
        );
    }
}

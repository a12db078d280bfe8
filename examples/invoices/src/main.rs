//! `yak-invoices`: the invoice pipeline, a produce → filter → produce
//! example built on `yak-client`'s consumer groups.
//!
//! - `generate`: invoices (the shipped CSV, or generated ones) to
//!   `invoices.all`.
//! - `filter`: one member of the group `invoice-filters`; routes each
//!   invoice to `invoices.valid` or `invoices.invalid` by the rule of
//!   [`rule`], exactly once (docs/groups.md explains why and within which
//!   bound).
//! - `count`: what the three topics hold, and whether every invoice is in
//!   exactly one output topic, the right one.
//! - `run`: the demo in one command against `yak up`.
//!
//! Modules: [`rule`] (the validation rule), [`route`] (the output record
//! of an input record), [`producer_id`] (the producer id of an input
//! partition), [`source`] (invoices from a CSV or generated), [`topics`],
//! [`read`] (a topic up to its high-water mark), and one module per
//! subcommand. Every flag has a `YAK_*` environment fallback.

mod count;
mod filter;
mod generate;
mod producer_id;
mod read;
mod route;
mod rule;
mod run;
mod source;
mod topics;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "yak-invoices",
    version,
    about = "The invoice pipeline: generate invoices, route them with a consumer group, count"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce invoices to invoices.all (creating the pipeline's topics).
    Generate(generate::GenerateArgs),
    /// Join the filter group and route invoices.all to invoices.valid and
    /// invoices.invalid, exactly once.
    Filter(filter::FilterArgs),
    /// Count the three topics: duplicates, missing and misrouted invoices.
    Count(count::CountArgs),
    /// The demo: generate, run N filters until every invoice is routed,
    /// count.
    Run(run::RunArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Generate(args) => generate::run(args).await,
        Command::Filter(args) => filter::run(args).await,
        Command::Count(args) => count::run(args).await,
        Command::Run(args) => run::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every flag of every subcommand, `--help` and `--version` aside, has
    /// its own `YAK_*` variable.
    #[test]
    fn every_flag_has_an_environment_fallback() {
        let mut command = Cli::command();
        command.build();
        let missing = testkit::cli::flags_without_env(&command);
        assert!(missing.is_empty(), "{missing:#?}");
        let filter = command.find_subcommand("filter").expect("filter");
        for flag in ["bootstrap", "token", "tls-ca", "group", "max-records"] {
            assert!(
                filter.get_arguments().any(|a| a.get_long() == Some(flag)),
                "filter --{flag}"
            );
        }
    }

    #[test]
    fn filter_help_states_the_rule_and_max_records_is_capped() {
        let mut command = Cli::command();
        let help = command
            .find_subcommand_mut("filter")
            .expect("filter")
            .render_long_help()
            .to_string();
        assert!(
            help.contains("currency is one of EUR, GBP, JPY, USD"),
            "{help}"
        );
        use clap::Parser;
        assert!(Cli::try_parse_from(["yak-invoices", "filter", "--max-records", "201"]).is_err());
        assert!(Cli::try_parse_from(["yak-invoices", "filter", "--max-records", "200"]).is_ok());
        assert!(Cli::try_parse_from(["yak-invoices", "generate", "--count", "5"]).is_ok());
        assert!(
            Cli::try_parse_from(["yak-invoices", "generate", "--count", "5", "--csv", "x.csv"])
                .is_err(),
            "either a CSV or generated invoices"
        );
    }
}

//! `yak`: the command line of YAK.
//!
//! - `yak up`: the whole local cluster for the demo (Redis, a broker,
//!   followers, the producer and consumer UIs), each its own process.
//! - `yak bench`: YAK against Redis Streams, figures to `bench-results.json`.
//! - `yak produce`, `yak consume` (alone or as a member of a consumer
//!   group), `yak topics …`, `yak groups …`, `yak cluster status`: talk to
//!   a cluster through the client library.
//!
//! Every flag has a `YAK_*` environment fallback.

mod cmd;
mod local;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "yak",
    version,
    about = "YAK message broker: local cluster and command-line client"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the whole local cluster (Redis, broker, followers, UIs).
    Up(cmd::up::UpArgs),
    /// Send records: a value, a file of lines, or a CSV file.
    Produce(cmd::produce::ProduceArgs),
    /// Read records from a partition (or all partitions) of a topic, or as
    /// a member of a consumer group.
    Consume(cmd::consume::ConsumeArgs),
    /// List, create and describe topics; add partitions.
    Topics(cmd::topics::TopicsArgs),
    /// List and describe consumer groups; reset their offsets.
    Groups(cmd::groups::GroupsArgs),
    /// Cluster state: leader, epoch, nodes, ISR and lag per partition.
    Cluster(cmd::cluster::ClusterArgs),
    /// Benchmark YAK against Redis Streams on this machine.
    Bench(cmd::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up(args) => cmd::up::run(args).await,
        Command::Produce(args) => cmd::produce::run(args).await,
        Command::Consume(args) => cmd::consume::run(args).await,
        Command::Topics(args) => cmd::topics::run(args).await,
        Command::Groups(args) => cmd::groups::run(args).await,
        Command::Cluster(args) => cmd::cluster::run(args).await,
        Command::Bench(args) => cmd::bench::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every flag of every subcommand, `--help` and `--version` aside, has
    /// its own `YAK_*` variable: a flag added without one fails here.
    #[test]
    fn every_flag_has_an_environment_fallback() {
        let mut command = Cli::command();
        command.build();
        let missing = testkit::cli::flags_without_env(&command);
        assert!(missing.is_empty(), "{missing:#?}");
        // The walk reaches nested subcommands and flattened flags.
        let create = command
            .find_subcommand("topics")
            .and_then(|t| t.find_subcommand("create"))
            .expect("yak topics create");
        assert!(
            create
                .get_arguments()
                .any(|a| a.get_long() == Some("partitions"))
        );
    }
}

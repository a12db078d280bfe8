//! One module per subcommand, plus the flags they share.

pub mod bench;
pub mod cluster;
pub mod consume;
pub mod produce;
pub mod topics;
pub mod up;

use std::path::PathBuf;

use clap::Args;
use yak_client::{ClientConfig, YakClient};

/// Where the cluster is, and how to get in.
#[derive(Debug, Clone, Args)]
pub struct Bootstrap {
    /// Node URLs to find the leader through (comma-separated).
    #[arg(
        long,
        env = "YAK_BOOTSTRAP",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:5001,http://127.0.0.1:5002"
    )]
    pub bootstrap: Vec<String>,
    /// Bearer token for nodes started with `--client-token`.
    #[arg(long, env = "YAK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM file of an extra CA to trust for `https://` nodes.
    #[arg(long, env = "YAK_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
}

/// Prints a line to stdout; a closed pipe (`yak … | head`) ends the
/// program quietly instead of panicking.
pub fn out(line: impl std::fmt::Display) {
    use std::io::Write;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{line}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("yak: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

impl Bootstrap {
    pub fn client(&self) -> anyhow::Result<YakClient> {
        let tls_ca_pem = match &self.tls_ca {
            Some(path) => Some(yak_client::read_ca(path)?),
            None => None,
        };
        let config = ClientConfig {
            token: self.token.clone().filter(|t| !t.is_empty()),
            tls_ca_pem,
            ..ClientConfig::default()
        };
        Ok(YakClient::with_config(self.bootstrap.clone(), config)?)
    }
}

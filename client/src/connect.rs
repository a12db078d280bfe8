//! [`ConnectArgs`]: the flags every YAK program that talks to a cluster
//! takes — where the nodes are, the client token, an extra CA — and the
//! client they make. The `yak` command and both UIs flatten it into their
//! own flags, so the three agree on names, defaults and variables. Behind
//! the `cli` feature (it needs clap).

use std::path::PathBuf;

use crate::{ClientConfig, Result, YakClient, read_ca};

/// Where the cluster is, and how to get in.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Node URLs to find the leader through, comma-separated.
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

impl ConnectArgs {
    /// `base` (a program's retry policy) with the token and CA of the
    /// flags. An empty token is no token.
    pub fn config(&self, base: ClientConfig) -> Result<ClientConfig> {
        let tls_ca_pem = match &self.tls_ca {
            Some(path) => Some(read_ca(path)?),
            None => None,
        };
        Ok(ClientConfig {
            token: self.token.clone().filter(|t| !t.is_empty()),
            tls_ca_pem,
            ..base
        })
    }

    /// A client of the bootstrap nodes with [`ConnectArgs::config`].
    pub fn client(&self, base: ClientConfig) -> Result<YakClient> {
        YakClient::with_config(self.bootstrap.iter().cloned(), self.config(base)?)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        connect: ConnectArgs,
    }

    #[test]
    fn an_empty_token_is_no_token_and_a_missing_ca_is_an_error() {
        let cli = Cli::try_parse_from(["x", "--token", "", "--bootstrap", "http://a:1,http://b:2"])
            .unwrap();
        assert_eq!(cli.connect.bootstrap, ["http://a:1", "http://b:2"]);
        let config = cli.connect.config(ClientConfig::default()).unwrap();
        assert_eq!(config.token, None);
        let cli = Cli::try_parse_from(["x", "--tls-ca", "/no/such/ca.pem"]).unwrap();
        assert!(cli.connect.config(ClientConfig::default()).is_err());
    }
}

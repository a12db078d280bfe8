//! The node's configuration: command-line flags with `YAK_*` environment
//! fallbacks, shared by the `broker` and `follower` binaries.
//!
//! Invariant: a node with a client token also has a cluster token, so
//! that guarding the client endpoints never leaves `/internal/…` open.

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    time::Duration,
};

use clap::{Args, ValueEnum};
use partition_log::FsyncPolicy;
use yak_web::ServerArgs;

use yak_protocol::TopicConfig;

/// A configuration the node cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--client-token needs --cluster-token too: /internal/… would be open to anyone")]
    ClientTokenWithoutClusterToken,
    #[error(
        "--tcp-listen with --tls-cert: the binary port has no TLS; leave it off \
         (clients then produce over HTTPS)"
    )]
    TcpWithTls,
    #[error("reading the CA file {path}: {source}")]
    Ca {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// How a node starts; after that, both obey the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAs {
    /// Try to take the lease at once (`broker`).
    Candidate,
    /// Follow first; try for the lease only after one lease TTL without a
    /// leader (`follower`), so that a broker starting alongside wins.
    Follower,
}

impl StartAs {
    pub fn default_port(self) -> u16 {
        match self {
            StartAs::Candidate => 5001,
            StartAs::Follower => 5002,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            StartAs::Candidate => "broker",
            StartAs::Follower => "follower",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--tcp-listen`: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpListen {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for TcpListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(TcpListen::Off),
            addr => addr
                .parse()
                .map(TcpListen::At)
                .map_err(|e| format!("{e}: expected host:port or `off`")),
        }
    }
}

/// Flags of a YAK node.
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// Unique id of this node in the cluster [default: <binary>-<port>].
    #[arg(long, env = "YAK_NODE_ID")]
    pub node_id: Option<String>,

    /// Address to listen on [default: 127.0.0.1:5001 for broker, :5002 for follower].
    #[arg(long, env = "YAK_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// URL that clients and other nodes use to reach this node
    /// [default: http://<listen>, https://<listen> with --tls-cert].
    #[arg(long, env = "YAK_ADVERTISED_URL")]
    pub advertised_url: Option<String>,

    /// Address of the binary produce port (`docs/api.md`), or `off`
    /// [default: the --listen address with its port + 100; off with --tls-cert].
    #[arg(long, env = "YAK_TCP_LISTEN")]
    pub tcp_listen: Option<TcpListen>,

    /// host:port that clients use to reach the binary produce port
    /// [default: the host of the advertised URL, the port of --tcp-listen].
    #[arg(long, env = "YAK_ADVERTISED_TCP")]
    pub advertised_tcp: Option<String>,

    /// Address of the Kafka protocol listener (`docs/kafka.md`), or `off`
    /// [default: off].
    #[arg(long, env = "YAK_KAFKA_LISTEN")]
    pub kafka_listen: Option<TcpListen>,

    /// host:port that Kafka clients use to reach this node, published in
    /// the node registry and in Metadata answers [default: the
    /// --kafka-listen address].
    #[arg(long, env = "YAK_KAFKA_ADVERTISED")]
    pub kafka_advertised: Option<String>,

    /// Directory for this node's logs and state [default: ./yak-data/<node-id>].
    #[arg(long, env = "YAK_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Redis holding the lease, epochs, HWMs and metadata.
    #[arg(long, env = "YAK_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,

    /// Cluster name: the prefix of every Redis key.
    #[arg(long, env = "YAK_CLUSTER", default_value = "yak")]
    pub cluster: String,

    /// Leader lease time-to-live in milliseconds.
    #[arg(long, env = "YAK_LEASE_TTL_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(300..=600_000))]
    pub lease_ttl_ms: u64,

    /// Partitions of a topic created without a count.
    #[arg(long, env = "YAK_DEFAULT_PARTITIONS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub default_partitions: u32,

    /// Replicas (leader included) that must have a write before it is acknowledged.
    #[arg(long, env = "YAK_MIN_INSYNC_REPLICAS", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub min_insync_replicas: u32,

    /// A follower not caught up for this long (ms) is dropped from the ISR.
    #[arg(long, env = "YAK_REPLICA_LAG_TIME_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub replica_lag_time_ms: u64,

    /// When log writes are fsynced: always, never, or interval:<ms>.
    #[arg(long, env = "YAK_FSYNC", default_value = "interval:100ms")]
    pub fsync: FsyncPolicy,

    /// Default retention by size: delete a partition's oldest closed,
    /// committed segments while it is larger than this many bytes [default:
    /// unlimited]. Stored with each topic created, which may override it.
    #[arg(long, env = "YAK_RETENTION_BYTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_bytes: Option<u64>,

    /// Default retention by age: delete closed, committed segments last
    /// written longer ago than this many milliseconds [default: unlimited].
    #[arg(long, env = "YAK_RETENTION_MS", value_parser = clap::value_parser!(u64).range(1..))]
    pub retention_ms: Option<u64>,

    /// Segment size in bytes before a partition log rolls.
    #[arg(long, env = "YAK_SEGMENT_BYTES", default_value_t = 128 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(4096..=(1u64 << 31)))]
    pub segment_bytes: u64,

    /// Shared secret that nodes present on /internal endpoints.
    #[arg(long, env = "YAK_CLUSTER_TOKEN", hide_env_values = true)]
    pub cluster_token: Option<String>,

    /// Bearer token clients must present on every endpoint but /health,
    /// /ready, the dashboard page and its static files (needs --cluster-token).
    #[arg(long, env = "YAK_CLIENT_TOKEN", hide_env_values = true)]
    pub client_token: Option<String>,

    /// PEM file of an extra CA to trust when calling other nodes over https.
    #[arg(long, env = "YAK_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Timeouts, connection limits and TLS of the HTTP server.
    #[command(flatten)]
    pub server: ServerArgs,

    /// Create a topic on its first produce.
    #[arg(long, env = "YAK_AUTO_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub auto_create_topics: bool,

    /// Largest payload of one record, in bytes.
    #[arg(long, env = "YAK_MAX_PAYLOAD_BYTES", default_value_t = 1024 * 1024)]
    pub max_payload_bytes: usize,

    /// Largest request body, in bytes.
    #[arg(long, env = "YAK_MAX_REQUEST_BYTES", default_value_t = 32 * 1024 * 1024)]
    pub max_request_bytes: usize,

    /// Local IP that this node's outgoing connections to other nodes
    /// (replication) are bound to. Lets a proxy in front of a node tell its
    /// peers apart (the fault-injection suite uses it); the OS chooses when
    /// unset.
    #[arg(long, env = "YAK_SOURCE_ADDRESS")]
    pub source_address: Option<IpAddr>,

    /// Log output format.
    #[arg(long, env = "YAK_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The local supervisor's control URL (set by `yak up`): the dashboard
    /// then offers Kill -9 and Restart buttons that call it.
    #[arg(long, env = "YAK_DEMO_CONTROL_URL")]
    pub demo_control_url: Option<String>,
}

/// A node's resolved configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub start_as: StartAs,
    pub node_id: String,
    pub listen: SocketAddr,
    pub advertised_url: String,
    /// The binary produce port and the host:port clients reach it at;
    /// `None` when it is off.
    pub tcp: Option<(SocketAddr, String)>,
    /// The Kafka listener and the host:port clients reach it at; `None`
    /// when it is off.
    pub kafka: Option<(SocketAddr, String)>,
    pub data_dir: PathBuf,
    pub redis_url: String,
    pub cluster: String,
    pub lease_ttl: Duration,
    pub default_partitions: u32,
    pub min_insync_replicas: u32,
    pub replica_lag_time: Duration,
    pub fsync: FsyncPolicy,
    pub segment_bytes: u64,
    /// What a topic created here gets unless it says otherwise.
    pub retention: TopicConfig,
    pub cluster_token: Option<String>,
    pub client_token: Option<String>,
    /// PEM certificates of `--tls-ca`, trusted when calling other nodes.
    pub tls_ca_pem: Option<Vec<u8>>,
    pub server: ServerArgs,
    pub auto_create_topics: bool,
    pub max_payload_bytes: usize,
    pub max_request_bytes: usize,
    pub source_address: Option<IpAddr>,
    pub demo_control_url: Option<String>,
}

/// Longest accepted record key, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;

impl NodeArgs {
    /// Fills in the defaults that depend on how the node starts.
    pub fn resolve(self, start_as: StartAs) -> Result<NodeConfig, ConfigError> {
        let listen = self
            .listen
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], start_as.default_port())));
        let node_id = self
            .node_id
            .unwrap_or_else(|| format!("{}-{}", start_as.name(), listen.port()));
        let advertised_url = self
            .advertised_url
            .unwrap_or_else(|| format!("{}://{listen}", self.server.scheme()))
            .trim_end_matches('/')
            .to_owned();
        let tcp = match (self.tcp_listen, self.server.tls_cert.is_some()) {
            (Some(TcpListen::Off), _) | (None, true) => None,
            (Some(TcpListen::At(_)), true) => return Err(ConfigError::TcpWithTls),
            (Some(TcpListen::At(addr)), false) => Some(addr),
            (None, false) => Some(SocketAddr::new(
                listen.ip(),
                listen.port().saturating_add(100),
            )),
        };
        let tcp = tcp.map(|addr| {
            let advertised = self.advertised_tcp.clone().unwrap_or_else(|| {
                let host = reqwest::Url::parse(&advertised_url)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| addr.ip().to_string());
                format!("{host}:{}", addr.port())
            });
            (addr, advertised)
        });
        // With --tls-cert the Kafka listener speaks TLS, and with
        // --client-token it requires SASL/PLAIN (`kafka::sasl`), so unlike
        // the binary port it is never a way around either.
        let kafka = match self.kafka_listen {
            None | Some(TcpListen::Off) => None,
            Some(TcpListen::At(addr)) => Some((
                addr,
                self.kafka_advertised
                    .clone()
                    .unwrap_or_else(|| addr.to_string()),
            )),
        };
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("yak-data").join(&node_id));
        let cluster_token = self.cluster_token.filter(|t| !t.is_empty());
        let client_token = self.client_token.filter(|t| !t.is_empty());
        if client_token.is_some() && cluster_token.is_none() {
            return Err(ConfigError::ClientTokenWithoutClusterToken);
        }
        let tls_ca_pem = match self.tls_ca {
            Some(path) => {
                Some(std::fs::read(&path).map_err(|source| ConfigError::Ca { path, source })?)
            }
            None => None,
        };
        Ok(NodeConfig {
            start_as,
            node_id,
            listen,
            advertised_url,
            tcp,
            kafka,
            data_dir,
            redis_url: self.redis_url,
            cluster: self.cluster,
            lease_ttl: Duration::from_millis(self.lease_ttl_ms),
            default_partitions: self.default_partitions,
            min_insync_replicas: self.min_insync_replicas,
            replica_lag_time: Duration::from_millis(self.replica_lag_time_ms),
            fsync: self.fsync,
            segment_bytes: self.segment_bytes,
            retention: TopicConfig {
                retention_bytes: self.retention_bytes,
                retention_ms: self.retention_ms,
            },
            cluster_token,
            client_token,
            tls_ca_pem,
            server: self.server,
            auto_create_topics: self.auto_create_topics,
            max_payload_bytes: self.max_payload_bytes,
            max_request_bytes: self.max_request_bytes,
            source_address: self.source_address,
            demo_control_url: self
                .demo_control_url
                .filter(|u| !u.is_empty())
                .map(|u| u.trim_end_matches('/').to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        node: NodeArgs,
    }

    fn resolve(args: &[&str]) -> Result<NodeConfig, ConfigError> {
        let argv = std::iter::once("broker").chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .expect("valid flags")
            .node
            .resolve(StartAs::Candidate)
    }

    fn tcp(args: &[&str]) -> Option<(SocketAddr, String)> {
        resolve(args).expect("a valid configuration").tcp
    }

    #[test]
    fn the_binary_port_defaults_to_the_listen_port_plus_100() {
        assert_eq!(
            tcp(&[
                "--listen",
                "0.0.0.0:7000",
                "--advertised-url",
                "http://n1.example:7000"
            ]),
            Some((
                "0.0.0.0:7100".parse().unwrap(),
                "n1.example:7100".to_owned()
            ))
        );
        assert_eq!(
            tcp(&["--tcp-listen", "127.0.0.1:9", "--advertised-tcp", "lb:19"]),
            Some(("127.0.0.1:9".parse().unwrap(), "lb:19".to_owned()))
        );
        assert_eq!(tcp(&["--tcp-listen", "off"]), None);
    }

    #[test]
    fn the_kafka_listener_is_off_by_default_and_advertises_its_address() {
        let kafka = |args: &[&str]| resolve(args).expect("a valid configuration").kafka;
        assert_eq!(kafka(&[]), None);
        assert_eq!(kafka(&["--kafka-listen", "off"]), None);
        assert_eq!(
            kafka(&["--kafka-listen", "127.0.0.1:9092"]),
            Some((
                "127.0.0.1:9092".parse().unwrap(),
                "127.0.0.1:9092".to_owned()
            ))
        );
        assert_eq!(
            kafka(&[
                "--kafka-listen",
                "0.0.0.0:9092",
                "--kafka-advertised",
                "n1:19092"
            ]),
            Some(("0.0.0.0:9092".parse().unwrap(), "n1:19092".to_owned()))
        );
    }

    #[test]
    fn the_kafka_listener_opens_with_tls_and_with_a_client_token() {
        // It has TLS and SASL of its own, so neither refuses it.
        let kafka = |args: &[&str]| resolve(args).expect("a valid configuration").kafka;
        let listen = ["--kafka-listen", "127.0.0.1:9"];
        let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
        let guarded = ["--client-token", "t", "--cluster-token", "c"];
        for flags in [&tls[..], &guarded[..], &[tls, guarded].concat()[..]] {
            let args = [flags, &listen[..]].concat();
            assert_eq!(
                kafka(&args),
                Some(("127.0.0.1:9".parse().unwrap(), "127.0.0.1:9".to_owned())),
                "{args:?}"
            );
        }
    }

    #[test]
    fn retention_defaults_to_keeping_everything_and_refuses_zero() {
        assert_eq!(resolve(&[]).unwrap().retention, TopicConfig::default());
        let set = resolve(&["--retention-bytes", "1048576", "--retention-ms", "60000"]);
        let retention = set.unwrap().retention;
        assert_eq!(retention.retention_bytes, Some(1_048_576));
        assert_eq!(retention.retention_ms, Some(60_000));
        let argv = ["broker", "--retention-ms", "0"];
        assert!(
            Cli::try_parse_from(argv).is_err(),
            "0 would delete everything"
        );
        let argv = ["broker", "--retention-bytes", "-1"];
        assert!(Cli::try_parse_from(argv).is_err());
    }

    #[test]
    fn the_binary_port_is_off_with_tls_and_refused_if_asked_for() {
        let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
        assert_eq!(tcp(&tls), None);
        let mut asked = tls.to_vec();
        asked.extend(["--tcp-listen", "127.0.0.1:9"]);
        assert!(matches!(resolve(&asked), Err(ConfigError::TcpWithTls)));
    }
}

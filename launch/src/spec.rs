//! What to start: a node, a UI or `redis-server`, as a [`CommandLine`].
//!
//! Every flag YAK gives one of its processes is set here, from a spec:
//! [`NodeSpec`] for `broker` and `follower`, [`UiSpec`] for `producer-ui`
//! and `consumer-ui`, [`RedisSpec`] for `redis-server`. A flag whose
//! value the spec leaves `None` is not passed (the process's own default
//! applies); the spec's `extra_args` follow the flags it sets.
//!
//! The environment is the caller's choice ([`Environment`]): by default a
//! process inherits the caller's environment unchanged (`yak up` passes
//! its own through, so a `YAK_*` variable set for `yak` reaches the nodes);
//! with [`Environment::strip_yak`] every inherited `YAK_*` variable is
//! removed first (the test harness: a developer's shell must not change a
//! test's nodes). Variables in [`Environment::set`] are set last, so they
//! win over both.
//!
//! Stdin is `/dev/null`; stdout and stderr are left to the caller (a file,
//! a pipe). The flags may hold tokens: the `Debug` of a spec and of a
//! [`CommandLine`] leaves them out.

use std::{
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

/// The environment of a started process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// Remove every inherited variable whose name starts with `YAK_`
    /// before [`Environment::set`] is applied. Off: the caller's
    /// environment is passed through unchanged.
    pub strip_yak: bool,
    /// Variables set for the process, after the stripping.
    pub set: Vec<(String, String)>,
}

impl Environment {
    /// The caller's environment, without its `YAK_*` variables.
    pub fn without_yak() -> Self {
        Self {
            strip_yak: true,
            set: Vec::new(),
        }
    }

    /// Also sets `key` to `value`.
    pub fn var(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set.push((key.into(), value.into()));
        self
    }

    fn apply(&self, command: &mut Command) {
        self.apply_over(command, std::env::vars_os().map(|(key, _)| key));
    }

    /// [`Environment::apply`] over the `inherited` variable names.
    fn apply_over(&self, command: &mut Command, inherited: impl Iterator<Item = OsString>) {
        if self.strip_yak {
            for key in inherited {
                if key.to_string_lossy().starts_with("YAK_") {
                    command.env_remove(&key);
                }
            }
        }
        command.envs(self.set.iter().map(|(k, v)| (k, v)));
    }
}

/// A program, its arguments and its environment: what a spec gives, ready
/// to be spawned any number of times. Its `Debug` leaves out the
/// arguments, which may hold tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct CommandLine {
    program: PathBuf,
    args: Vec<OsString>,
    env: Environment,
}

impl fmt::Debug for CommandLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommandLine")
            .field("program", &self.program)
            .field("args", &self.args.len())
            .field("env", &self.env.set.len())
            .field("strip_yak", &self.env.strip_yak)
            .finish()
    }
}

impl CommandLine {
    /// `program` with `args`, in the caller's environment.
    pub fn new<I, S>(program: impl Into<PathBuf>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Environment::default(),
        }
    }

    /// The same command line in `env`.
    pub fn with_env(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    pub fn program(&self) -> &Path {
        &self.program
    }

    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    pub fn env(&self) -> &Environment {
        &self.env
    }

    /// The value after the first `flag`, if there is one (lossy UTF-8).
    pub fn flag(&self, flag: &str) -> Option<String> {
        let at = self.args.iter().position(|a| a == flag)?;
        self.args
            .get(at + 1)
            .map(|v| v.to_string_lossy().into_owned())
    }

    /// A `Command` for it: program, arguments, environment, stdin
    /// `/dev/null`. Stdout and stderr are for the caller to set.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).stdin(Stdio::null());
        self.env.apply(&mut command);
        command
    }
}

/// `--flag value` pairs, without the pairs whose value is `None`.
fn flags<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<String>)>) -> Vec<String> {
    pairs
        .into_iter()
        .filter_map(|(flag, value)| Some([flag.to_owned(), value?]))
        .flatten()
        .collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A node's binary produce port (`--tcp-listen`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TcpListen {
    /// No flag: the node's default (its HTTP port + 100 on the same host).
    #[default]
    Default,
    /// `--tcp-listen off`.
    Off,
    /// `--tcp-listen <addr>` (`host:port`).
    At(String),
}

/// A node serving HTTPS: `--tls-cert`, `--tls-key` and, to trust a CA
/// when calling other nodes, `--tls-ca`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: Option<PathBuf>,
}

/// How to run a node (`broker` or `follower`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct NodeSpec {
    /// The `broker` or `follower` binary.
    pub program: PathBuf,
    /// `--node-id`.
    pub id: String,
    /// `--listen`: `host:port` of its HTTP port.
    pub listen: String,
    /// `--advertised-url` [default: the node's own, from `listen`].
    pub advertised_url: Option<String>,
    /// `--data-dir`, exactly this directory.
    pub data_dir: PathBuf,
    /// `--redis-url`.
    pub redis_url: String,
    /// `--cluster`: the Redis key prefix [default: the node's, `yak`].
    pub cluster: Option<String>,
    /// `--lease-ttl-ms` [default: the node's].
    pub lease_ttl_ms: Option<u64>,
    /// `--tcp-listen`.
    pub tcp_listen: TcpListen,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`.
    pub tls: Option<NodeTls>,
    /// `--cluster-token`.
    pub cluster_token: Option<String>,
    /// `--client-token` (the node wants a cluster token with it).
    pub client_token: Option<String>,
    /// `--demo-control-url`: where the dashboard's Kill -9 and Restart go.
    pub demo_control_url: Option<String>,
    /// Further flags, after the ones above.
    pub extra_args: Vec<String>,
    pub env: Environment,
}

impl fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeSpec")
            .field("program", &self.program)
            .field("id", &self.id)
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl NodeSpec {
    /// The node's flags, in this order: `--node-id`, `--listen`,
    /// `--advertised-url`, `--data-dir`, `--redis-url`, `--cluster`,
    /// `--lease-ttl-ms`, `--tcp-listen`, the TLS flags, the tokens,
    /// `--demo-control-url`, then `extra_args`.
    pub fn args(&self) -> Vec<String> {
        let tls = self.tls.as_ref();
        let mut args = flags([
            ("--node-id", Some(self.id.clone())),
            ("--listen", Some(self.listen.clone())),
            ("--advertised-url", self.advertised_url.clone()),
            ("--data-dir", Some(path(&self.data_dir))),
            ("--redis-url", Some(self.redis_url.clone())),
            ("--cluster", self.cluster.clone()),
            ("--lease-ttl-ms", self.lease_ttl_ms.map(|ms| ms.to_string())),
            (
                "--tcp-listen",
                match &self.tcp_listen {
                    TcpListen::Default => None,
                    TcpListen::Off => Some("off".to_owned()),
                    TcpListen::At(addr) => Some(addr.clone()),
                },
            ),
            ("--tls-cert", tls.map(|t| path(&t.cert))),
            ("--tls-key", tls.map(|t| path(&t.key))),
            ("--tls-ca", tls.and_then(|t| t.ca.as_deref()).map(path)),
            ("--cluster-token", self.cluster_token.clone()),
            ("--client-token", self.client_token.clone()),
            ("--demo-control-url", self.demo_control_url.clone()),
        ]);
        args.extend(self.extra_args.iter().cloned());
        args
    }

    pub fn command_line(&self) -> CommandLine {
        CommandLine::new(&self.program, self.args()).with_env(self.env.clone())
    }
}

/// How to run a web UI (`producer-ui` or `consumer-ui`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UiSpec {
    /// The `producer-ui` or `consumer-ui` binary.
    pub program: PathBuf,
    /// `--listen`: `host:port`.
    pub listen: String,
    /// `--bootstrap`: the nodes' URLs, joined with `,`.
    pub bootstrap: Vec<String>,
    /// `--producer-ui-url`, `--consumer-ui-url`: where the two UIs are, for
    /// the links between them.
    pub producer_ui_url: Option<String>,
    pub consumer_ui_url: Option<String>,
    /// `--token`: the nodes' client token.
    pub token: Option<String>,
    /// `--upload-dir` (the producer UI's).
    pub upload_dir: Option<PathBuf>,
    /// Further flags, after the ones above.
    pub extra_args: Vec<String>,
    pub env: Environment,
}

impl fmt::Debug for UiSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UiSpec")
            .field("program", &self.program)
            .field("listen", &self.listen)
            .field("bootstrap", &self.bootstrap)
            .finish_non_exhaustive()
    }
}

impl UiSpec {
    /// The UI's flags, in this order: `--listen`, `--bootstrap`,
    /// `--producer-ui-url`, `--consumer-ui-url`, `--token`,
    /// `--upload-dir`, then `extra_args`.
    pub fn args(&self) -> Vec<String> {
        let mut args = flags([
            ("--listen", Some(self.listen.clone())),
            ("--bootstrap", Some(self.bootstrap.join(","))),
            ("--producer-ui-url", self.producer_ui_url.clone()),
            ("--consumer-ui-url", self.consumer_ui_url.clone()),
            ("--token", self.token.clone()),
            ("--upload-dir", self.upload_dir.as_deref().map(path)),
        ]);
        args.extend(self.extra_args.iter().cloned());
        args
    }

    pub fn command_line(&self) -> CommandLine {
        CommandLine::new(&self.program, self.args()).with_env(self.env.clone())
    }
}

/// How often an append-only Redis fsyncs its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// `appendfsync always`: what the cluster's correctness wants.
    Always,
    /// `appendfsync everysec` (Redis's default): a Redis crash may lose the
    /// last second of writes.
    EverySec,
}

/// Whether `redis-server` keeps its data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RedisPersistence {
    /// No persistence at all (`--appendonly no`, no RDB snapshots).
    #[default]
    InMemory,
    /// An append-only file in the data directory (`--appendonly yes`).
    AppendOnly(Fsync),
}

/// How to run `redis-server` for YAK: on `host:port`, in the foreground,
/// logging to stdout, never writing RDB snapshots (`--save ""`), with its
/// files in `dir` and the persistence asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSpec {
    /// The `redis-server` binary (see [`find_on_path`]).
    pub program: PathBuf,
    /// `--bind`.
    pub host: String,
    /// `--port`.
    pub port: u16,
    /// `--dir`: its working directory (the append-only file lives here).
    pub dir: PathBuf,
    pub persistence: RedisPersistence,
    /// `--replicaof`: the `host:port` of the primary this one replicates.
    pub replica_of: Option<(String, u16)>,
    pub env: Environment,
}

impl RedisSpec {
    pub fn args(&self) -> Vec<String> {
        let (appendonly, fsync) = match self.persistence {
            RedisPersistence::InMemory => ("no", None),
            RedisPersistence::AppendOnly(Fsync::Always) => ("yes", Some("always")),
            RedisPersistence::AppendOnly(Fsync::EverySec) => ("yes", Some("everysec")),
        };
        let mut args: Vec<String> = [
            "--port",
            &self.port.to_string(),
            "--bind",
            &self.host,
            "--dir",
            &path(&self.dir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--appendonly",
            appendonly,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(fsync) = fsync {
            args.extend(["--appendfsync".to_owned(), fsync.to_owned()]);
        }
        if let Some((host, port)) = &self.replica_of {
            args.extend(["--replicaof".to_owned(), host.clone(), port.to_string()]);
        }
        args
    }

    pub fn command_line(&self) -> CommandLine {
        CommandLine::new(&self.program, self.args()).with_env(self.env.clone())
    }

    /// `redis://<host>:<port>`.
    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }
}

/// The first `program` file in a directory of `$PATH`, if any.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
        let at = args.iter().position(|a| a == name)?;
        args.get(at + 1).map(String::as_str)
    }

    fn full_node() -> NodeSpec {
        NodeSpec {
            program: PathBuf::from("/bin/follower"),
            id: "follower-1".to_owned(),
            listen: "127.0.0.1:5002".to_owned(),
            advertised_url: Some("http://127.0.0.1:5002".to_owned()),
            data_dir: PathBuf::from("/data/follower-1"),
            redis_url: "redis://127.0.0.1:7000".to_owned(),
            cluster: Some("test-cluster".to_owned()),
            lease_ttl_ms: Some(2000),
            tcp_listen: TcpListen::At("127.0.0.1:6002".to_owned()),
            tls: Some(NodeTls {
                cert: PathBuf::from("/tls/node.pem"),
                key: PathBuf::from("/tls/node-key.pem"),
                ca: Some(PathBuf::from("/tls/ca.pem")),
            }),
            cluster_token: Some("cluster-secret".to_owned()),
            client_token: Some("client-secret".to_owned()),
            demo_control_url: Some("http://127.0.0.1:5000".to_owned()),
            extra_args: vec!["--min-insync-replicas".to_owned(), "2".to_owned()],
            env: Environment::without_yak().var("NO_COLOR", "1"),
        }
    }

    #[test]
    fn a_node_gets_every_flag_of_its_spec_in_order() {
        let args = full_node().args();
        let expected = [
            "--node-id",
            "follower-1",
            "--listen",
            "127.0.0.1:5002",
            "--advertised-url",
            "http://127.0.0.1:5002",
            "--data-dir",
            "/data/follower-1",
            "--redis-url",
            "redis://127.0.0.1:7000",
            "--cluster",
            "test-cluster",
            "--lease-ttl-ms",
            "2000",
            "--tcp-listen",
            "127.0.0.1:6002",
            "--tls-cert",
            "/tls/node.pem",
            "--tls-key",
            "/tls/node-key.pem",
            "--tls-ca",
            "/tls/ca.pem",
            "--cluster-token",
            "cluster-secret",
            "--client-token",
            "client-secret",
            "--demo-control-url",
            "http://127.0.0.1:5000",
            "--min-insync-replicas",
            "2",
        ];
        assert_eq!(args, expected);
    }

    #[test]
    fn a_node_spec_leaves_unset_flags_to_the_node() {
        let args = NodeSpec {
            id: "broker".to_owned(),
            listen: "0.0.0.0:5001".to_owned(),
            ..NodeSpec::default()
        }
        .args();
        for name in [
            "--advertised-url",
            "--cluster",
            "--lease-ttl-ms",
            "--tcp-listen",
            "--tls-cert",
            "--tls-key",
            "--tls-ca",
            "--cluster-token",
            "--client-token",
            "--demo-control-url",
        ] {
            assert_eq!(flag(&args, name), None, "{name} in {args:?}");
        }
        assert_eq!(flag(&args, "--node-id"), Some("broker"));
        assert_eq!(flag(&args, "--listen"), Some("0.0.0.0:5001"));
    }

    #[test]
    fn the_binary_port_can_be_turned_off() {
        let args = NodeSpec {
            tcp_listen: TcpListen::Off,
            ..NodeSpec::default()
        }
        .args();
        assert_eq!(flag(&args, "--tcp-listen"), Some("off"));
    }

    #[test]
    fn debug_output_leaves_out_tokens() {
        let node = full_node();
        let ui = UiSpec {
            token: Some("client-secret".to_owned()),
            ..UiSpec::default()
        };
        for shown in [
            format!("{node:?}"),
            format!("{:?}", node.command_line()),
            format!("{ui:?}"),
            format!("{:?}", ui.command_line()),
        ] {
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn a_ui_gets_the_nodes_the_other_ui_and_its_upload_dir() {
        let ui = UiSpec {
            program: PathBuf::from("/bin/producer-ui"),
            listen: "127.0.0.1:5003".to_owned(),
            bootstrap: vec![
                "http://127.0.0.1:5001".to_owned(),
                "http://127.0.0.1:5002".to_owned(),
            ],
            producer_ui_url: Some("http://127.0.0.1:5003".to_owned()),
            consumer_ui_url: Some("http://127.0.0.1:5004".to_owned()),
            token: Some("t".to_owned()),
            upload_dir: Some(PathBuf::from("/tmp/up")),
            extra_args: vec!["--max-upload-bytes".to_owned(), "10".to_owned()],
            env: Environment::default(),
        };
        assert_eq!(
            ui.args(),
            [
                "--listen",
                "127.0.0.1:5003",
                "--bootstrap",
                "http://127.0.0.1:5001,http://127.0.0.1:5002",
                "--producer-ui-url",
                "http://127.0.0.1:5003",
                "--consumer-ui-url",
                "http://127.0.0.1:5004",
                "--token",
                "t",
                "--upload-dir",
                "/tmp/up",
                "--max-upload-bytes",
                "10",
            ]
        );
        let bare = UiSpec {
            listen: "127.0.0.1:1".to_owned(),
            bootstrap: vec!["http://a".to_owned()],
            ..UiSpec::default()
        }
        .args();
        assert_eq!(bare, ["--listen", "127.0.0.1:1", "--bootstrap", "http://a"]);
    }

    #[test]
    fn redis_runs_in_the_foreground_without_snapshots() {
        let spec = |persistence| RedisSpec {
            program: PathBuf::from("/usr/bin/redis-server"),
            host: "127.0.0.1".to_owned(),
            port: 7000,
            dir: PathBuf::from("/data/redis"),
            persistence,
            replica_of: None,
            env: Environment::default(),
        };
        let common = [
            "--port",
            "7000",
            "--bind",
            "127.0.0.1",
            "--dir",
            "/data/redis",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--appendonly",
        ];
        let with = |tail: &[&str]| {
            common
                .iter()
                .chain(tail)
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(spec(RedisPersistence::InMemory).args(), with(&["no"]));
        assert_eq!(
            spec(RedisPersistence::AppendOnly(Fsync::Always)).args(),
            with(&["yes", "--appendfsync", "always"])
        );
        assert_eq!(
            spec(RedisPersistence::AppendOnly(Fsync::EverySec)).args(),
            with(&["yes", "--appendfsync", "everysec"])
        );
        assert_eq!(
            spec(RedisPersistence::InMemory).url(),
            "redis://127.0.0.1:7000"
        );
        let replica = RedisSpec {
            replica_of: Some(("127.0.0.1".to_owned(), 7001)),
            ..spec(RedisPersistence::AppendOnly(Fsync::EverySec))
        };
        assert_eq!(
            replica.args(),
            with(&[
                "yes",
                "--appendfsync",
                "everysec",
                "--replicaof",
                "127.0.0.1",
                "7001"
            ])
        );
    }

    #[test]
    fn a_command_line_keeps_program_args_and_environment() {
        let line = full_node().command_line();
        assert_eq!(line.program(), Path::new("/bin/follower"));
        assert_eq!(line.flag("--node-id").as_deref(), Some("follower-1"));
        assert_eq!(line.flag("--nope"), None);
        let command = line.command();
        assert_eq!(command.get_program(), "/bin/follower");
        assert_eq!(command.get_args().count(), line.args().len());
        let envs: Vec<_> = command.get_envs().collect();
        assert!(
            envs.contains(&("NO_COLOR".as_ref(), Some("1".as_ref()))),
            "{envs:?}"
        );
    }

    #[test]
    fn stripping_removes_every_inherited_yak_variable_but_keeps_the_set_ones() {
        let inherited = || {
            [
                "PATH",
                "YAK_CLUSTER",
                "HOME",
                "YAK_TOKEN",
                "NOT_YAK_X",
                "YAK_KEPT",
            ]
            .map(OsString::from)
            .into_iter()
        };
        let mut command = Command::new("true");
        Environment::without_yak()
            .var("YAK_KEPT", "1")
            .apply_over(&mut command, inherited());
        let mut envs: Vec<(String, Option<String>)> = command
            .get_envs()
            .map(|(k, v)| {
                let v = v.map(|v| v.to_string_lossy().into_owned());
                (k.to_string_lossy().into_owned(), v)
            })
            .collect();
        envs.sort();
        assert_eq!(
            envs,
            [
                ("YAK_CLUSTER".to_owned(), None),
                ("YAK_KEPT".to_owned(), Some("1".to_owned())),
                ("YAK_TOKEN".to_owned(), None),
            ]
        );

        let mut passed = Command::new("true");
        Environment::default().apply_over(&mut passed, inherited());
        assert_eq!(passed.get_envs().count(), 0, "nothing changed");
    }

    #[test]
    fn find_on_path_finds_a_shell() {
        assert!(find_on_path("sh").is_some());
        assert_eq!(find_on_path("surely-no-such-program-here"), None);
    }
}

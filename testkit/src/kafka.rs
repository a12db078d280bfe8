//! The Kafka clients nobody here wrote that the tests point at nodes'
//! Kafka listeners: kcat, librdkafka's command-line client
//! (`scripts/system-deps.sh kcat` installs it), the Python of the venv
//! holding kafka-python and confluent-kafka (`scripts/kafka-clients.sh`),
//! and the node and `node_modules` holding KafkaJS
//! (`scripts/kafka-clients-node.sh`).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{io::AsyncWriteExt, process::Command};

/// Longest a kcat run may take (10,000 records against a debug build).
pub const KCAT_TIMEOUT: Duration = Duration::from_secs(120);

/// How a kcat run ended.
#[derive(Debug)]
pub struct KcatRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Runs kcat with `args`, feeding it `input`. Panics if kcat cannot start
/// or does not finish within [`KCAT_TIMEOUT`].
pub async fn kcat_run(args: &[&str], input: &str) -> KcatRun {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("running kcat (scripts/system-deps.sh kcat installs it)");
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("writing to kcat");
    drop(stdin);
    let output = tokio::time::timeout(KCAT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kcat {args:?} did not finish in {KCAT_TIMEOUT:?}"))
        .expect("waiting for kcat");
    KcatRun {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`kcat_run`] that must succeed: its stdout, or a panic with its stderr.
pub async fn kcat(args: &[&str], input: &str) -> String {
    let run = kcat_run(args, input).await;
    assert!(run.ok, "kcat {args:?} failed: {}", run.stderr);
    run.stdout
}

/// The Python of the Kafka client venv: `$YAK_KAFKA_PYTHON`, or the one
/// `scripts/kafka-clients.sh` installs under the workspace's `target/`.
pub fn kafka_python() -> PathBuf {
    if let Some(python) = std::env::var_os("YAK_KAFKA_PYTHON") {
        return python.into();
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit sits in the workspace");
    let python = workspace.join("target/kafka-clients-venv/bin/python");
    assert!(
        python.exists(),
        "no Kafka client venv at {}: run scripts/kafka-clients.sh",
        python.display()
    );
    python
}

/// Where KafkaJS is: the node to run its scripts with and the
/// `node_modules` holding `kafkajs` (for `NODE_PATH`).
#[derive(Debug, Clone)]
pub struct KafkaJs {
    pub node: PathBuf,
    pub node_modules: PathBuf,
}

/// KafkaJS as `scripts/kafka-clients-node.sh` installs it under the
/// workspace's `target/kafka-clients-node` (`$YAK_KAFKAJS_DIR` names
/// another such directory): `bin/node` (a link to the node it was
/// installed with) and `node_modules/kafkajs`. Panics, saying what to run,
/// when either is missing.
pub fn kafkajs() -> KafkaJs {
    let dir = match std::env::var_os("YAK_KAFKAJS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("testkit sits in the workspace")
            .join("target/kafka-clients-node"),
    };
    let kafkajs = KafkaJs {
        node: dir.join("bin/node"),
        node_modules: dir.join("node_modules"),
    };
    for needed in [
        kafkajs.node.clone(),
        kafkajs.node_modules.join("kafkajs/package.json"),
    ] {
        assert!(
            needed.exists(),
            "no KafkaJS install at {} ({} is missing): run scripts/kafka-clients-node.sh",
            dir.display(),
            needed.display()
        );
    }
    kafkajs
}

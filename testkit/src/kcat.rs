//! kcat, librdkafka's command-line client: the Kafka client nobody here
//! wrote that the tests point at nodes' Kafka listeners
//! (`scripts/system-deps.sh kcat` installs it).

use std::{process::Stdio, time::Duration};

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

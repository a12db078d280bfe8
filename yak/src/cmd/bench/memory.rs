//! Memory: the resident set of the broker process a bench run started
//! (measured after the consume phase; skipped with `--bootstrap`).

use anyhow::Context;

use super::cluster::OwnCluster;

/// Resident memory of the process started as `broker`, in MB.
pub fn broker_rss_mb(cluster: &OwnCluster) -> anyhow::Result<f64> {
    let index = cluster.node("broker").context("no broker")?;
    let pid = cluster.procs[index]
        .pid()
        .context("the broker is not running")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS in /proc status")?;
    Ok(kb / 1024.0)
}

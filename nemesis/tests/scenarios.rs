//! Every fault kind on its own, against a real cluster, with a fixed seed:
//! about 45 s of faults (one every 2–5 s), then healing and the nine
//! checks. The workload is mixed: HTTP, binary-port and Kafka producers
//! side by side (`nemesis::workload`), so every fault meets every
//! transport. A scenario passes only if faults ran, writes were
//! acknowledged over every transport and no check found a violation.
//!
//! `NEMESIS_SCENARIO_SECS` changes how long faults are injected.

use std::time::Duration;

use nemesis::{RunConfig, faults::FaultKind, history::Transport};

async fn scenario(kind: FaultKind, seed: u64) {
    let secs = std::env::var("NEMESIS_SCENARIO_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    let config = RunConfig {
        seed,
        duration: Duration::from_secs(secs),
        gap: Duration::from_secs(2)..Duration::from_secs(5),
        kinds: vec![kind],
        ..RunConfig::default()
    };
    let summary = nemesis::run(config).await.expect("the run is carried out");
    eprintln!("{kind:?}: {summary} (in {:?})", summary.elapsed);
    for violation in &summary.report.violations {
        eprintln!("VIOLATION {violation}");
    }
    assert!(
        summary.faults.values().sum::<u64>() > 0,
        "no fault was injected: {summary}"
    );
    // Every transport of the mixed workload was exercised, not just one.
    for transport in Transport::ALL {
        assert!(
            summary
                .report
                .acked_by
                .get(&transport)
                .copied()
                .unwrap_or(0)
                > 0,
            "nothing was acknowledged over {}: {summary}",
            transport.label()
        );
    }
    assert!(summary.passed(), "{kind:?}: {summary}");
}

macro_rules! scenarios {
    ($($name:ident: $kind:ident, $seed:literal;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            scenario(FaultKind::$kind, $seed).await;
        }
    )*};
}

scenarios! {
    kill_leader: KillLeader, 1;
    kill_follower: KillFollower, 2;
    kill_redis: KillRedis, 3;
    pause_leader_shorter_than_lease: PauseLeaderShort, 4;
    pause_leader_longer_than_lease: PauseLeaderLong, 5;
    pause_follower: PauseFollower, 6;
    pause_redis: PauseRedis, 7;
    partition_leader_from_follower: PartitionLeader, 8;
    cut_leader_from_redis: CutLeaderRedis, 9;
    cut_clients_from_leader: CutClientsLeader, 10;
    cut_one_way_between_leader_and_follower: CutOneWay, 11;
    delay_links_around_leader: DelayLinks, 12;
    reset_random_links: ResetLinks, 13;
    torn_segment_tail: TornTail, 14;
    bit_flipped_segment_tail: BitFlipTail, 15;
    two_quick_failovers: DoubleFailover, 16;
}

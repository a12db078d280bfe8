//! The node dashboards in real headless Chromium: roles, live updates
//! without a reload, and a failover seen from the surviving node's page and
//! from the dead node's page. Screenshots go to `target/screenshots/`.

use std::time::Duration;

use serde_json::json;
use testkit::{Cluster, browser::Browser, produce};

const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn dashboards_show_roles_update_live_and_follow_a_failover() {
    let mut cluster = Cluster::builder()
        .followers(1)
        .lease_ttl_ms(1000)
        .start()
        .await;
    let leader = cluster.leader_info().await.expect("a leader");
    let leader_url = leader.url.clone().expect("registered");
    let follower_index = (0..cluster.nodes().len())
        .find(|&i| cluster.node(i).id() != leader.id)
        .expect("a follower");
    let follower_url = cluster.node(follower_index).url().to_owned();
    let leader_index = cluster.index_of(&leader.id).expect("the leader is ours");

    let browser = Browser::start().await;
    browser.open(&format!("{leader_url}/")).await;
    browser.wait_text("#role", WAIT, |t| t == "LEADER").await;
    // new_tab switches to a fresh tab and returns the one it left.
    let leader_tab = browser.new_tab().await;
    let follower_tab = browser.client().window().await.expect("a window");
    // The original's path serves the same page.
    browser.open(&format!("{follower_url}/leader")).await;
    browser.wait_text("#role", WAIT, |t| t == "FOLLOWER").await;
    let following = browser
        .wait_text("#leader-line", WAIT, |t| t.contains(&leader.id))
        .await;
    assert!(following.starts_with("Following"), "{following}");

    // Produce; the leader's page updates without a reload.
    for i in 0..30 {
        let (status, body) = produce(
            &leader_url,
            &json!({"topic": "dash", "partition": 0, "payload": i}),
        )
        .await;
        assert!(status.is_success(), "{body}");
    }
    browser.switch_to(leader_tab.clone()).await;
    let row = "#partitions tr[data-topic='dash'][data-partition='0']";
    browser
        .wait_text(&format!("{row} .hwm"), WAIT, |t| t == "30")
        .await;
    browser
        .wait_text(&format!("{row} .log-end"), WAIT, |t| t == "30")
        .await;
    browser.wait_text("#produced", WAIT, |t| t == "30").await;
    // The rate chart's scale grew past its idle maximum (1.1).
    browser
        .wait_text("#chart-rate text:nth-of-type(3)", WAIT, |t| {
            t.parse::<f64>().is_ok_and(|top| top > 2.0)
        })
        .await;
    browser
        .wait_text("#activity", WAIT, |t| t.contains("created topic dash"))
        .await;
    browser.screenshot("dashboard-leader").await;
    browser.switch_to(follower_tab.clone()).await;
    browser
        .wait_text(&format!("{row} .hwm"), WAIT, |t| t == "30")
        .await;
    browser
        .wait_text(&format!("{row} .isr"), WAIT, |t| t.contains(&leader.id))
        .await;
    browser.screenshot("dashboard-follower").await;

    // Kill the leader: the survivor's page shows it leading...
    cluster.node_mut(leader_index).kill9();
    browser.wait_text("#role", WAIT, |t| t == "LEADER").await;
    browser
        .wait_text("#activity", WAIT, |t| t.contains("election"))
        .await;
    browser.screenshot("dashboard-after-failover").await;
    // ...and the dead node's page says it is gone and offers the others.
    browser.switch_to(leader_tab).await;
    browser.wait_text("#role", WAIT, |t| t == "DOWN").await;
    let links = browser
        .wait_text("#down-links", WAIT, |t| !t.is_empty())
        .await;
    assert!(links.contains(cluster.node(follower_index).id()), "{links}");
    browser.screenshot("dashboard-node-down").await;
    browser.close().await;
}

/// With `--client-token` the page shell loads, asks for the token (the
/// event stream cannot send it as a header), and once it is entered shows
/// the live data over the session cookie.
#[tokio::test]
async fn a_guarded_node_asks_for_its_token() {
    let cluster = Cluster::builder()
        .client_token("dash-secret")
        .extra_args(["--cluster-token", "c"])
        .start()
        .await;
    let url = cluster.broker().url().to_owned();
    let browser = Browser::start().await;
    // Not `open`: nothing streams until the token is given.
    browser
        .client()
        .goto(&format!("{url}/"))
        .await
        .expect("opening the page");
    browser
        .wait_text("#login h2", WAIT, |t| t.contains("client token"))
        .await;
    assert_eq!(browser.text("#role").await.as_deref(), Some("…"));
    browser.fill("#login-token", "wrong").await;
    browser.click("#login-button").await;
    browser
        .wait_text("#login-error", WAIT, |t| t.contains("not this node"))
        .await;
    browser.fill("#login-token", "dash-secret").await;
    browser.click("#login-button").await;
    browser.wait_text("#role", WAIT, |t| t == "LEADER").await;
    browser.wait_text("#login h2", WAIT, str::is_empty).await;
    browser.screenshot("dashboard-with-token").await;
}

/// A partition whose ISR is smaller than the live nodes is flagged: here a
/// registered node that never answers is dropped from a new partition's
/// ISR by its first write.
#[tokio::test]
async fn the_dashboard_flags_an_under_replicated_partition() {
    let cluster = Cluster::builder().start().await;
    let url = cluster.broker().url().to_owned();
    cluster.register_ghost("ghost").await;
    let browser = Browser::start().await;
    browser.open(&format!("{url}/")).await;
    browser
        .wait_text("#nodes", WAIT, |t| t.contains("ghost"))
        .await;
    let (status, body) = produce(
        &url,
        &json!({"topic": "thin", "partition": 0, "payload": 1}),
    )
    .await;
    assert!(status.is_success(), "{body}");
    let isr = browser
        .wait_text(
            "#partitions tr[data-topic='thin'][data-partition='0'] .isr",
            WAIT,
            |t| t.to_lowercase().contains("in sync"),
        )
        .await;
    assert!(isr.to_lowercase().contains("1 of 2 in sync"), "{isr}");
    browser.screenshot("dashboard-under-replicated").await;
    browser.close().await;
}

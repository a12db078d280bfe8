//! The node dashboards' consumer groups panel in real headless Chromium: a
//! group appears when a member joins, its lag follows commits live, it
//! turns empty when the member leaves, the activity log says so, and a
//! follower's dashboard shows it too. Screenshots go to
//! `target/screenshots/`.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{
    Cluster, StatusCode, browser::Browser, create_topic, http_client_with_timeout, post_json,
    produce, try_send, wait_for,
};

const WAIT: Duration = Duration::from_secs(15);
const GROUP: &str = "dash-readers";
const TOPIC: &str = "dash";

/// The text of a cell of the group's row in the panel.
fn cell(class: &str) -> String {
    format!("#groups tr[data-group='{GROUP}'] .{class}")
}

#[tokio::test]
async fn the_dashboards_show_groups_and_their_lag_live() {
    let cluster = Cluster::builder().followers(1).start().await;
    let leader = cluster.leader_info().await.expect("a leader");
    let leader_url = leader.url.clone().expect("registered");
    let follower_url = cluster
        .nodes()
        .iter()
        .find(|n| n.id() != leader.id)
        .expect("a follower")
        .url()
        .to_owned();
    create_topic(&leader_url, TOPIC, 2).await;
    for (partition, records) in [(0, 5), (1, 3)] {
        for i in 0..records {
            let (status, body) = produce(
                &leader_url,
                &json!({"topic": TOPIC, "partition": partition, "payload": i}),
            )
            .await;
            assert!(status.is_success(), "{body}");
        }
    }

    let browser = Browser::start().await;
    browser.open(&format!("{leader_url}/")).await;
    browser
        .wait_text("#groups", WAIT, |t| t == "no consumer groups")
        .await;

    // A member joins (one member: the join answers at once).
    let join = http_client_with_timeout(WAIT)
        .post(format!("{leader_url}/groups/{GROUP}/join"))
        .json(&json!({"topics": [TOPIC], "session_timeout_ms": 30_000}));
    let joined = try_send(join).await.expect("the join answered");
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.text);
    let member = joined.json["member_id"].as_str().expect("a member id");
    let generation = &joined.json["generation"];

    // Nothing committed: the lag is every record (from the log start).
    browser
        .wait_text(&cell("members"), WAIT, |t| t == "1")
        .await;
    browser.wait_text(&cell("lag"), WAIT, |t| t == "8").await;
    assert_eq!(
        browser.text(&cell("group-state")).await.as_deref(),
        Some("STABLE")
    );
    let row = browser
        .text(&format!("#groups tr[data-group='{GROUP}']"))
        .await
        .unwrap_or_default();
    assert!(row.contains(TOPIC), "{row}");
    browser
        .wait_text("#activity li[data-kind='group']", WAIT, |t| {
            t.contains(GROUP)
        })
        .await;

    // A commit shows as less lag, without a reload.
    let (status, body) = post_json(
        &format!("{leader_url}/groups/{GROUP}/commit"),
        &json!({"member_id": member, "generation": generation,
                "offsets": [{"topic": TOPIC, "partition": 0, "offset": 5}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    browser.wait_text(&cell("lag"), WAIT, |t| t == "3").await;
    browser
        .eval(
            "document.querySelector('#groups').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("dashboard-groups").await;

    // A follower's dashboard shows the group as well.
    let leader_tab = browser.new_tab().await;
    browser.open(&format!("{follower_url}/")).await;
    browser.wait_text("#role", WAIT, |t| t == "FOLLOWER").await;
    browser
        .wait_text(&cell("members"), WAIT, |t| t == "1")
        .await;

    // The member leaves: the group is empty, its offsets (and lag) kept.
    browser.switch_to(leader_tab).await;
    let (status, body) = post_json(
        &format!("{leader_url}/groups/{GROUP}/leave"),
        &json!({ "member_id": member }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    browser
        .wait_text(&cell("group-state"), WAIT, |t| t == "EMPTY")
        .await;
    assert_eq!(browser.text(&cell("members")).await.as_deref(), Some("0"));
    assert_eq!(browser.text(&cell("lag")).await.as_deref(), Some("3"));
    wait_for("the activity log to say the group is empty", WAIT, || async {
        let entries: Value = browser
            .eval(
                "return [...document.querySelectorAll(\"#activity li[data-kind='group']\")].map(li => li.textContent);",
                vec![],
            )
            .await;
        entries
            .as_array()?
            .iter()
            .any(|t| t.as_str().is_some_and(|t| t.contains(GROUP) && t.contains("empty")))
            .then_some(())
    })
    .await;
    browser
        .eval(
            "document.querySelector('#groups').scrollIntoView();",
            vec![],
        )
        .await;
    browser.screenshot("dashboard-groups-empty").await;
    browser.close().await;
}

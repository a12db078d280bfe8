//! The consumer UI's group mode, against a real cluster: two browser tabs
//! share a group's partitions, each record shows in the one tab that holds
//! its partition, and closing a tab hands its partitions (and what it
//! committed) to the other; the group view shows the members and lag live;
//! the JSON API refuses what makes no sense. Screenshots go to
//! `target/screenshots/`.

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{WAIT, bootstrap, shown_messages, wait_for_topic};
use serde_json::{Value, json};
use testkit::{
    Browser, Cluster, StatusCode, Ui, UiProcess, browser::WindowHandle, get_json, http_client,
    post_json, send, wait_for,
};
use yak_client::{Producer, ProducerConfig, Record, YakClient};

const TOPIC: &str = "orders";
const PARTITIONS: u32 = 3;
const GROUP: &str = "billing";

/// What a group card shows: its state, member id, generation and the
/// partitions it holds.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    state: String,
    id: String,
    generation: u64,
    holds: BTreeSet<u32>,
}

async fn member(browser: &Browser, card: &str) -> Option<Member> {
    let shown = browser
        .eval(
            r#"const card = document.querySelector(arguments[0]);
            if (!card) return null;
            return {
                state: card.dataset.state,
                id: card.querySelector(".sub-member").textContent,
                generation: card.querySelector(".sub-generation").textContent,
                holds: [...card.querySelectorAll(".sub-holds [data-partition]")].map((li) => Number(li.dataset.partition)),
            };"#,
            vec![json!(card)],
        )
        .await;
    Some(Member {
        state: shown["state"].as_str()?.to_owned(),
        id: shown["id"].as_str()?.to_owned(),
        generation: shown["generation"]
            .as_str()?
            .replace(',', "")
            .parse()
            .ok()?,
        holds: shown["holds"]
            .as_array()?
            .iter()
            .filter_map(|p| p.as_u64().map(|p| p as u32))
            .collect(),
    })
}

/// Joins [`GROUP`] for [`TOPIC`] in the consumer page open in the current
/// tab (from the earliest offset); returns the card once the member runs.
async fn join(browser: &Browser) -> String {
    wait_for_topic(browser, TOPIC).await;
    browser.click("label:has(#mode-group) span").await;
    browser.fill("#sub-group", GROUP).await;
    browser
        .click(&format!("#sub-topics label:has(input[value='{TOPIC}'])"))
        .await;
    browser.click("label:has(#start-earliest) span").await;
    browser.click("#sub-button").await;
    browser
        .wait_text("#sub-result", WAIT, |t| t.starts_with("Joining group"))
        .await;
    let id = wait_for("the group card", WAIT, || async {
        let id = browser
            .eval(
                "const c = document.querySelector('.sub[data-kind=group]'); return c && c.dataset.sub;",
                vec![],
            )
            .await;
        id.as_str().map(str::to_owned)
    })
    .await;
    let card = format!("#sub-{id}");
    browser
        .wait_text(&format!("{card} .sub-state"), WAIT, |s| s == "RUNNING")
        .await;
    card
}

/// Waits until the members of `tabs` (a tab and its card each) are at one
/// generation, running, and hold disjoint non-empty shares of every
/// partition; returns what each shows.
async fn split(browser: &Browser, tabs: &[(WindowHandle, &str)]) -> Vec<Member> {
    let last = std::cell::RefCell::new(Vec::new());
    let all: BTreeSet<u32> = (0..PARTITIONS).collect();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let mut members = Vec::new();
            for (tab, card) in tabs {
                browser.switch_to(tab.clone()).await;
                members.extend(member(browser, card).await);
            }
            let settled = members.len() == tabs.len()
                && members.iter().all(|m| {
                    m.state == "running"
                        && !m.holds.is_empty()
                        && m.generation == members[0].generation
                })
                && members.iter().map(|m| m.holds.len()).sum::<usize>() == all.len()
                && members
                    .iter()
                    .flat_map(|m| m.holds.iter())
                    .collect::<BTreeSet<_>>()
                    == all.iter().collect();
            if settled {
                return members;
            }
            *last.borrow_mut() = members;
            tokio::time::sleep(testkit::browser::POLL).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "no split of every partition within {WAIT:?}: {:?}",
            last.borrow()
        )
    })
}

/// Waits until `card` shows `n` messages; returns them.
async fn messages(browser: &Browser, card: &str, n: usize) -> Vec<Value> {
    browser
        .wait_text(&format!("{card} .sub-count"), WAIT, |t| t == n.to_string())
        .await;
    shown_messages(browser, card).await
}

/// (partition, offset) of each message, checking each is unique.
fn offsets(messages: &[Value]) -> BTreeSet<(u32, u64)> {
    let set: BTreeSet<(u32, u64)> = messages
        .iter()
        .map(|m| {
            assert_eq!(m["topic"], TOPIC, "{m}");
            let payload: Value = serde_json::from_str(m["payload"].as_str().unwrap()).unwrap();
            assert_eq!(
                payload["p"], m["partition"],
                "each record on its partition: {m}"
            );
            (
                m["partition"].as_u64().unwrap() as u32,
                m["offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        set.len(),
        messages.len(),
        "a record shown twice: {messages:?}"
    );
    set
}

/// Sends `per_partition` records to each partition.
async fn produce(producer: &Producer, per_partition: u64) {
    for p in 0..PARTITIONS {
        for n in 0..per_partition {
            producer
                .send(Record::new(TOPIC, json!({ "p": p, "n": n })).partition(p))
                .await
                .expect("acknowledged");
        }
    }
}

/// The group's card in the group view: members, and per partition its
/// owner, committed offset and lag.
async fn group_view(browser: &Browser) -> Option<Value> {
    let shown = browser
        .eval(
            r#"const card = document.querySelector(".group[data-group='" + arguments[0] + "']");
            if (!card) return null;
            return {
                state: card.querySelector(".group-state").textContent,
                members: [...card.querySelectorAll(".group-members tr[data-member]")].map((tr) => tr.dataset.member),
                partitions: [...card.querySelectorAll(".group-partitions tr[data-partition]")].map((tr) => ({
                    partition: Number(tr.dataset.partition),
                    owner: tr.querySelector(".owner").textContent,
                    committed: tr.querySelector(".committed").textContent,
                    lag: tr.querySelector(".lag").textContent,
                })),
            };"#,
            vec![json!(GROUP)],
        )
        .await;
    (!shown.is_null()).then_some(shown)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_share_a_group_and_the_survivor_takes_the_partitions_back() {
    let cluster = Cluster::builder().start().await;
    let nodes = bootstrap(&cluster);
    let consumer = UiProcess::start(Ui::Consumer, &nodes).await;
    let client = YakClient::new(nodes.clone()).unwrap();
    client
        .create_topic(TOPIC, Some(PARTITIONS))
        .await
        .expect("creating the topic");
    let producer = Producer::new(client.clone(), ProducerConfig::default());

    // Tab 1 alone holds every partition.
    let browser = Browser::start().await;
    browser.open(consumer.url()).await;
    let card1 = join(&browser).await;
    let alone = wait_for("tab 1 to hold every partition", WAIT, || async {
        let m = member(&browser, &card1).await?;
        (m.holds.len() == PARTITIONS as usize).then_some(m)
    })
    .await;
    assert!(alone.id.len() > 4, "a member id: {alone:?}");

    // Tab 2 sees none of tab 1's membership, and joins.
    let tab1 = browser.new_tab().await;
    let tab2 = browser.client().window().await.expect("a window");
    browser.open(consumer.url()).await;
    let cards = browser
        .eval("return document.querySelectorAll('.sub').length;", vec![])
        .await;
    assert_eq!(cards, 0, "another tab's group membership is its own");
    let card2 = join(&browser).await;
    let members = split(&browser, &[(tab1.clone(), &card1), (tab2.clone(), &card2)]).await;
    let (one, two) = (&members[0], &members[1]);
    assert_ne!(one.id, two.id);
    assert!(one.generation > alone.generation, "{alone:?} then {one:?}");
    browser.screenshot("group-tab-2").await;

    // Each record shows in the tab that holds its partition, once.
    produce(&producer, 4).await;
    let mut seen = BTreeSet::new();
    for (tab, card, m) in [(&tab1, &card1, one), (&tab2, &card2, two)] {
        browser.switch_to(tab.clone()).await;
        let shown = offsets(&messages(&browser, card, 4 * m.holds.len()).await);
        let want: BTreeSet<(u32, u64)> = m
            .holds
            .iter()
            .flat_map(|&p| (0..4).map(move |o| (p, o)))
            .collect();
        assert_eq!(shown, want, "{card} holds {:?}", m.holds);
        seen.extend(shown);
    }
    assert_eq!(
        seen.len(),
        4 * PARTITIONS as usize,
        "every record in one tab"
    );
    browser.switch_to(tab1.clone()).await;
    browser.screenshot("group-tab-1").await;

    // The group view: both members, who holds what, and (everything shown
    // being committed) no lag.
    let _ = browser.new_tab().await;
    let view_tab = browser.client().window().await.expect("a window");
    browser.open(&format!("{}/groups", consumer.url())).await;
    let view = wait_for(
        "the group view to show both members, caught up",
        WAIT,
        || async {
            let view = group_view(&browser).await?;
            let lags: Vec<&str> = view["partitions"]
                .as_array()?
                .iter()
                .filter_map(|p| p["lag"].as_str())
                .collect();
            (view["members"].as_array()?.len() == 2
                && lags.len() == PARTITIONS as usize
                && lags.iter().all(|l| *l == "0"))
            .then_some(view)
        },
    )
    .await;
    assert_eq!(view["state"], "stable", "{view}");
    let ids: BTreeSet<&str> = view["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ids, BTreeSet::from([one.id.as_str(), two.id.as_str()]));
    for p in view["partitions"].as_array().unwrap() {
        let partition = p["partition"].as_u64().unwrap() as u32;
        let holder = if one.holds.contains(&partition) {
            one
        } else {
            two
        };
        assert_eq!(p["owner"], holder.id.as_str(), "{p}");
        assert_eq!(p["committed"], "4", "{p}");
    }
    browser.screenshot("group-view").await;

    // Tab 2 closes: tab 1 gets every partition back, and reads tab 2's
    // from where tab 2 committed.
    browser.switch_to(tab2).await;
    browser
        .client()
        .close_window()
        .await
        .expect("closing tab 2");
    browser.switch_to(tab1.clone()).await;
    let back = wait_for("tab 1 to hold every partition again", WAIT, || async {
        let m = member(&browser, &card1).await?;
        (m.state == "running"
            && m.holds.len() == PARTITIONS as usize
            && m.generation > one.generation)
            .then_some(m)
    })
    .await;
    assert_eq!(back.id, one.id, "the same member");
    let notes = browser
        .text(&format!("{card1} .sub-notes"))
        .await
        .unwrap_or_default();
    assert!(notes.contains("gained"), "{notes}");
    produce(&producer, 2).await;
    let total = 4 * one.holds.len() + 2 * PARTITIONS as usize;
    let shown = offsets(&messages(&browser, &card1, total).await);
    for p in 0..PARTITIONS {
        let here: Vec<u64> = shown
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, o)| *o)
            .collect();
        let want: Vec<u64> = if one.holds.contains(&p) {
            (0..6).collect()
        } else {
            // Tab 2 showed and committed 0..4: not again here.
            vec![4, 5]
        };
        assert_eq!(here, want, "partition {p}");
    }
    browser.screenshot("group-tab-1-alone").await;

    // Leaving from the page: the group view shows it empty, its offsets kept.
    browser.click(&format!("{card1} .sub-remove")).await;
    wait_for("the card to go", WAIT, || async {
        browser.find(&card1).await.is_none().then_some(())
    })
    .await;
    browser.switch_to(view_tab).await;
    let view = wait_for("the group view to show the group empty", WAIT, || async {
        let view = group_view(&browser).await?;
        (view["state"] == "empty").then_some(view)
    })
    .await;
    assert_eq!(view["members"], json!([]), "{view}");
    for p in view["partitions"].as_array().unwrap() {
        assert_eq!(p["committed"], "6", "{p}");
        assert_eq!(p["owner"], "none", "{p}");
    }
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_joins_describes_and_refuses_what_makes_no_sense() {
    let cluster = Cluster::builder().start().await;
    let nodes = bootstrap(&cluster);
    let consumer = UiProcess::start(Ui::Consumer, &nodes).await;
    let ui = consumer.url();
    YakClient::new(nodes.clone())
        .unwrap()
        .create_topic(TOPIC, Some(2))
        .await
        .expect("creating the topic");

    let refused = [
        (
            json!({"group": "a b", "topic": TOPIC}),
            400,
            "invalid_group",
        ),
        (
            json!({"group": GROUP, "topic": "nope"}),
            404,
            "unknown_topic",
        ),
        (
            json!({"group": GROUP, "topic": TOPIC, "partition": 0}),
            400,
            "invalid_request",
        ),
        (
            json!({"group": GROUP, "topic": TOPIC, "start": 7}),
            400,
            "invalid_start",
        ),
        (json!({"group": GROUP}), 400, "invalid_request"),
        (json!({"topics": [TOPIC]}), 400, "invalid_request"),
    ];
    for (body, status, code) in refused {
        let (got, answer) = post_json(&format!("{ui}/api/subscribe"), &body).await;
        assert_eq!(got.as_u16(), status, "{body} → {answer}");
        assert_eq!(answer["error"], code, "{body} → {answer}");
    }
    let (status, answer) = post_json(
        &format!("{ui}/api/subscribe"),
        &json!({"group": GROUP, "topics": [TOPIC], "tab": "<script>"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let bad_tab = send(http_client().get(format!("{ui}/api/events?tab=a%20b"))).await;
    assert_eq!(bad_tab.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_tab.json["error"], "invalid_tab");
    let (_, subs) = get_json(&format!("{ui}/api/subscriptions")).await;
    assert_eq!(
        subs["subscriptions"],
        json!([]),
        "nothing refused was started"
    );

    // Without a tab the membership is the UI's, like any subscription.
    let (status, sub) = post_json(
        &format!("{ui}/api/subscribe"),
        &json!({"group": GROUP, "topics": [TOPIC], "start": "earliest"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert_eq!(sub["kind"], "group");
    assert_eq!(sub["group"], GROUP);
    let id = sub["id"].as_u64().unwrap();
    let detail = wait_for("the member in the group", WAIT, || async {
        let (status, detail) = get_json(&format!("{ui}/api/groups/{GROUP}")).await;
        (status == StatusCode::OK && detail["members"].as_array()?.len() == 1).then_some(detail)
    })
    .await;
    let member = &detail["members"][0];
    assert_eq!(
        member["client_id"],
        format!("consumer-ui subscription {id}")
    );
    assert_eq!(member["session_timeout_ms"], 6000);
    let status = wait_for("the subscription to show its member", WAIT, || async {
        let (_, subs) = get_json(&format!("{ui}/api/subscriptions")).await;
        let sub = subs["subscriptions"].as_array()?.first()?.clone();
        (sub["member_id"] == member["member_id"] && sub["partitions"].as_array()?.len() == 2)
            .then_some(sub)
    })
    .await;
    assert_eq!(status["state"], "running", "{status}");
    let (_, list) = get_json(&format!("{ui}/api/groups")).await;
    assert_eq!(list["groups"][0]["group"], GROUP, "{list}");

    let (status, answer) =
        post_json(&format!("{ui}/api/subscriptions/{id}/pause"), &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"], "not_pausable");
    let (status, answer) = get_json(&format!("{ui}/api/groups/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"], "unknown_group");

    // Unsubscribing leaves the group at once: well within the member's
    // session timeout (6 s), which would empty it too.
    let left = send(http_client().delete(format!("{ui}/api/unsubscribe/{id}"))).await;
    assert_eq!(left.status, StatusCode::OK);
    wait_for("the group to be empty", Duration::from_secs(3), || async {
        let (_, detail) = get_json(&format!("{ui}/api/groups/{GROUP}")).await;
        (detail["state"] == "empty" && detail["members"] == json!([])).then_some(())
    })
    .await;
}

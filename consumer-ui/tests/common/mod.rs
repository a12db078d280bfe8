//! What the consumer UI's browser tests share: the cluster's URLs for
//! `--bootstrap`, and reading the consumer page.

use std::time::Duration;

use serde_json::{Value, json};
use testkit::{Browser, Cluster, wait_for};

/// How long any one thing may take to show in a page.
pub const WAIT: Duration = Duration::from_secs(20);

/// The cluster's node URLs, for `--bootstrap`.
pub fn bootstrap(cluster: &Cluster) -> Vec<&str> {
    cluster.nodes().iter().map(|n| n.url()).collect()
}

/// The messages shown in subscription `card` (a CSS selector), newest
/// first: topic, partition, offset, key, payload text.
pub async fn shown_messages(browser: &Browser, card: &str) -> Vec<Value> {
    let rows = browser
        .eval(
            r#"return [...document.querySelectorAll(arguments[0] + " .sub-messages tr")].map((tr) => ({
                topic: tr.dataset.topic,
                partition: Number(tr.dataset.partition),
                offset: Number(tr.dataset.offset),
                key: tr.children[2].classList.contains("key") ? tr.children[2].textContent : null,
                payload: tr.querySelector("td.payload pre").textContent,
            }));"#,
            vec![json!(card)],
        )
        .await;
    rows.as_array().cloned().unwrap_or_default()
}

/// Waits until the consumer page (open) offers `topic` to subscribe to.
pub async fn wait_for_topic(browser: &Browser, topic: &str) {
    wait_for(
        format!("topic {topic} in the subscribe form"),
        WAIT,
        || async {
            let options = browser
                .eval(
                    "return [...document.querySelectorAll('#sub-topic option')].map(o => o.value);",
                    vec![],
                )
                .await;
            options.as_array()?.iter().any(|o| o == topic).then_some(())
        },
    )
    .await;
}

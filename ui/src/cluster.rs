//! [`ClusterWatch`]: one task per UI process that follows who leads, whether
//! the leader can be reached, and which topics exist. Pages learn about
//! changes over server-sent events; nothing in the browser polls.
//!
//! Each round asks the nodes who leads (`leader_info`) and then asks the
//! leader for its topics, which doubles as a liveness probe: a leader the
//! nodes still name (its lease has not expired yet) but that does not
//! answer is shown as *reconnecting*, not *connected*. The decision is the
//! pure function [`observe`].

use std::{sync::Arc, time::Duration};

use serde::Serialize;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use yak_client::{ClientConfig, ClientError, ErrorCode, LeaderInfo, TopicSummary, YakClient};

/// How the UI's link to the cluster is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// Not asked yet.
    Connecting,
    /// The leader answered.
    Connected,
    /// No node, or not the leader, answered; trying again.
    Reconnecting,
    /// Nodes answered but none leads (an election is under way).
    NoLeader,
}

/// The header's "current leader" slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderView {
    pub state: Connection,
    pub leader_id: Option<String>,
    pub leader_url: Option<String>,
    pub epoch: u64,
    /// Why the state is not `connected`.
    pub message: Option<String>,
}

impl Default for LeaderView {
    fn default() -> Self {
        Self {
            state: Connection::Connecting,
            leader_id: None,
            leader_url: None,
            epoch: 0,
            message: None,
        }
    }
}

/// A topic and its partition count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topic {
    pub name: String,
    pub partitions: u32,
}

impl From<TopicSummary> for Topic {
    fn from(t: TopicSummary) -> Self {
        Self {
            name: t.name,
            partitions: t.partitions,
        }
    }
}

/// Reads one round: the nodes' answer about the leader, and (when they
/// named one) the leader's answer to the topic probe.
pub fn observe(
    info: Result<LeaderInfo, ClientError>,
    probe: Option<Result<Vec<TopicSummary>, ClientError>>,
) -> (LeaderView, Option<Vec<Topic>>) {
    let info = match info {
        Ok(info) => info,
        Err(e) => {
            let state = if leaderless(&e) {
                Connection::NoLeader
            } else {
                Connection::Reconnecting
            };
            let view = LeaderView {
                state,
                message: Some(crate::error::describe(&e)),
                ..LeaderView::default()
            };
            return (view, None);
        }
    };
    let view = LeaderView {
        state: Connection::Connected,
        leader_id: info.leader_id,
        leader_url: info.leader_url,
        epoch: info.epoch,
        message: None,
    };
    match probe {
        Some(Ok(topics)) => (view, Some(topics.into_iter().map(Topic::from).collect())),
        Some(Err(e)) => {
            let state = if leaderless(&e) {
                Connection::NoLeader
            } else {
                Connection::Reconnecting
            };
            let message = Some(format!(
                "the leader does not answer: {}",
                crate::error::describe(&e)
            ));
            (
                LeaderView {
                    state,
                    message,
                    ..view
                },
                None,
            )
        }
        None => (
            LeaderView {
                state: Connection::NoLeader,
                message: Some("no node knows a leader".to_owned()),
                ..view
            },
            None,
        ),
    }
}

fn leaderless(e: &ClientError) -> bool {
    matches!(e, ClientError::NoLeader(_)) || e.error_code().is_some_and(ErrorCode::is_leader_change)
}

/// A watch on the cluster; cheap to clone.
#[derive(Debug, Clone)]
pub struct ClusterWatch {
    leader: watch::Receiver<LeaderView>,
    topics: watch::Receiver<Vec<Topic>>,
    poke: Arc<Notify>,
}

/// Between rounds while connected, and while not.
const STEADY: Duration = Duration::from_secs(1);
const UNSETTLED: Duration = Duration::from_millis(250);

impl ClusterWatch {
    /// Starts the watch task on the current runtime; it ends with `cancel`.
    /// `access` gives the token and CA (its retry policy is not used).
    pub fn spawn(
        bootstrap: &[String],
        access: &ClientConfig,
        cancel: CancellationToken,
    ) -> Result<Self, ClientError> {
        // Its own client with short deadlines, so a dead leader shows up
        // within about a second instead of after a long retry.
        let client = YakClient::with_config(
            bootstrap.iter().cloned(),
            ClientConfig {
                deadline: Duration::from_millis(800),
                min_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
                request_timeout: Duration::from_millis(1500),
                ..ClientConfig::default()
            }
            .with_access_of(access),
        )?;
        let (leader_tx, leader) = watch::channel(LeaderView::default());
        let (topics_tx, topics) = watch::channel(Vec::new());
        let poke = Arc::new(Notify::new());
        let woken = poke.clone();
        tokio::spawn(async move {
            loop {
                let info = client.leader_info().await;
                let probe = match &info {
                    Ok(i) if i.leader_url.is_some() => Some(client.topics().await),
                    _ => None,
                };
                let (view, topics) = observe(info, probe);
                let settled = view.state == Connection::Connected;
                leader_tx.send_if_modified(|old| {
                    if *old == view {
                        return false;
                    }
                    tracing::info!(state = ?view.state, leader = ?view.leader_id, epoch = view.epoch, message = ?view.message, "cluster connection");
                    *old = view;
                    true
                });
                if let Some(mut topics) = topics {
                    topics.sort_by(|a, b| a.name.cmp(&b.name));
                    topics_tx.send_if_modified(|old| {
                        let changed = *old != topics;
                        *old = topics;
                        changed
                    });
                }
                let pause = if settled { STEADY } else { UNSETTLED };
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = woken.notified() => {}
                    () = cancel.cancelled() => return,
                }
            }
        });
        Ok(Self {
            leader,
            topics,
            poke,
        })
    }

    pub fn leader(&self) -> LeaderView {
        self.leader.borrow().clone()
    }

    /// Changes of the leader view (the current one counts as seen).
    pub fn watch_leader(&self) -> watch::Receiver<LeaderView> {
        let mut rx = self.leader.clone();
        rx.mark_unchanged();
        rx
    }

    pub fn topics(&self) -> Vec<Topic> {
        self.topics.borrow().clone()
    }

    /// Changes of the topic list (the current one counts as seen).
    pub fn watch_topics(&self) -> watch::Receiver<Vec<Topic>> {
        let mut rx = self.topics.clone();
        rx.mark_unchanged();
        rx
    }

    /// Asks for a round now (after a send that may have created a topic).
    pub fn refresh(&self) {
        self.poke.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(leader: Option<&str>) -> LeaderInfo {
        LeaderInfo {
            leader_id: leader.map(|_| "broker".to_owned()),
            leader_url: leader.map(str::to_owned),
            leader_tcp: None,
            epoch: 4,
            lease_ttl_ms: None,
            nodes: Vec::new(),
        }
    }

    fn transport() -> ClientError {
        ClientError::Transport {
            url: "http://127.0.0.1:1".to_owned(),
            message: "connection refused".to_owned(),
        }
    }

    #[test]
    fn a_leader_that_answers_is_connected() {
        let topics = vec![TopicSummary {
            name: "t".to_owned(),
            partitions: 3,
        }];
        let (view, topics) = observe(Ok(info(Some("http://a"))), Some(Ok(topics)));
        assert_eq!(view.state, Connection::Connected);
        assert_eq!(view.leader_url.as_deref(), Some("http://a"));
        assert_eq!(view.epoch, 4);
        assert_eq!(topics.unwrap()[0].partitions, 3);
    }

    #[test]
    fn a_named_leader_that_does_not_answer_is_reconnecting() {
        let (view, topics) = observe(Ok(info(Some("http://a"))), Some(Err(transport())));
        assert_eq!(view.state, Connection::Reconnecting);
        assert_eq!(view.leader_id.as_deref(), Some("broker"));
        assert!(view.message.unwrap().contains("does not answer"));
        assert!(topics.is_none(), "keep the last topic list");
    }

    #[test]
    fn nodes_without_a_leader_and_no_nodes_at_all() {
        let (view, _) = observe(Err(ClientError::NoLeader("b knows none".to_owned())), None);
        assert_eq!(view.state, Connection::NoLeader);
        let (view, _) = observe(Err(transport()), None);
        assert_eq!(view.state, Connection::Reconnecting);
        let (view, _) = observe(Ok(info(None)), None);
        assert_eq!(view.state, Connection::NoLeader);
    }
}

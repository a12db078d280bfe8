//! [`SubscribeRequest`]: what a page asks to read, checked into a [`Plan`]
//! before the cluster is asked anything — chosen partitions of a topic, or
//! membership of a consumer group.

use serde::Deserialize;
use yak_client::{StartAt, group::validate_group_name, validate_topic_name};
use yak_ui::UiError;

use crate::tabs::TabId;

/// Where a subscription starts: `"earliest"`, `"latest"` or an offset
/// (a number or a string of digits).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StartSpec {
    Offset(u64),
    Word(String),
}

impl StartSpec {
    pub fn parse(&self) -> Result<StartAt, String> {
        match self {
            StartSpec::Offset(n) => Ok(StartAt::Offset(*n)),
            StartSpec::Word(w) => w.trim().parse(),
        }
    }
}

/// `POST /api/subscribe`: `topic` (and `partition`) to read partitions;
/// `group` and `topics` (or `topic`) to join a group, with the `tab` of the
/// page that owns the membership.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeRequest {
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub topics: Option<Vec<String>>,
    /// One partition, or every partition when absent.
    #[serde(default)]
    pub partition: Option<u32>,
    /// Default: `latest`.
    #[serde(default)]
    pub start: Option<StartSpec>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub tab: Option<TabId>,
}

/// A request that makes sense (its topics may still not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Partitions {
        topic: String,
        /// `None`: every partition.
        partition: Option<u32>,
        start: StartAt,
    },
    Group {
        group: String,
        /// In the order given, each once.
        topics: Vec<String>,
        /// `Earliest` or `Latest`.
        start: StartAt,
        owner: Option<TabId>,
    },
}

fn invalid(message: impl Into<String>) -> UiError {
    UiError::bad_request("invalid_request", message)
}

fn topic_name(name: &str) -> Result<String, UiError> {
    let name = name.trim();
    validate_topic_name(name).map_err(|m| UiError::bad_request("invalid_topic", m))?;
    Ok(name.to_owned())
}

impl SubscribeRequest {
    pub fn plan(self) -> Result<Plan, UiError> {
        let start = match &self.start {
            None => StartAt::Latest,
            Some(spec) => spec
                .parse()
                .map_err(|m| UiError::bad_request("invalid_start", m))?,
        };
        let Some(group) = self.group else {
            if self.topics.is_some() {
                return Err(invalid(
                    "several topics are for a group member (give \"group\"); \
                     to read partitions, give one \"topic\"",
                ));
            }
            let topic = self
                .topic
                .ok_or_else(|| invalid("name the \"topic\" to read"))?;
            return Ok(Plan::Partitions {
                topic: topic_name(&topic)?,
                partition: self.partition,
                start,
            });
        };
        let group = group.trim().to_owned();
        validate_group_name(&group).map_err(|m| UiError::bad_request("invalid_group", m))?;
        if self.partition.is_some() {
            return Err(invalid(
                "a group member reads the partitions the group assigns it; leave out \"partition\"",
            ));
        }
        if let StartAt::Offset(_) = start {
            return Err(UiError::bad_request(
                "invalid_start",
                "a group member continues from the group's committed offsets; \"start\" \
                 (earliest or latest) only says where partitions without one begin",
            ));
        }
        let mut topics = Vec::new();
        for name in self.topic.iter().chain(self.topics.iter().flatten()) {
            let name = topic_name(name)?;
            if !topics.contains(&name) {
                topics.push(name);
            }
        }
        if topics.is_empty() {
            return Err(invalid(
                "a group member reads at least one topic: give \"topics\"",
            ));
        }
        Ok(Plan::Group {
            group,
            topics,
            start,
            owner: self.tab,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn plan(body: Value) -> Result<Plan, String> {
        let req: SubscribeRequest = serde_json::from_value(body).map_err(|e| e.to_string())?;
        req.plan().map_err(|e| e.code().to_owned())
    }

    #[test]
    fn start_specs() {
        let parse = |v: Value| serde_json::from_value::<StartSpec>(v).unwrap().parse();
        assert_eq!(parse("earliest".into()), Ok(StartAt::Earliest));
        assert_eq!(parse("latest".into()), Ok(StartAt::Latest));
        assert_eq!(parse(42.into()), Ok(StartAt::Offset(42)));
        assert_eq!(parse(" 7 ".into()), Ok(StartAt::Offset(7)));
        assert!(parse("soon".into()).is_err());
        assert!(serde_json::from_value::<StartSpec>((-1).into()).is_err());
    }

    #[test]
    fn partitions_of_one_topic() {
        assert_eq!(
            plan(json!({"topic": " t ", "partition": 1, "start": 5})),
            Ok(Plan::Partitions {
                topic: "t".to_owned(),
                partition: Some(1),
                start: StartAt::Offset(5),
            })
        );
        assert_eq!(
            plan(json!({"topic": "t"})),
            Ok(Plan::Partitions {
                topic: "t".to_owned(),
                partition: None,
                start: StartAt::Latest,
            })
        );
        assert_eq!(plan(json!({})), Err("invalid_request".to_owned()));
        assert_eq!(
            plan(json!({"topics": ["a", "b"]})),
            Err("invalid_request".to_owned())
        );
        assert_eq!(
            plan(json!({"topic": "a b"})),
            Err("invalid_topic".to_owned())
        );
    }

    #[test]
    fn a_group_membership() {
        assert_eq!(
            plan(
                json!({"group": "g", "topic": "a", "topics": ["b", "a"], "start": "earliest", "tab": "t-1"})
            ),
            Ok(Plan::Group {
                group: "g".to_owned(),
                topics: vec!["a".to_owned(), "b".to_owned()],
                start: StartAt::Earliest,
                owner: Some(TabId::try_from("t-1".to_owned()).unwrap()),
            })
        );
        let refused = [
            (json!({"group": "g"}), "invalid_request"),
            (json!({"group": "g", "topics": []}), "invalid_request"),
            (
                json!({"group": "g", "topic": "t", "partition": 0}),
                "invalid_request",
            ),
            (
                json!({"group": "g", "topic": "t", "start": 3}),
                "invalid_start",
            ),
            (json!({"group": "a b", "topic": "t"}), "invalid_group"),
            (json!({"group": "g", "topics": ["../x"]}), "invalid_topic"),
        ];
        for (body, code) in refused {
            assert_eq!(plan(body.clone()), Err(code.to_owned()), "{body}");
        }
        let named =
            serde_json::from_value::<SubscribeRequest>(json!({"group": "a b", "topic": "t"}));
        let message = named.unwrap().plan().unwrap_err();
        assert!(message.message().starts_with("group name"), "{message}");
        let bad_tab = plan(json!({"group": "g", "topic": "t", "tab": "<script>"})).unwrap_err();
        assert!(bad_tab.contains("tab id"), "{bad_tab}");
        assert!(plan(json!({"topic": "t", "oops": 1})).is_err());
    }
}

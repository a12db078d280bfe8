//! Topics: the name rule every node enforces (names become directory
//! names) and [`TopicConfig`], the settings stored with a topic.

use serde::{Deserialize, Serialize};

/// Longest topic name, as in Kafka.
pub const MAX_TOPIC_NAME: usize = 249;

/// Checks a topic name: 1–249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name may only contain letters, digits, '.', '_' and '-'; found {bad:?}"
        ));
    }
    // Only ASCII is left: bytes and characters are the same count.
    if name.is_empty() || name.len() > MAX_TOPIC_NAME {
        return Err(format!(
            "topic name must be 1 to {MAX_TOPIC_NAME} characters, got {}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be {name:?}"));
    }
    Ok(())
}

/// What a topic stores beside its partition count: its retention rule
/// (`None`: unlimited), fixed when it is created (the creating leader's
/// defaults fill what the request leaves out) so that every replica
/// applies the same one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_ms: Option<u64>,
}

impl TopicConfig {
    /// These fields where given, else `defaults`'.
    pub fn or(self, defaults: TopicConfig) -> TopicConfig {
        TopicConfig {
            retention_bytes: self.retention_bytes.or(defaults.retention_bytes),
            retention_ms: self.retention_ms.or(defaults.retention_ms),
        }
    }
}

impl std::fmt::Display for TopicConfig {
    /// The rule in words: `keeps ≤ 1048576 bytes, ≤ 3600000 ms`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.retention_bytes, self.retention_ms) {
            (None, None) => f.write_str("keeps everything"),
            (Some(b), None) => write!(f, "keeps ≤ {b} bytes per partition"),
            (None, Some(ms)) => write!(f, "keeps ≤ {ms} ms"),
            (Some(b), Some(ms)) => write!(f, "keeps ≤ {b} bytes per partition, ≤ {ms} ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_alphabet_up_to_the_limit() {
        for good in [
            "server_metrics",
            "a.b-c_9",
            "...",
            &"x".repeat(MAX_TOPIC_NAME),
        ] {
            assert!(validate_topic_name(good).is_ok(), "{good:?} refused");
        }
    }

    #[test]
    fn refuses_paths_markup_and_long_names() {
        for bad in ["", ".", "..", "../x", "a b", "<b>", "é", "a/b", "a\0"] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_topic_name("../x").unwrap_err().contains("'/'"));
        let long = validate_topic_name(&"x".repeat(MAX_TOPIC_NAME + 1)).unwrap_err();
        assert!(long.contains("got 250"), "{long}");
        // 125 two-byte characters are refused for the character, not
        // counted as 250 bytes.
        assert!(
            validate_topic_name(&"é".repeat(125))
                .unwrap_err()
                .contains("'é'")
        );
    }

    #[test]
    fn a_request_fills_what_it_leaves_out_from_the_defaults() {
        let request = TopicConfig {
            retention_bytes: Some(10),
            retention_ms: None,
        };
        let defaults = TopicConfig {
            retention_bytes: Some(1),
            retention_ms: Some(2),
        };
        assert_eq!(
            request.or(defaults),
            TopicConfig {
                retention_bytes: Some(10),
                retention_ms: Some(2)
            }
        );
        assert_eq!(request.to_string(), "keeps ≤ 10 bytes per partition");
    }
}

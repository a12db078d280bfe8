//! The broker's topic-name rule (`broker::topics::validate_topic_name`),
//! checked by the UIs before starting work that would otherwise fail once
//! per record (an upload job, a subscription). The broker still has the last
//! word on every single send.

/// Longest topic name, as in the broker (and Kafka).
pub const MAX_TOPIC_NAME: usize = 249;

/// 1–249 of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_TOPIC_NAME {
        return Err(format!(
            "topic name must be 1 to {MAX_TOPIC_NAME} characters, got {}",
            name.chars().count()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be {name:?}"));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name may only contain letters, digits, '.', '_' and '-'; found {bad:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_broker_alphabet() {
        assert!(check_topic_name("server_metrics").is_ok());
        assert!(check_topic_name("a.b-c_9").is_ok());
        assert!(check_topic_name(&"x".repeat(MAX_TOPIC_NAME)).is_ok());
    }

    #[test]
    fn rejects_paths_and_markup() {
        for bad in ["", ".", "..", "../x", "a b", "<b>", "é", "a/b"] {
            assert!(check_topic_name(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_topic_name(&"x".repeat(MAX_TOPIC_NAME + 1)).is_err());
        assert!(check_topic_name("../x").unwrap_err().contains("'/'"));
    }
}

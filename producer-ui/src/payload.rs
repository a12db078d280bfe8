//! A single message's payload as typed on the page: JSON (checked) or plain
//! text (sent as a JSON string).

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    #[default]
    Json,
    Text,
}

/// The payload to send, or a message saying what is wrong with it.
pub fn parse_payload(text: &str, format: PayloadFormat) -> Result<Value, String> {
    match format {
        PayloadFormat::Text => Ok(Value::String(text.to_owned())),
        PayloadFormat::Json if text.trim().is_empty() => {
            Err("the payload is empty: type a JSON value, or choose Text".to_owned())
        }
        PayloadFormat::Json => {
            serde_json::from_str(text).map_err(|e| format!("the payload is not valid JSON: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_is_parsed_and_checked() {
        assert_eq!(
            parse_payload(r#" {"cpu": 75, "tags": ["a"]} "#, PayloadFormat::Json),
            Ok(json!({"cpu": 75, "tags": ["a"]}))
        );
        assert_eq!(parse_payload("42", PayloadFormat::Json), Ok(json!(42)));
        let e = parse_payload("{\"cpu\": }", PayloadFormat::Json).unwrap_err();
        assert!(e.starts_with("the payload is not valid JSON"), "{e}");
        assert!(e.contains("line 1 column"), "{e}");
        assert!(
            parse_payload("  ", PayloadFormat::Json)
                .unwrap_err()
                .contains("empty")
        );
    }

    #[test]
    fn text_is_a_json_string() {
        assert_eq!(
            parse_payload("{not json", PayloadFormat::Text),
            Ok(json!("{not json"))
        );
        assert_eq!(parse_payload("", PayloadFormat::Text), Ok(json!("")));
    }
}

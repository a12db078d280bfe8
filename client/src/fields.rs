//! How the text fields of a row (a CSV line) become a record's JSON payload.
//! The `yak produce --csv` command and the producer UI both convert through
//! here, so a file gives the same records whichever way it is sent.
//!
//! Typing ([`typed_value`]) never changes a value: `true`/`false` become
//! booleans, and a number becomes a JSON number only when JSON writes it
//! back as the same text (`92.4`, `-3`, `48.0`, `24789`). Everything else
//! stays the string it was: `007`, `1.50`, `+1`, `1e5`, `NaN`, `inf`,
//! `True`, ` 1` and the empty field.

use serde_json::Value;

/// `true`/`false` as booleans, numbers that round-trip as numbers,
/// anything else as the string it is (see the module docs).
pub fn typed_value(s: &str) -> Value {
    match s {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(n) = s.parse::<i64>()
        && n.to_string() == s
    {
        return Value::from(n);
    }
    if let Ok(n) = s.parse::<u64>()
        && n.to_string() == s
    {
        return Value::from(n);
    }
    if let Ok(f) = s.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
        && n.to_string() == s
    {
        return Value::Number(n);
    }
    Value::String(s.to_owned())
}

/// One field as a JSON value: typed (see [`typed_value`]) or always a
/// string.
pub fn field_value(s: &str, typed: bool) -> Value {
    if typed {
        typed_value(s)
    } else {
        Value::String(s.to_owned())
    }
}

/// Makes header names usable as JSON keys: blank ones become `column_<n>`
/// and repeats get a suffix (`name`, `name_2`), so no column overwrites
/// another in the payload.
pub fn unique_headers(raw: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, h) in raw.into_iter().enumerate() {
        let base = match h.trim() {
            "" => format!("column_{}", i + 1),
            t => t.to_owned(),
        };
        let mut name = base.clone();
        let mut n = 2;
        while out.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        out.push(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn typing_never_changes_a_value() {
        assert_eq!(typed_value("92.4"), json!(92.4));
        assert_eq!(typed_value("48.0"), json!(48.0));
        assert_eq!(typed_value("-3"), json!(-3));
        assert_eq!(typed_value("24789"), json!(24789));
        assert_eq!(typed_value("18446744073709551615"), json!(u64::MAX));
        assert_eq!(typed_value("true"), json!(true));
        assert_eq!(typed_value("false"), json!(false));
        for kept in [
            "007",
            "1e5",
            "NaN",
            "inf",
            "",
            " 1",
            "+1",
            "True",
            "-0",
            "1.50",
            "1e400",
            "99999999999999999999",
        ] {
            assert_eq!(typed_value(kept), json!(kept), "{kept:?}");
        }
    }

    #[test]
    fn strings_when_asked() {
        assert_eq!(field_value("92.4", false), json!("92.4"));
        assert_eq!(field_value("true", false), json!("true"));
        assert_eq!(field_value("92.4", true), json!(92.4));
    }

    #[test]
    fn headers_become_unique_keys() {
        let h = unique_headers(["a", "", "a", " b ", "a"].map(str::to_owned));
        assert_eq!(h, ["a", "column_2", "a_2", "b", "a_3"]);
    }
}

//! Log output: every line carries the node id and its current role, in text
//! (`node=… role=…` then the usual line) or JSON (`--log-format json`, one
//! object per line with `ts`, `level`, `node`, `role`, `target`, `message`
//! and the event's fields).

use std::{
    fmt,
    sync::{OnceLock, RwLock},
};

use serde_json::{Map, Value};
use tracing::{Event, Subscriber, field::Field};
use tracing_subscriber::{
    EnvFilter,
    field::Visit,
    fmt::{FmtContext, FormatEvent, FormatFields, format::Writer},
    registry::LookupSpan,
};

use crate::config::LogFormat;

static NODE: OnceLock<String> = OnceLock::new();
static ROLE: RwLock<&'static str> = RwLock::new("starting");

/// Sets the role shown on later log lines.
pub fn set_role(role: &'static str) {
    *ROLE.write().unwrap() = role;
}

/// Installs the global subscriber (`RUST_LOG` filters; default `info`).
pub fn init(format: LogFormat, node_id: &str) {
    let _ = NODE.set(node_id.to_owned());
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .event_format(NodeFormat {
            json: format == LogFormat::Json,
            text: tracing_subscriber::fmt::format().with_target(false),
        })
        .try_init();
}

struct NodeFormat<T> {
    json: bool,
    text: T,
}

impl<S, N, T> FormatEvent<S, N> for NodeFormat<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    T: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let node = NODE.get().map_or("-", String::as_str);
        let role = *ROLE.read().unwrap();
        if !self.json {
            write!(writer, "node={node} role={role} ")?;
            return self.text.format_event(ctx, writer, event);
        }
        let mut fields = JsonFields(Map::new());
        event.record(&mut fields);
        let mut line = Map::new();
        line.insert(
            "ts".into(),
            humantime::format_rfc3339_millis(std::time::SystemTime::now())
                .to_string()
                .into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        line.insert("node".into(), node.into());
        line.insert("role".into(), role.into());
        line.insert("target".into(), event.metadata().target().into());
        line.extend(fields.0);
        writeln!(writer, "{}", Value::Object(line))
    }
}

struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

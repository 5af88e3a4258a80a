//! Structured JSON logs for CloudWatch, one object per line:
//! `{"timestamp", "level", "service", "message", "requestId", "data": {...}}`.
//! The request id comes from the enclosing `request` span (see `edge::http`).

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{span, Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Installs the JSON logger once; `RUST_LOG` of `env` filters (default `info`).
pub fn init(service: &'static str, env: &crate::config::Env) {
    let directives = env.get("RUST_LOG").unwrap_or_else(|| "info".to_owned());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(RequestIdLayer)
        .with(tracing_subscriber::fmt::layer().event_format(JsonLine { service }))
        .try_init();
}

#[derive(Clone)]
struct RequestId(String);

/// Remembers the `request_id` field of a span so that every event inside it carries it.
struct RequestIdLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RequestIdLayer {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut visitor = Fields::default();
        attrs.record(&mut visitor);
        if let (Some(Value::String(rid)), Some(span)) =
            (visitor.fields.remove("requestId"), ctx.span(id))
        {
            span.extensions_mut().insert(RequestId(rid));
        }
    }
}

struct JsonLine {
    service: &'static str,
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let request_id = ctx.event_scope().and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<RequestId>().map(|r| r.0.clone()))
        });
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        line.insert(
            "level".into(),
            event
                .metadata()
                .level()
                .as_str()
                .to_ascii_lowercase()
                .into(),
        );
        line.insert("service".into(), self.service.into());
        line.insert("message".into(), fields.message.unwrap_or_default().into());
        if let Some(rid) = request_id {
            line.insert("requestId".into(), rid.into());
        }
        if !fields.fields.is_empty() {
            line.insert("data".into(), Value::Object(fields.fields));
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

#[derive(Default)]
struct Fields {
    message: Option<String>,
    fields: Map<String, Value>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields
                .insert(domain::error::camel_case(field.name()), value);
        }
    }
}

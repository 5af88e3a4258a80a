//! Structured JSON logs for CloudWatch, one object per line:
//! `{"timestamp", "level", "service", "message", "requestId", "cold_start", "xray_trace_id",
//! "function_name", "data": {...}}`.
//! The invocation's fields come from the enclosing span made by [`invocation_span`] (one
//! per HTTP request in `edge::http`, per SQS batch, per custom-resource or scheduled
//! invocation); `cold_start`, `xray_trace_id` and `function_name` carry AWS Lambda
//! Powertools' names, so CloudWatch Logs Insights queries and X-Ray join them the same way.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

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
    let _ = FUNCTION_NAME.set(env.get("AWS_LAMBDA_FUNCTION_NAME"));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(InvocationLayer)
        .with(tracing_subscriber::fmt::layer().event_format(JsonLine { service }))
        .try_init();
}

/// The Lambda function's name (`AWS_LAMBDA_FUNCTION_NAME`), read once by [`init`].
static FUNCTION_NAME: OnceLock<Option<String>> = OnceLock::new();

/// Invocations this process has started: the first one is the cold start.
static INVOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The span of one invocation (an HTTP request, an SQS batch, a custom-resource request):
/// every log line inside it carries `request_id`, whether it is the process's first
/// invocation (`cold_start`) and the X-Ray trace id of the invocation when tracing is on
/// (the Lambda runtime sets `_X_AMZN_TRACE_ID` before each invocation).
pub fn invocation_span(request_id: &str) -> tracing::Span {
    let cold_start = INVOCATIONS.fetch_add(1, Ordering::Relaxed) == 0;
    let trace = crate::config::current_trace_id().unwrap_or_default();
    tracing::info_span!(
        "invocation",
        request_id = %request_id,
        cold_start,
        xray_trace_id = %trace
    )
}

/// The invocation fields of a span (see [`invocation_span`]).
#[derive(Clone, Default)]
struct InvocationFields {
    request_id: Option<String>,
    cold_start: Option<bool>,
    xray_trace_id: Option<String>,
}

/// Remembers the invocation fields of a span so that every event inside it carries them.
struct InvocationLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for InvocationLayer {
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let mut visitor = Fields::default();
        attrs.record(&mut visitor);
        let text = |v: Option<Value>| match v {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        };
        let fields = InvocationFields {
            request_id: text(visitor.fields.remove("requestId")),
            cold_start: visitor.fields.remove("coldStart").and_then(|v| v.as_bool()),
            xray_trace_id: text(visitor.fields.remove("xrayTraceId")),
        };
        if fields.request_id.is_some() {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(fields);
            }
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
        let invocation = ctx.event_scope().and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<InvocationFields>().cloned())
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
        if let Some(inv) = invocation {
            if let Some(rid) = inv.request_id {
                line.insert("requestId".into(), rid.into());
            }
            if let Some(cold) = inv.cold_start {
                line.insert("cold_start".into(), cold.into());
            }
            if let Some(trace) = inv.xray_trace_id {
                line.insert("xray_trace_id".into(), trace.into());
            }
        }
        if let Some(Some(name)) = FUNCTION_NAME.get() {
            line.insert("function_name".into(), name.clone().into());
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_the_invocation_the_cold_start_and_the_trace() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(InvocationLayer).with(
            tracing_subscriber::fmt::layer()
                .event_format(JsonLine { service: "test" })
                .with_writer(move || writer.clone()),
        );
        std::env::set_var(
            "_X_AMZN_TRACE_ID",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        );
        tracing::subscriber::with_default(subscriber, || {
            invocation_span("req-1").in_scope(|| tracing::info!(guest_id = 7, "first"));
            invocation_span("req-2").in_scope(|| tracing::warn!("second"));
            tracing::info!("outside");
        });
        std::env::remove_var("_X_AMZN_TRACE_ID");
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[0]["requestId"], "req-1");
        assert_eq!(
            lines[0]["cold_start"], true,
            "the process's first invocation"
        );
        assert_eq!(
            lines[0]["xray_trace_id"],
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
        );
        assert_eq!(lines[0]["data"]["guestId"], 7);
        assert_eq!(lines[1]["requestId"], "req-2");
        assert_eq!(lines[1]["cold_start"], false);
        assert_eq!(lines[1]["level"], "warn");
        assert!(lines[2].get("requestId").is_none() && lines[2].get("cold_start").is_none());
    }
}

//! CloudWatch Embedded Metric Format: a JSON log line that CloudWatch Logs turns into
//! metrics, no API call (and no VPC endpoint for CloudWatch) needed.
//!
//! ```json
//! {"_aws": {"Timestamp": 1795600000000,
//!           "CloudWatchMetrics": [{"Namespace": "EventPlannerCore",
//!                                  "Dimensions": [["Service"]],
//!                                  "Metrics": [{"Name": "Healthy", "Unit": "Count"}]}]},
//!  "Service": "event-planner-core-prod", "Healthy": 1}
//! ```
//!
//! Every metric and dimension named in `_aws` has its value at the top level of the same
//! object; other top-level fields are searchable in Logs Insights but are no metrics.
//! Lambda passes a JSON line written to stdout through unchanged (also with the JSON log
//! format), so one `println!` publishes it.

use serde_json::{json, Map, Value};

/// CloudWatch metric units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    Seconds,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
        }
    }
}

/// One EMF document: metrics of one namespace sharing one set of dimensions.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, Unit, f64)>,
    properties: Map<String, Value>,
}

impl Metrics {
    pub fn new(namespace: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Map::new(),
        }
    }

    pub fn dimension(mut self, name: &str, value: &str) -> Self {
        self.dimensions.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn metric(mut self, name: &str, unit: Unit, value: f64) -> Self {
        self.metrics.push((name.to_owned(), unit, value));
        self
    }

    /// A field that is logged but not a metric.
    pub fn property(mut self, name: &str, value: Value) -> Self {
        self.properties.insert(name.to_owned(), value);
        self
    }

    /// The document, stamped `timestamp_ms` (milliseconds since the Unix epoch).
    pub fn document(&self, timestamp_ms: i64) -> Value {
        let mut root = self.properties.clone();
        let names: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        let definitions: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, unit, _)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        for (name, value) in &self.dimensions {
            root.insert(name.clone(), Value::String(value.clone()));
        }
        for (name, _, value) in &self.metrics {
            // Whole numbers as integers (`1`, not `1.0`), which reads better in the logs.
            let v = if value.fract() == 0.0 && value.abs() < 9.0e15 {
                json!(*value as i64)
            } else {
                json!(value)
            };
            root.insert(name.clone(), v);
        }
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [names],
                    "Metrics": definitions,
                }]
            }),
        );
        Value::Object(root)
    }

    /// Writes the document, stamped now, as one line on stdout; returns it.
    pub fn emit(&self) -> Value {
        let doc = self.document(chrono::Utc::now().timestamp_millis());
        println!("{doc}");
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_specification() {
        let doc = Metrics::new("EventPlannerCore")
            .dimension("Service", "epc-dev")
            .metric("Healthy", Unit::Count, 1.0)
            .metric("DatabaseLatency", Unit::Milliseconds, 2.5)
            .property("report", json!({"database": true}))
            .document(1_795_600_000_000);
        assert_eq!(
            doc,
            json!({
                "_aws": {"Timestamp": 1_795_600_000_000i64, "CloudWatchMetrics": [{
                    "Namespace": "EventPlannerCore", "Dimensions": [["Service"]],
                    "Metrics": [{"Name": "Healthy", "Unit": "Count"}, {"Name": "DatabaseLatency", "Unit": "Milliseconds"}]
                }]},
                "Service": "epc-dev", "Healthy": 1, "DatabaseLatency": 2.5, "report": {"database": true}
            })
        );
        // One line.
        assert!(!doc.to_string().contains('\n'));
    }
}

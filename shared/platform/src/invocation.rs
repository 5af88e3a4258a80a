//! The Lambda invocation context an operations handler needs (request id, deadline, log
//! stream), and the metrics namespace of the service.

use std::time::{Duration, SystemTime};

/// The CloudWatch namespace of the service's own metrics.
pub const METRICS_NAMESPACE: &str = "EventPlannerCore";

/// What an operations handler needs to know about the Lambda invocation it serves
/// (taken from `lambda_runtime::Context` by the function's `main.rs`).
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub request_id: String,
    /// When Lambda stops the invocation; `None` when unknown.
    pub deadline: Option<SystemTime>,
    /// The CloudWatch log stream of this execution environment (named in CloudFormation
    /// failure reasons, so that an operator finds the details).
    pub log_stream: String,
}

impl Invocation {
    /// `deadline_ms`: the runtime's deadline, milliseconds since the Unix epoch. A value
    /// before 2001 counts as unknown: cargo-lambda's emulator sends its time-out there
    /// (`600000`), not a point in time.
    pub fn new(request_id: &str, deadline_ms: u64, log_stream: &str) -> Self {
        const PLAUSIBLE_MS: u64 = 1_000_000_000_000; // 2001-09-09
        Self {
            request_id: request_id.to_owned(),
            deadline: (deadline_ms >= PLAUSIBLE_MS)
                .then(|| SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms)),
            log_stream: log_stream.to_owned(),
        }
    }

    /// Time left before the deadline, minus `margin`; `default` when the deadline is unknown.
    pub fn budget(&self, margin: Duration, default: Duration) -> Duration {
        match self.deadline {
            Some(deadline) => deadline
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .saturating_sub(margin),
            None => default,
        }
    }
}

/// The name the service's metrics carry in their `Service` dimension: `SERVICE_NAME`
/// (the template sets the stack name), default `event-planner-core`.
/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_follows_the_deadline() {
        let inv = Invocation::new("r", 0, "");
        assert_eq!(
            inv.budget(Duration::from_secs(1), Duration::from_secs(7)),
            Duration::from_secs(7)
        );
        let in_a_minute = SystemTime::now() + Duration::from_secs(60);
        let ms = in_a_minute
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let budget = Invocation::new("r", ms, "").budget(Duration::from_secs(10), Duration::ZERO);
        assert!(budget > Duration::from_secs(45) && budget <= Duration::from_secs(50));
        // A deadline in the past leaves nothing.
        let past = Invocation::new("r", 1_700_000_000_000, "");
        assert_eq!(
            past.budget(Duration::ZERO, Duration::from_secs(1)),
            Duration::ZERO
        );
        // The emulator's relative "deadline" is no deadline.
        let emulator = Invocation::new("r", 600_000, "");
        assert_eq!(emulator.deadline, None);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        let cut = truncate("ééééé", 6);
        assert!(cut.len() <= 6 && cut.ends_with('…'), "{cut}");
    }
}

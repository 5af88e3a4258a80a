//! Units of work. A command runs inside a transaction it is given and returns [`Done`]:
//! its result and the [`Effects`] to apply once the transaction has committed (cached views
//! to invalidate, jobs to relay). The edge's one helper commits and applies them, so no
//! handler can forget them; a command never commits by itself.

/// What must happen after a commit.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[must_use = "effects must be applied after the commit"]
pub struct Effects {
    /// Events whose cached views (and every cached list) are now stale.
    pub events_changed: Vec<i64>,
    /// The transaction wrote jobs to the outbox: relay them now.
    pub jobs_written: bool,
    /// Webhook deliveries the transaction wrote (`webhook_write`): one `deliver_webhook`
    /// message each is sent now.
    pub webhook_deliveries: Vec<i64>,
}

impl Effects {
    pub fn event_changed(mut self, event_id: i64) -> Self {
        if !self.events_changed.contains(&event_id) {
            self.events_changed.push(event_id);
        }
        self
    }

    pub fn jobs(mut self) -> Self {
        self.jobs_written = true;
        self
    }

    pub fn webhooks(mut self, deliveries: impl IntoIterator<Item = i64>) -> Self {
        self.webhook_deliveries.extend(deliveries);
        self
    }
}

/// A command's result, to be committed: [`Done::into_parts`] is for the one helper that
/// commits and then applies the effects.
#[derive(Debug)]
#[must_use = "a command's result must be committed with its effects"]
pub struct Done<T> {
    value: T,
    effects: Effects,
}

impl<T> Done<T> {
    pub fn new(value: T, effects: Effects) -> Self {
        Self { value, effects }
    }

    /// The result, before the commit (what an Idempotency-Key stores with the change).
    pub fn value(&self) -> &T {
        &self.value
    }

    pub fn into_parts(self) -> (T, Effects) {
        (self.value, self.effects)
    }
}

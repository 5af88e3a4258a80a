//! The typed jobs: what a change asks to be done after it commits. A job is written to the
//! outbox in the transaction of the change ([`crate::outbox::enqueue`]) and travels as the
//! contract's message body `{"jobId", "type", "payload", "createdAt"}`
//! ([`crate::outbox::Message`]); [`Job`] is its `type` and `payload`, checked by the compiler
//! on both ends.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The queues jobs travel on; each has its own worker function and dead-letter queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Queue {
    Email,
    TicketGeneration,
    Webhooks,
}

impl Queue {
    pub const ALL: [Queue; 3] = [Queue::Email, Queue::TicketGeneration, Queue::Webhooks];

    /// The name in `job_outbox.queue`, in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            Queue::Email => "email",
            Queue::TicketGeneration => "ticket-generation",
            Queue::Webhooks => "webhooks",
        }
    }
}

/// Every job type of the contract with its payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    content = "payload",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum Job {
    /// To the guest: registered (confirmed) or waiting for approval (pending).
    RegistrationConfirmation {
        event_id: i64,
        guest_id: i64,
    },
    /// Renders the ticket's QR code and stores it, then queues [`Job::TicketReady`].
    GenerateTicket {
        ticket_id: i64,
    },
    /// To the guest: the ticket with its QR code.
    TicketReady {
        ticket_id: i64,
        guest_id: i64,
        event_id: i64,
    },
    /// To the guest again, asked by the organizer.
    TicketResend {
        event_id: i64,
        guest_id: i64,
        ticket_id: i64,
    },
    GuestCancelled {
        event_id: i64,
        guest_id: i64,
    },
    EventCancelled {
        event_id: i64,
        guest_id: i64,
    },
    /// One attempt of a webhook delivery (`webhook_deliveries`, its own outbox: no job row
    /// stands for it, [`crate::outbox::delivery_message`]); a failed attempt sets when the next
    /// one is due, and a relay sends it then.
    DeliverWebhook {
        delivery_id: i64,
    },
    /// Streams an export's rows into its object (S3), then marks it done and writes
    /// [`Job::ExportReady`] and the `export.done` webhook (`crate::exports`).
    BuildExport {
        export_id: i64,
    },
    /// To the user who asked for the export: it is ready to download.
    ExportReady {
        export_id: i64,
    },
    /// To a waiting-list entry: a seat is held for it until the offer expires; the email
    /// carries the claim token (only its hash is stored).
    WaitlistOffer {
        event_id: i64,
        entry_id: i64,
        token: String,
    },
}

impl Job {
    pub fn queue(&self) -> Queue {
        match self {
            Job::GenerateTicket { .. } | Job::BuildExport { .. } => Queue::TicketGeneration,
            Job::DeliverWebhook { .. } => Queue::Webhooks,
            _ => Queue::Email,
        }
    }

    /// The contract's `type`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Job::RegistrationConfirmation { .. } => "registration_confirmation",
            Job::GenerateTicket { .. } => "generate_ticket",
            Job::TicketReady { .. } => "ticket_ready",
            Job::TicketResend { .. } => "ticket_resend",
            Job::GuestCancelled { .. } => "guest_cancelled",
            Job::EventCancelled { .. } => "event_cancelled",
            Job::DeliverWebhook { .. } => "deliver_webhook",
            Job::BuildExport { .. } => "build_export",
            Job::ExportReady { .. } => "export_ready",
            Job::WaitlistOffer { .. } => "waitlist_offer",
        }
    }

    /// The contract's `payload`.
    pub fn payload(&self) -> Value {
        match serde_json::to_value(self) {
            Ok(Value::Object(mut o)) => o.remove("payload").unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// A job from its `type` and `payload` as stored or received; an unknown type or a
    /// payload without its fields is an error (a poison message, never retried).
    pub fn from_parts(job_type: &str, payload: &Value) -> Result<Job, String> {
        serde_json::from_value(serde_json::json!({"type": job_type, "payload": payload}))
            .map_err(|e| format!("not a {job_type:?} job: {e}"))
    }

    /// The guest a job is about, if any (emails are addressed by it).
    pub fn guest_id(&self) -> Option<i64> {
        match *self {
            Job::RegistrationConfirmation { guest_id, .. }
            | Job::TicketReady { guest_id, .. }
            | Job::TicketResend { guest_id, .. }
            | Job::GuestCancelled { guest_id, .. }
            | Job::EventCancelled { guest_id, .. } => Some(guest_id),
            Job::GenerateTicket { .. }
            | Job::DeliverWebhook { .. }
            | Job::BuildExport { .. }
            | Job::ExportReady { .. }
            | Job::WaitlistOffer { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_contract_shapes() {
        let job = Job::TicketReady {
            ticket_id: 3,
            guest_id: 2,
            event_id: 1,
        };
        assert_eq!(job.type_name(), "ticket_ready");
        assert_eq!(
            job.payload(),
            json!({"ticketId": 3, "guestId": 2, "eventId": 1})
        );
        assert_eq!(
            Job::from_parts("generate_ticket", &json!({"ticketId": 7})).unwrap(),
            Job::GenerateTicket { ticket_id: 7 }
        );
        assert_eq!(
            Job::GenerateTicket { ticket_id: 7 }.queue(),
            Queue::TicketGeneration
        );
        assert_eq!(job.queue(), Queue::Email);
        assert!(Job::from_parts("launch_rockets", &json!({})).is_err());
        assert!(Job::from_parts("generate_ticket", &json!({"ticket": 7})).is_err());
        for j in [
            Job::RegistrationConfirmation {
                event_id: 1,
                guest_id: 2,
            },
            Job::TicketResend {
                event_id: 1,
                guest_id: 2,
                ticket_id: 3,
            },
            Job::GuestCancelled {
                event_id: 1,
                guest_id: 2,
            },
            Job::EventCancelled {
                event_id: 1,
                guest_id: 2,
            },
            Job::BuildExport { export_id: 4 },
            Job::ExportReady { export_id: 4 },
            Job::WaitlistOffer {
                event_id: 1,
                entry_id: 2,
                token: "t".into(),
            },
        ] {
            assert_eq!(Job::from_parts(j.type_name(), &j.payload()).unwrap(), j);
        }
    }
}

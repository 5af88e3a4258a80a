//! The email worker: renders each email job of the contract from the database and sends
//! it through the notification service.
//!
//! | job type | subject | body |
//! |---|---|---|
//! | `registration_confirmation` | Registration confirmed / received: {event} | date, place, and "your ticket follows" or "awaiting approval" |
//! | `ticket_ready`, `ticket_resend` | Your ticket for {event} | ticket code, the QR code as `ticket-<code>.png` attachment |
//! | `guest_cancelled` | Your registration for {event} is cancelled | |
//! | `event_cancelled` | {event} is cancelled | |

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use domain::guests::GuestStatus;
use domain::outbox::Job;
use domain::tickets::qr;
use uuid::Uuid;

use crate::clients::auth::AuthClient;
use crate::clients::notification::{Attachment, Email, NotificationClient};
use crate::dispatch::JobError;

/// Where rendered emails go.
#[derive(Clone)]
pub enum Mailer {
    Notification(Box<NotificationClient>),
    /// Local development without `NOTIFICATION_SERVICE_URL`: the email is written to the
    /// log (recipient and subject) instead of being sent.
    Log,
}

pub struct EmailWorker {
    pub pool: Pool,
    pub mailer: Mailer,
    /// Organizer details for the emails' signature, when the auth service is configured.
    pub auth: Option<Arc<AuthClient>>,
}

struct Context {
    event_id: i64,
    first_name: String,
    email: String,
    guest_status: GuestStatus,
    title: String,
    event_date: DateTime<Utc>,
    location: String,
    organizer_id: String,
    ticket_code: Option<String>,
    qr_code_data: Option<String>,
    qr_payload: Option<String>,
}

impl EmailWorker {
    /// Renders and sends the email `job` (`job_id`: the notification service's idempotency key).
    pub async fn handle(&self, job_id: Uuid, job: &Job) -> Result<(), JobError> {
        let guest_id = job.guest_id().ok_or_else(|| {
            JobError::Permanent(format!("{} is not an email job", job.type_name()))
        })?;
        let ctx = self.context(guest_id).await?;
        let email = self.render(job_id, job, &ctx).await?;
        match &self.mailer {
            Mailer::Notification(client) => match client.send_email(&email).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(JobError::Permanent(e.to_string())),
                Err(e) => Err(JobError::Transient(e.to_string())),
            },
            Mailer::Log => {
                tracing::info!(to = %email.to, subject = %email.subject, job_type = job.type_name(),
                    attachments = email.attachments.len(), "email rendered (NOTIFICATION_SERVICE_URL unset: not sent)");
                Ok(())
            }
        }
    }

    async fn context(&self, guest_id: i64) -> Result<Context, JobError> {
        let db = self.pool.get().await?;
        let row = db
            .query_opt(
                "SELECT g.first_name, g.email, g.status, e.title, e.event_date, e.location, e.organizer_id,
                        t.ticket_code, t.qr_code_data, t.qr_payload, e.id AS event_id
                   FROM guests g JOIN events e ON e.id = g.event_id LEFT JOIN tickets t ON t.guest_id = g.id
                  WHERE g.id = $1",
                &[&guest_id],
            )
            .await?
            .ok_or_else(|| JobError::Permanent(format!("guest {guest_id} no longer exists")))?;
        Ok(Context {
            event_id: row.get("event_id"),
            first_name: row.get(0),
            email: row.get(1),
            guest_status: domain::sql::get(&row, "status")
                .map_err(|e| JobError::Permanent(e.to_string()))?,
            title: row.get(3),
            event_date: row.get(4),
            location: row.get(5),
            organizer_id: row.get(6),
            ticket_code: row.get(7),
            qr_code_data: row.get(8),
            qr_payload: row.get(9),
        })
    }

    async fn organizer_line(&self, organizer_id: &str) -> String {
        let Some(auth) = &self.auth else {
            return String::new();
        };
        match auth.get_user(organizer_id).await {
            Ok(Some(u)) => {
                let name = u
                    .organization_name
                    .clone()
                    .unwrap_or_else(|| format!("{} {}", u.first_name, u.last_name));
                format!("\nOrganized by {name} ({}).", u.email)
            }
            Ok(None) => String::new(),
            Err(e) => {
                // The organizer's name is a nicety: never hold an email back for it.
                tracing::warn!(error = %e, "organizer details unavailable");
                String::new()
            }
        }
    }

    async fn render(&self, job_id: Uuid, job: &Job, c: &Context) -> Result<Email, JobError> {
        let when = c.event_date.format("%A %d %B %Y, %H:%M UTC");
        let hello = format!("Hello {},", c.first_name);
        let footer = self.organizer_line(&c.organizer_id).await;
        let mut attachments = Vec::new();
        let (subject, body) = match job {
            Job::RegistrationConfirmation { .. } if c.guest_status == GuestStatus::Pending => (
                format!("Registration received: {}", c.title),
                format!("{hello}\n\nWe received your registration for {} ({when}, {}). The organizer will review it; \
                         you will get your ticket once it is approved.", c.title, c.location),
            ),
            Job::RegistrationConfirmation { .. } => (
                format!("Registration confirmed: {}", c.title),
                format!("{hello}\n\nYou are registered for {} ({when}, {}). Your ticket follows in a separate email.", c.title, c.location),
            ),
            Job::TicketReady { .. } | Job::TicketResend { .. } => {
                let code = c.ticket_code.as_deref().ok_or_else(|| JobError::Permanent("the guest has no ticket".into()))?;
                let png = match (&c.qr_code_data, &c.qr_payload) {
                    (Some(b64), _) => base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| JobError::Permanent(format!("stored QR code: {e}")))?,
                    (None, Some(payload)) => qr::png(payload).map_err(|e| JobError::Permanent(format!("QR: {e}")))?,
                    (None, None) => return Err(JobError::Permanent("the ticket has no payload".into())),
                };
                attachments.push(Attachment::new(format!("ticket-{code}.png"), "image/png", &png));
                attachments.push(Attachment::new(
                    "event.ics",
                    "text/calendar; charset=utf-8; method=PUBLISH",
                    event_ics(c, code).as_bytes(),
                ));
                (
                    format!("Your ticket for {}", c.title),
                    format!("{hello}\n\nHere is your ticket for {} ({when}, {}).\nTicket code: {code}\n\
                             Show the attached QR code at the entrance.", c.title, c.location),
                )
            }
            Job::GuestCancelled { .. } => (
                format!("Your registration for {} is cancelled", c.title),
                format!("{hello}\n\nYour registration for {} ({when}) has been cancelled and your ticket is no longer valid.", c.title),
            ),
            Job::EventCancelled { .. } => (
                format!("{} is cancelled", c.title),
                format!("{hello}\n\nWe are sorry: {} ({when}, {}) has been cancelled. Your ticket is no longer valid.", c.title, c.location),
            ),
            Job::GenerateTicket { .. } | Job::DeliverWebhook { .. } => {
                return Err(JobError::Permanent(format!(
                    "{} is not an email job",
                    job.type_name()
                )))
            }
        };
        Ok(Email {
            to: c.email.clone(),
            subject,
            text: format!("{body}{footer}\n"),
            html: None,
            attachments,
            idempotency_key: job_id.to_string(),
        })
    }
}

/// The event as an RFC 5545 calendar (`event.ics`, attached to ticket emails): one VEVENT whose
/// UID is stable per event, so a calendar that imports it twice updates one entry.
fn event_ics(c: &Context, ticket_code: &str) -> String {
    use icalendar::{Component, EventLike};
    let event = icalendar::Event::new()
        .uid(&format!("event-{}@event-planner-core", c.event_id))
        .timestamp(chrono::Utc::now())
        .starts(c.event_date)
        .summary(&c.title)
        .location(&c.location)
        .description(&format!(
            "Ticket {ticket_code}: show its QR code at the entrance."
        ))
        .done();
    let mut calendar = icalendar::Calendar::new();
    calendar.push(event);
    calendar.done().to_string()
}

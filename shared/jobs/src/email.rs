//! The email worker: renders each email job of the contract from the database and sends
//! it through the notification service.
//!
//! | job type | subject | body |
//! |---|---|---|
//! | `registration_confirmation` | Registration confirmed / received: {event} | date, place, and "your ticket follows" or "awaiting approval" |
//! | `ticket_ready`, `ticket_resend` | Your ticket for {event} | ticket code, the QR code as `ticket-<code>.png` attachment |
//! | `guest_cancelled` | Your registration for {event} is cancelled | |
//! | `event_cancelled` | {event} is cancelled | |
//! | `waitlist_offer` | A seat is free for you: {event} | the seat held until `offerExpiresAt`, the claim link (`WAITLIST_CLAIM_URL`) or token |
//! | `export_ready` | Your {kind} export of {event} is ready | rows, and where to get the file (no link: links are made per read by `GET /api/exports/{id}`, valid an hour) |
//!
//! `export_ready` goes to the user who asked for the export (its JWT `sub`), whose address
//! the auth service gives (`GET /api/users/{sub}`): our data holds no organizer email.

use std::sync::Arc;

use base64::Engine;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use domain::guests::GuestStatus;
use domain::outbox::Job;
use domain::tickets::qr;
use uuid::Uuid;

use crate::clients::auth::{AuthClient, AuthError};
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
    /// `WAITLIST_CLAIM_URL`: the front end's claim page, with `{token}` where the claim
    /// token goes (e.g. `https://tickets.example.com/claim?token={token}`). Unset: the
    /// email gives the token and the API call.
    pub claim_url: Option<String>,
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
        self.send(email, job.type_name()).await
    }

    /// The `export_ready` email, to the user who asked for the export.
    pub async fn export_ready(&self, job_id: Uuid, export_id: i64) -> Result<(), JobError> {
        let notice = {
            let db = self.pool.get().await?;
            domain::exports::ready_notice(&db, export_id)
                .await
                .map_err(|e| match e.code {
                    domain::ErrorCode::NotFound => {
                        JobError::Permanent(format!("export {export_id} no longer exists"))
                    }
                    _ => JobError::Transient(e.to_string()),
                })?
        };
        let user = &notice.requested_by;
        let to = match (&self.auth, &self.mailer) {
            (Some(auth), _) => match auth.get_user(user).await {
                Ok(Some(u)) => u.email,
                Ok(None) => {
                    return Err(JobError::Permanent(format!(
                        "the auth service does not know user {user:?}, who asked for export {export_id}"
                    )))
                }
                Err(e @ AuthError::Unavailable(_)) => return Err(JobError::Transient(e.to_string())),
                Err(e) => return Err(JobError::Permanent(e.to_string())),
            },
            // Emails are only logged: say whom it was for.
            (None, Mailer::Log) => format!("user:{user}"),
            (None, Mailer::Notification(_)) => {
                return Err(JobError::Permanent(
                    "no address for the user who asked for the export: AUTH_SERVICE_URL is not set".into(),
                ))
            }
        };
        let x = &notice.export;
        let rows = x.rows.unwrap_or(0);
        let email = Email {
            to,
            subject: format!(
                "Your {} export of {} is ready",
                x.kind.as_str(),
                notice.event_title
            ),
            text: format!(
                "Hello,\n\nThe {} export of {} you asked for is ready: {rows} row{}.\n\
                 Get it within {} days from the API: GET /api/exports/{} answers a download link \
                 (valid for an hour; ask again for a new one).\n",
                x.kind.as_str(),
                notice.event_title,
                if rows == 1 { "" } else { "s" },
                domain::exports::RETENTION_DAYS,
                x.id,
            ),
            html: None,
            attachments: Vec::new(),
            idempotency_key: job_id.to_string(),
        };
        self.send(email, "export_ready").await
    }

    /// The `waitlist_offer` email, to the waiting-list entry: a seat is held until the
    /// offer expires, and the claim token (its only copy besides the job's payload).
    pub async fn waitlist_offer(
        &self,
        job_id: Uuid,
        entry_id: i64,
        token: &str,
    ) -> Result<(), JobError> {
        let row = {
            let db = self.pool.get().await?;
            db.query_opt(
                "SELECT w.first_name, w.email, w.status, w.offer_expires_at, e.title, e.event_date, e.location,
                        e.organizer_id, t.name AS ticket_type
                   FROM waitlist_entries w JOIN events e ON e.id = w.event_id
                   LEFT JOIN ticket_types t ON t.id = w.ticket_type_id
                  WHERE w.id = $1",
                &[&entry_id],
            )
            .await?
            .ok_or_else(|| JobError::Permanent(format!("waiting-list entry {entry_id} no longer exists")))?
        };
        let status: String = row.get("status");
        if status != "offered" {
            // Claimed, removed or expired before the email left: nothing to offer any more.
            tracing::info!(
                entry_id,
                status,
                "waitlist_offer not sent: the offer is no longer open"
            );
            return Ok(());
        }
        let expires: DateTime<Utc> = row.get("offer_expires_at");
        let (title, when): (String, DateTime<Utc>) = (row.get("title"), row.get("event_date"));
        let what = match row.get::<_, Option<String>>("ticket_type") {
            Some(t) => format!("a {t} seat"),
            None => "a seat".to_owned(),
        };
        let how = match &self.claim_url {
            Some(url) => format!("Claim it here: {}", url.replace("{token}", token)),
            None => format!("Claim it with this code: {token}"),
        };
        let footer = self.organizer_line(row.get("organizer_id")).await;
        let email = Email {
            to: row.get("email"),
            subject: format!("A seat is free for you: {title}"),
            text: format!(
                "Hello {},\n\nGood news: {what} for {title} ({}, {}) is held for you until {}.\n{how}\n\
                 After that time the seat goes to the next person on the waiting list.{footer}\n",
                row.get::<_, String>("first_name"),
                when.format("%A %d %B %Y, %H:%M UTC"),
                row.get::<_, String>("location"),
                expires.format("%A %d %B %Y, %H:%M UTC"),
            ),
            html: None,
            attachments: Vec::new(),
            idempotency_key: job_id.to_string(),
        };
        self.send(email, "waitlist_offer").await
    }

    async fn send(&self, email: Email, job_type: &str) -> Result<(), JobError> {
        match &self.mailer {
            Mailer::Notification(client) => match client.send_email(&email).await {
                Ok(_) => Ok(()),
                Err(e) if e.is_permanent() => Err(JobError::Permanent(e.to_string())),
                Err(e) => Err(JobError::Transient(e.to_string())),
            },
            Mailer::Log => {
                tracing::info!(to = %email.to, subject = %email.subject, job_type,
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
            Job::GenerateTicket { .. }
            | Job::DeliverWebhook { .. }
            | Job::BuildExport { .. }
            | Job::ExportReady { .. }
            | Job::WaitlistOffer { .. } => {
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

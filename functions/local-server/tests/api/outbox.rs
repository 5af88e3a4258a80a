//! The outbox relay and the in-process queue: jobs written with a registration reach the
//! worker code, at least once, even when the relay dies between commit and dispatch or
//! the queue refuses them for a while; a job delivered twice is acted on once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::outbox::{self, Message as Job, RelayConfig};
use domain::outbox::{Queue, QueueBackend};
use jobs::dispatch::{self, JobError, JobHandler, Outcome};
use jobs::queue::InProcessQueue;
use serde_json::json;

use crate::helpers::*;

/// A worker that records what it was given (the jobs' real handlers have their own tests).
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Job>>,
    fail_first: Mutex<u32>,
}

#[async_trait]
impl JobHandler for Recorder {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        {
            let mut f = self.fail_first.lock().unwrap();
            if *f > 0 {
                *f -= 1;
                return Err(JobError::Transient("dependency down".into()));
            }
        }
        self.seen.lock().unwrap().push(job.clone());
        Ok(())
    }
}

impl Recorder {
    fn types(&self) -> Vec<String> {
        let mut t: Vec<String> = self
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|j| j.job_type.clone())
            .collect();
        t.sort();
        t
    }
}

/// A queue that refuses everything while `down` is set.
struct Flaky {
    inner: Arc<InProcessQueue>,
    down: Mutex<bool>,
}

#[async_trait]
impl QueueBackend for Flaky {
    async fn send(&self, queue: Queue, job: &Job) -> anyhow::Result<()> {
        if *self.down.lock().unwrap() {
            anyhow::bail!("queue unreachable");
        }
        self.inner.send(queue, job).await
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..100 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn register_one(app: &TestApp) {
    let token = app.organizer("alice");
    let e = app.published_event(&token, json!({})).await;
    let r = app
        .register(
            &token,
            e["id"].as_i64().unwrap(),
            guest_body("j@example.com", &e["ticketTypes"][0]["id"]),
        )
        .await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED);
}

#[tokio::test]
async fn registration_jobs_reach_the_workers() {
    let app = TestApp::spawn().await;
    register_one(&app).await;
    let recorder = Arc::new(Recorder::default());
    let queue = InProcessQueue::start(app.state.db.clone(), recorder.clone(), 3);
    let report = outbox::drain(&app.state.db, queue.as_ref(), &RelayConfig::default())
        .await
        .unwrap();
    assert_eq!(report.sent, 2);
    wait_for("both jobs", || recorder.types().len() == 2).await;
    assert_eq!(
        recorder.types(),
        ["generate_ticket", "registration_confirmation"]
    );
    assert_eq!(
        app.count("SELECT count(*) FROM job_outbox WHERE dispatched_at IS NULL")
            .await,
        0
    );
    // The worker records the outcome after the handler ran: wait for its commit.
    assert_eq!(
        app.count_reaches(
            "SELECT count(*) FROM processed_jobs WHERE outcome = 'done'",
            2
        )
        .await,
        2
    );
    // Nothing is sent twice by later rounds.
    assert_eq!(
        outbox::drain(&app.state.db, queue.as_ref(), &RelayConfig::default())
            .await
            .unwrap()
            .sent,
        0
    );
}

/// A held queue (the local server's `LOCAL_HOLD_QUEUES`, used by the benchmark harness)
/// takes its jobs from the relay but runs none of them before it is released; the other
/// queues run as usual, and the held jobs all run once released.
#[tokio::test]
async fn a_held_queue_runs_its_jobs_only_once_released() {
    let app = TestApp::spawn().await;
    register_one(&app).await;
    let recorder = Arc::new(Recorder::default());
    let (release, released) = tokio::sync::watch::channel(false);
    let queue = InProcessQueue::start_holding(
        app.state.db.clone(),
        recorder.clone(),
        3,
        &[Queue::Email],
        released,
    );
    let report = outbox::drain(&app.state.db, queue.as_ref(), &RelayConfig::default())
        .await
        .unwrap();
    assert_eq!(report.sent, 2);
    wait_for("the ticket job", || recorder.types() == ["generate_ticket"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        recorder.types(),
        ["generate_ticket"],
        "the email queue is held"
    );
    release.send(true).unwrap();
    wait_for("the held email job", || recorder.types().len() == 2).await;
    assert_eq!(
        recorder.types(),
        ["generate_ticket", "registration_confirmation"]
    );
}

#[tokio::test]
async fn a_relay_that_dies_after_leasing_loses_nothing() {
    let app = TestApp::spawn().await;
    register_one(&app).await;
    // A relay leases the jobs, then dies before sending them.
    let config = RelayConfig {
        lease: Duration::from_millis(300),
        ..RelayConfig::default()
    };
    assert_eq!(
        outbox::lease(&app.state.db, &config).await.unwrap().len(),
        2
    );
    // Meanwhile another relay sees nothing: the lease hides them.
    let recorder = Arc::new(Recorder::default());
    let queue = InProcessQueue::start(app.state.db.clone(), recorder.clone(), 3);
    assert_eq!(
        outbox::drain(&app.state.db, queue.as_ref(), &config)
            .await
            .unwrap()
            .sent,
        0
    );
    // Once the lease runs out, the jobs are delivered.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        outbox::drain(&app.state.db, queue.as_ref(), &config)
            .await
            .unwrap()
            .sent,
        2
    );
    wait_for("both jobs", || recorder.types().len() == 2).await;
    let attempts = app
        .count("SELECT min(attempts)::bigint FROM job_outbox")
        .await;
    assert_eq!(attempts, 2, "leased twice");
}

#[tokio::test]
async fn jobs_wait_in_the_outbox_while_the_queue_is_down() {
    let app = TestApp::spawn().await;
    register_one(&app).await;
    let recorder = Arc::new(Recorder::default());
    let flaky = Flaky {
        inner: InProcessQueue::start(app.state.db.clone(), recorder.clone(), 3),
        down: Mutex::new(true),
    };
    let config = RelayConfig {
        retry_base: Duration::from_millis(100),
        ..RelayConfig::default()
    };
    let r = outbox::relay_once(&app.state.db, &flaky, &config)
        .await
        .unwrap();
    assert_eq!((r.sent, r.failed), (0, 2));
    assert_eq!(app.count("SELECT count(*) FROM job_outbox WHERE dispatched_at IS NULL AND last_error IS NOT NULL").await, 2);
    *flaky.down.lock().unwrap() = false;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        outbox::drain(&app.state.db, &flaky, &config)
            .await
            .unwrap()
            .sent,
        2
    );
    wait_for("both jobs", || recorder.types().len() == 2).await;
}

#[tokio::test]
async fn a_job_delivered_twice_is_done_once_and_transient_failures_are_retried() {
    let app = TestApp::spawn().await;
    let recorder = Recorder::default();
    let job = Job {
        job_id: uuid::Uuid::new_v4(),
        job_type: "registration_confirmation".into(),
        payload: json!({"guestId": 1}),
        created_at: chrono::Utc::now(),
    };
    *recorder.fail_first.lock().unwrap() = 1;
    assert!(
        dispatch::process(&app.state.db, &recorder, &job, "delivery-1")
            .await
            .is_err(),
        "transient failure asks for a retry"
    );
    assert_eq!(
        dispatch::process(&app.state.db, &recorder, &job, "delivery-1")
            .await
            .unwrap(),
        Outcome::Done
    );
    assert_eq!(
        dispatch::process(&app.state.db, &recorder, &job, "delivery-1")
            .await
            .unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(recorder.seen.lock().unwrap().len(), 1);

    // The in-process queue retries transient failures by itself.
    let recorder = Arc::new(Recorder::default());
    *recorder.fail_first.lock().unwrap() = 2;
    let queue = InProcessQueue::start(app.state.db.clone(), recorder.clone(), 5);
    let job2 = Job {
        job_id: uuid::Uuid::new_v4(),
        ..job.clone()
    };
    queue.send(Queue::Email, &job2).await.unwrap();
    wait_for("the retried job", || recorder.types().len() == 1).await;
}

#[tokio::test]
async fn permanent_failures_are_recorded_and_not_retried() {
    struct Refuses;
    #[async_trait]
    impl JobHandler for Refuses {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            Err(JobError::Permanent("no such guest".into()))
        }
    }
    let app = TestApp::spawn().await;
    let job = Job {
        job_id: uuid::Uuid::new_v4(),
        job_type: "ticket_ready".into(),
        payload: json!({}),
        created_at: chrono::Utc::now(),
    };
    assert_eq!(
        dispatch::process(&app.state.db, &Refuses, &job, "delivery-1")
            .await
            .unwrap(),
        Outcome::FailedPermanently
    );
    assert_eq!(
        dispatch::process(&app.state.db, &Refuses, &job, "delivery-1")
            .await
            .unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(
        app.count("SELECT count(*) FROM processed_jobs WHERE outcome = 'failed_permanently'")
            .await,
        1
    );
}

/// Two deliveries of one job running at the same moment: the handler runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_one_job_act_once() {
    struct Slow(std::sync::atomic::AtomicUsize);
    #[async_trait]
    impl JobHandler for Slow {
        async fn handle(&self, _: &Job) -> Result<(), JobError> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(())
        }
    }
    let app = TestApp::spawn().await;
    let handler = Arc::new(Slow(Default::default()));
    let job = Job {
        job_id: uuid::Uuid::new_v4(),
        job_type: "ticket_resend".into(),
        payload: json!({}),
        created_at: chrono::Utc::now(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let (pool, handler, job) = (app.state.db.clone(), handler.clone(), job.clone());
        // Eight different deliveries (the relay sent the job more than once).
        let owner = format!("delivery-{i}");
        tasks.spawn(async move { dispatch::process(&pool, handler.as_ref(), &job, &owner).await });
    }
    let mut outcomes = Vec::new();
    while let Some(r) = tasks.join_next().await {
        outcomes.push(r.unwrap());
    }
    assert_eq!(
        handler.0.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Ok(Outcome::Done)))
            .count(),
        1
    );
    // The others were told to retry later (or saw it done); a later delivery is a duplicate.
    assert!(outcomes.iter().all(|o| matches!(
        o,
        Ok(Outcome::Done) | Ok(Outcome::Duplicate) | Err(JobError::Busy(_))
    )));
    assert_eq!(
        dispatch::process(&app.state.db, handler.as_ref(), &job, "delivery-9")
            .await
            .unwrap(),
        Outcome::Duplicate
    );
}

/// Issue 14, F1: an attempt that failed while the database was unreachable could not
/// release its claim. Its own retry (same delivery) takes the claim back; another delivery
/// is told the job is busy, which is not a failure of the job.
#[tokio::test]
async fn a_claim_left_behind_is_taken_back_by_its_own_retry_and_busy_is_not_a_failure() {
    let app = TestApp::spawn().await;
    let db = app.sql().await;
    let job = |t: &str| Job {
        job_id: uuid::Uuid::new_v4(),
        job_type: t.into(),
        payload: json!({"guestId": 1}),
        created_at: chrono::Utc::now(),
    };
    let stale = |job: &Job, owner: &str, secs: f64| {
        let (id, owner) = (job.job_id, owner.to_owned());
        let db = &db;
        async move {
            db.execute(
                "INSERT INTO processed_jobs (job_id, job_type, outcome, claimed_until, claimed_by)
                 VALUES ($1, 'registration_confirmation', 'in_progress', now() + make_interval(secs => $2), $3)",
                &[&id, &secs, &owner],
            )
            .await
            .unwrap();
        }
    };
    let recorder = Recorder::default();
    let mine = job("registration_confirmation");
    stale(&mine, "message-1", 100.0).await;
    assert_eq!(
        dispatch::process(&app.state.db, &recorder, &mine, "message-1")
            .await
            .unwrap(),
        Outcome::Done,
        "the same delivery takes its own claim back"
    );
    let theirs = job("registration_confirmation");
    stale(&theirs, "message-1", 100.0).await;
    match dispatch::process(&app.state.db, &recorder, &theirs, "message-2").await {
        Err(JobError::Busy(held)) => assert!(held > Duration::from_secs(90), "{held:?}"),
        other => panic!("another delivery must wait for the claim: {other:?}"),
    }

    // The in-process queue, with a single attempt allowed: a claim held by another attempt
    // for a moment delays the job but does not fail it.
    let recorder = Arc::new(Recorder::default());
    let queue = InProcessQueue::start(app.state.db.clone(), recorder.clone(), 1);
    let held = job("ticket_ready");
    stale(&held, "somebody-else", 1.0).await;
    queue.send(Queue::Email, &held).await.unwrap();
    wait_for("the delayed job", || recorder.types().len() == 1).await;
    let done = format!(
        "SELECT count(*) FROM processed_jobs WHERE job_id = '{}' AND outcome = 'done'",
        held.job_id
    );
    assert_eq!(app.count_reaches(&done, 1).await, 1, "recorded done");
}

/// A job that hangs (a notification service that does not answer) does not hold up the
/// other jobs of its queue in the local server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_job_does_not_stall_the_others() {
    struct Hangs(Mutex<Vec<String>>);
    #[async_trait]
    impl JobHandler for Hangs {
        async fn handle(&self, job: &Job) -> Result<(), JobError> {
            if job.job_type == "ticket_ready" {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            self.0.lock().unwrap().push(job.job_type.clone());
            Ok(())
        }
    }
    let app = TestApp::spawn().await;
    let handler = Arc::new(Hangs(Mutex::new(Vec::new())));
    let queue = InProcessQueue::start(app.state.db.clone(), handler.clone(), 3);
    for t in [
        "ticket_ready",
        "registration_confirmation",
        "guest_cancelled",
    ] {
        let job = Job {
            job_id: uuid::Uuid::new_v4(),
            job_type: t.into(),
            payload: json!({"guestId": 1}),
            created_at: chrono::Utc::now(),
        };
        queue.send(Queue::Email, &job).await.unwrap();
    }
    wait_for("the two jobs behind the hanging one", || {
        handler.0.lock().unwrap().len() == 2
    })
    .await;
}

//! The `ticket-worker` Lambda function, triggered by the ticket-generation queue (SQS event
//! source with `ReportBatchItemFailures`). It runs the same [`shared::workers::Workers`]
//! as the email worker (they dispatch by job type). The `ticket_ready` email a
//! `generate_ticket` job writes to the outbox is relayed to the email queue at the end of
//! the invocation (`EMAIL_QUEUE_URL`, `TICKET_QUEUE_URL`).
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::sqs_worker::handle_batch;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init("ticket-worker");
    let state = shared::AppState::load().await?;
    let workers = shared::workers::Workers::from_env(&state)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        let response = handle_batch(&state.db, &workers, event.payload).await;
        state.relay_jobs().await;
        Ok::<_, Error>(response)
    }))
    .await
}

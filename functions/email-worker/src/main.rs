//! The `email-worker` Lambda function, triggered by the email queue (SQS event source with
//! `ReportBatchItemFailures`). It runs the same [`shared::workers::Workers`] as the
//! ticket worker (they dispatch by job type); the two stay separate functions because
//! each queue has its own event source, concurrency and alarms.
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use shared::sqs_worker::handle_batch;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init("email-worker");
    let state = shared::AppState::load().await?;
    let workers = shared::workers::Workers::from_env(&state)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        let response = handle_batch(&state.db, &workers, event.payload).await;
        state.relay_jobs().await;
        Ok::<_, Error>(response)
    }))
    .await
}

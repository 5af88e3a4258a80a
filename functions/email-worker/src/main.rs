//! The `email-worker` Lambda function, triggered by the email queue (SQS event source with
//! `ReportBatchItemFailures`). It runs the same [`jobs::workers::Workers`] as the
//! ticket worker (they dispatch by job type); the two stay separate functions because
//! each queue has its own event source, concurrency and alarms.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobs::lambda::run_lambda("email-worker").await
}

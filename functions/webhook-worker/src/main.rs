//! The `webhook-worker` Lambda function, triggered by the webhooks queue (SQS event source
//! with `ReportBatchItemFailures`). It runs the same [`jobs::workers::Workers`] as the other
//! workers; an attempt that fails writes the next one, due later, to the outbox, which the
//! relay (here, before the invocation ends, or the sweep) hands back to this queue when due.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobs::lambda::run_lambda("webhook-worker").await
}

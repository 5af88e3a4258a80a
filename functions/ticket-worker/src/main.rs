//! The `ticket-worker` Lambda function, triggered by the ticket-generation queue (SQS event
//! source with `ReportBatchItemFailures`). It runs the same [`jobs::workers::Workers`]
//! as the email worker; the `ticket_ready` email a `generate_ticket` job writes is
//! relayed to the email queue before the invocation ends.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    jobs::lambda::run_lambda("ticket-worker").await
}

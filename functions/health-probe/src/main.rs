//! The `health-probe` Lambda function (EventBridge schedule, every minute): checks the
//! database, Redis and SQS and prints the result as one CloudWatch EMF line
//! (`shared::ops::probe`); the invocation returns the same document.
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::logging::init("health-probe");
    let probe = &shared::ops::probe::Probe::from_env().await?;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<Value>| async move {
        Ok::<_, Error>(probe.run().await)
    }))
    .await
}

//! The `health-probe` Lambda function (EventBridge schedule, every minute): checks the
//! database, Redis and SQS and prints the result as one CloudWatch EMF line
//! ([`probe`]); the invocation returns the same document.
mod probe;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = platform::config::Env::process();
    platform::logging::init("health-probe", &env);
    let probe = &probe::Probe::from_env(env).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let span = platform::logging::invocation_span(&event.context.request_id);
        Ok::<_, Error>(tracing::Instrument::instrument(probe.run(), span).await)
    }))
    .await
}

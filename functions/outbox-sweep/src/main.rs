//! The `outbox-sweep` Lambda function (EventBridge schedule, every minute): relays the due
//! jobs of the outbox to the SQS queues and publishes the backlog ([`sweep`]).

mod prune;
mod sweep;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::invocation::Invocation;
use serde_json::Value;
use sweep::Sweeper;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = platform::config::Env::process();
    platform::logging::init("outbox-sweep", &env);
    let sweeper = &Sweeper::from_env(env).await?;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let ctx = event.context;
        let invocation = Invocation::new(&ctx.request_id, ctx.deadline, &ctx.env_config.log_stream);
        let span = platform::logging::invocation_span(&ctx.request_id);
        let report = tracing::Instrument::instrument(sweeper.run(&invocation), span).await?;
        Ok::<_, Error>(serde_json::to_value(report)?)
    }))
    .await
}

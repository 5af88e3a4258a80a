//! The `migrate` Lambda function: applies `migrations/` when CloudFormation creates or updates
//! the `Migrations` custom resource, or when invoked directly with `{}`; generates (and on
//! request rotates) the ticket signing key of the `TicketSigningKey` custom resource.
//! It always answers CloudFormation, even on errors ([`cfn`]).

mod cfn;
mod migrate;
mod ticket_key;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use platform::config::Env;
use platform::invocation::Invocation;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let env = &Env::process();
    platform::logging::init("migrate", env);
    // Nothing fallible before the runtime starts: a failed init could not answer CloudFormation.
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        let (payload, ctx) = event.into_parts();
        let invocation = Invocation::new(&ctx.request_id, ctx.deadline, &ctx.env_config.log_stream);
        let span = platform::logging::invocation_span(&ctx.request_id);
        // The whole cause chain in the invocation's error ("connecting to the database at
        // host:port/db: error connecting to server: Connection refused"), not its first line.
        tracing::Instrument::instrument(migrate::handle(env, payload, invocation), span)
            .await
            .map_err(|e| Error::from(format!("{e:#}")))
    }))
    .await
}

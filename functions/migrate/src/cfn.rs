//! CloudFormation custom resources backed by a Lambda function.
//!
//! CloudFormation invokes the function (asynchronously) with a request
//! ([`CustomResourceRequest`]: `RequestType` Create/Update/Delete, `ResponseURL`,
//! `StackId`, `RequestId`, `LogicalResourceId`, `PhysicalResourceId`...) and then waits
//! until a JSON response ([`CustomResourceResponse`]) is `PUT` to the pre-signed S3
//! `ResponseURL`. A request that is never answered leaves the stack waiting until the
//! resource's `ServiceTimeout` (one hour by default), so [`respond`] always answers:
//!
//! - the work runs in its own task, so a panic becomes a `FAILED` response;
//! - it gets the invocation's time minus a margin, so a hung database becomes a `FAILED`
//!   response before Lambda kills the invocation;
//! - the `PUT` is retried; only when no answer could be delivered does the handler return
//!   an error, which makes Lambda retry the asynchronous invocation (every piece of work
//!   done here is safe to repeat).
//!
//! The body is sent with an empty `Content-Type`: the URL is signed without one, and S3
//! refuses a request whose headers differ from the signature (`SignatureDoesNotMatch`).
//! CloudFormation limits the body to 4 KiB, so `Reason` is cut to 1 KiB.

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use platform::invocation::{truncate, Invocation};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestType {
    Create,
    Update,
    Delete,
}

/// The request CloudFormation sends. Everything but `ResponseURL` defaults, so that even
/// a malformed request gets its `FAILED` answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceRequest {
    pub request_type: RequestType,
    #[serde(rename = "ResponseURL")]
    pub response_url: String,
    #[serde(default)]
    pub stack_id: String,
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub resource_type: String,
    #[serde(default)]
    pub logical_resource_id: String,
    /// Absent on Create.
    #[serde(default)]
    pub physical_resource_id: Option<String>,
    #[serde(default)]
    pub resource_properties: Value,
    /// Update only: the properties before the change.
    #[serde(default)]
    pub old_resource_properties: Option<Value>,
}

impl CustomResourceRequest {
    /// Whether `event` is a custom-resource request (rather than a direct invocation).
    pub fn matches(event: &Value) -> bool {
        event.get("RequestType").is_some() && event.get("ResponseURL").is_some()
    }

    /// A string property of the resource (`ResourceProperties.<name>`).
    pub fn property(&self, name: &str) -> Option<&str> {
        self.resource_properties.get(name).and_then(Value::as_str)
    }

    /// Property `name` before an Update (`OldResourceProperties`).
    pub fn old_property(&self, name: &str) -> Option<&str> {
        self.old_resource_properties
            .as_ref()
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Success,
    Failed,
}

/// The response CloudFormation reads from the `ResponseURL`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CustomResourceResponse {
    pub status: Status,
    pub reason: String,
    pub physical_resource_id: String,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    /// Attributes for `!GetAtt Resource.Name`.
    pub data: Map<String, Value>,
}

/// What a successful piece of work reports.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// `None`: keep the request's physical id (or the default one on Create).
    pub physical_resource_id: Option<String>,
    pub reason: String,
    pub data: Map<String, Value>,
}

const MAX_REASON: usize = 1024;
/// Time kept back from the invocation's budget to send the response.
const RESPONSE_MARGIN: Duration = Duration::from_secs(10);
/// Budget of the work when the invocation has no deadline (local runs).
const DEFAULT_BUDGET: Duration = Duration::from_secs(300);

/// Runs `work` for `request` and answers CloudFormation whatever happens (see the
/// [module documentation](self)). `default_physical_id` names the resource when the
/// request carries no physical id (Create). Returns the response that was delivered;
/// `Err` only when no response could be delivered.
pub async fn respond<F>(
    request: &CustomResourceRequest,
    invocation: &Invocation,
    default_physical_id: &str,
    work: F,
) -> anyhow::Result<CustomResourceResponse>
where
    F: Future<Output = anyhow::Result<Outcome>> + Send + 'static,
{
    let budget = invocation.budget(RESPONSE_MARGIN, DEFAULT_BUDGET);
    let task = tokio::spawn(work);
    let abort = task.abort_handle();
    let result = match tokio::time::timeout(budget, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) if join.is_panic() => Err(anyhow::anyhow!("the handler panicked")),
        Ok(Err(join)) => Err(anyhow::anyhow!("the handler was cancelled: {join}")),
        Err(_) => {
            abort.abort();
            Err(anyhow::anyhow!(
                "timed out after {} s (the function's time-out, minus a margin to answer)",
                budget.as_secs()
            ))
        }
    };
    let physical = request
        .physical_resource_id
        .clone()
        .unwrap_or_else(|| default_physical_id.to_owned());
    let response = match result {
        Ok(outcome) => CustomResourceResponse {
            status: Status::Success,
            reason: truncate(&outcome.reason, MAX_REASON),
            physical_resource_id: outcome.physical_resource_id.unwrap_or(physical),
            stack_id: request.stack_id.clone(),
            request_id: request.request_id.clone(),
            logical_resource_id: request.logical_resource_id.clone(),
            data: outcome.data,
        },
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), logical_resource_id = %request.logical_resource_id,
                request_type = ?request.request_type, "custom resource failed");
            let reason = format!(
                "{e:#} (log stream {})",
                if invocation.log_stream.is_empty() {
                    "unknown"
                } else {
                    &invocation.log_stream
                }
            );
            CustomResourceResponse {
                status: Status::Failed,
                reason: truncate(&reason, MAX_REASON),
                physical_resource_id: physical,
                stack_id: request.stack_id.clone(),
                request_id: request.request_id.clone(),
                logical_resource_id: request.logical_resource_id.clone(),
                data: Map::new(),
            }
        }
    };
    send(&request.response_url, &response).await?;
    tracing::info!(status = ?response.status, logical_resource_id = %response.logical_resource_id,
        physical_resource_id = %response.physical_resource_id, "custom resource response sent");
    Ok(response)
}

/// `PUT`s `response` to the pre-signed `url` (empty `Content-Type`), up to 4 attempts.
pub async fn send(url: &str, response: &CustomResourceResponse) -> anyhow::Result<()> {
    let body = serde_json::to_string(response)?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut last_error = String::new();
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * 2u64.pow(attempt - 1))).await;
        }
        let sent = client
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, "")
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(res) if res.status().is_success() => return Ok(()),
            Ok(res) => {
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                last_error = format!("HTTP {status}: {}", truncate(&text, 300));
            }
            Err(e) => last_error = e.to_string(),
        }
        tracing::warn!(attempt = attempt + 1, error = %last_error, "sending the custom resource response failed");
    }
    anyhow::bail!("could not deliver the response to CloudFormation: {last_error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(kind: &str) -> Value {
        json!({
            "RequestType": kind,
            "ServiceToken": "arn:aws:lambda:eu-west-1:123456789012:function:migrate",
            "ResponseURL": "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/x",
            "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/epc/guid",
            "RequestId": "unique-id",
            "ResourceType": "Custom::Migrations",
            "LogicalResourceId": "Migrations",
            "ResourceProperties": {"ServiceToken": "t", "Version": "2"},
        })
    }

    #[test]
    fn requests_parse_and_are_recognised() {
        let create = request("Create");
        assert!(CustomResourceRequest::matches(&create));
        assert!(!CustomResourceRequest::matches(&json!({})));
        let r: CustomResourceRequest = serde_json::from_value(create).unwrap();
        assert_eq!(r.request_type, RequestType::Create);
        assert_eq!(r.physical_resource_id, None);
        assert_eq!(r.property("Version"), Some("2"));
        assert_eq!(r.old_property("Version"), None);

        let mut update = request("Update");
        update["PhysicalResourceId"] = json!("migrations");
        update["OldResourceProperties"] = json!({"Version": "1"});
        let r: CustomResourceRequest = serde_json::from_value(update).unwrap();
        assert_eq!(r.old_property("Version"), Some("1"));
        assert_eq!(r.old_property("Missing"), None);
    }

    #[test]
    fn responses_have_the_shape_cloudformation_reads() {
        let mut data = Map::new();
        data.insert("Applied".into(), json!("1"));
        let response = CustomResourceResponse {
            status: Status::Success,
            reason: "ok".into(),
            physical_resource_id: "p".into(),
            stack_id: "s".into(),
            request_id: "r".into(),
            logical_resource_id: "l".into(),
            data,
        };
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            json!({"Status": "SUCCESS", "Reason": "ok", "PhysicalResourceId": "p", "StackId": "s",
                   "RequestId": "r", "LogicalResourceId": "l", "Data": {"Applied": "1"}})
        );
    }
}

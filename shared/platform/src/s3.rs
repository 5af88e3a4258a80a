//! The exports bucket: S3 requests signed by `rusty-s3` (SigV4, sans-IO: it only builds
//! presigned URLs) and sent with `reqwest`, the HTTP client the workspace already has. No AWS
//! SDK for S3: it would double the build of the functions that need it for five requests.
//!
//! - [`ObjectStore::download_link`]: a presigned GET URL (what the API hands out; no request
//!   is made).
//! - [`ObjectUpload`]: an object written in parts of at least [`PART_SIZE`] bytes (S3's
//!   multipart minimum), so the writer holds one part in memory, never the whole object; an
//!   object smaller than one part is a single PUT.
//!
//! Every request is presigned for [`REQUEST_VALIDITY`] and sent at once. 2xx is success; a
//! 5xx, a 429, a time-out or a connection error is [`S3Error::Transient`] (tried
//! [`ATTEMPTS`] times with a short back-off before it is returned); any other status is
//! [`S3Error::Rejected`] (wrong bucket, missing permission: retrying cannot help).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use crate::config::S3Config;

/// The smallest part of a multipart upload S3 accepts (all but the last).
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// How long the URL of one request is valid (it is sent right away; a part may take a while).
pub const REQUEST_VALIDITY: Duration = Duration::from_secs(15 * 60);
/// Attempts per request.
pub const ATTEMPTS: u32 = 3;
/// Bound of one request, body included (a 5 MiB part).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why an S3 request failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// S3 could not be reached or failed on every attempt: a later retry may succeed.
    #[error("S3 is unavailable: {0}")]
    Transient(String),
    /// S3 refused the request (no such bucket, access denied...): retrying cannot help.
    #[error("S3 refused the request: {0}")]
    Rejected(String),
}

impl S3Error {
    pub fn is_transient(&self) -> bool {
        matches!(self, S3Error::Transient(_))
    }
}

/// The exports bucket. Cheap to clone.
#[derive(Clone)]
pub struct ObjectStore {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
    link_ttl: Duration,
}

impl std::fmt::Debug for ObjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStore")
            .field("bucket", &self.bucket.name())
            .field("base_url", &self.bucket.base_url().as_str())
            .finish_non_exhaustive()
    }
}

impl ObjectStore {
    pub fn new(config: &S3Config) -> anyhow::Result<Self> {
        let (endpoint, style) = match &config.endpoint {
            Some(url) => (url.clone(), UrlStyle::Path),
            None => (
                format!("https://s3.{}.amazonaws.com", config.region),
                UrlStyle::VirtualHost,
            ),
        };
        let endpoint = endpoint
            .parse()
            .map_err(|e| anyhow::anyhow!("S3 endpoint {endpoint:?}: {e}"))?;
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| anyhow::anyhow!("exports bucket {:?}: {e}", config.bucket))?;
        let credentials = match &config.session_token {
            Some(token) => {
                Credentials::new_with_token(&config.access_key_id, &config.secret_access_key, token)
            }
            None => Credentials::new(&config.access_key_id, &config.secret_access_key),
        };
        Ok(Self {
            bucket,
            credentials,
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()?,
            link_ttl: config.link_ttl,
        })
    }

    /// From the environment (`EXPORTS_BUCKET`...: [`crate::config::Env::exports_storage`]);
    /// `None` without a bucket.
    pub fn from_env(env: &crate::config::Env) -> anyhow::Result<Option<Self>> {
        env.exports_storage()?.map(|c| Self::new(&c)).transpose()
    }

    pub fn bucket(&self) -> &str {
        self.bucket.name()
    }

    /// A presigned GET URL of `key` and when it stops working; browsers save the file as
    /// `file_name` (`response-content-disposition`). Makes no request.
    pub fn download_link(&self, key: &str, file_name: &str) -> (String, DateTime<Utc>) {
        let mut action = self.bucket.get_object(Some(&self.credentials), key);
        action.query_mut().insert(
            "response-content-disposition",
            format!("attachment; filename=\"{file_name}\""),
        );
        action
            .query_mut()
            .insert("response-content-type", "text/csv; charset=utf-8");
        let expires_at = Utc::now()
            + chrono::Duration::from_std(self.link_ttl).unwrap_or(chrono::Duration::hours(1));
        (action.sign(self.link_ttl).to_string(), expires_at)
    }

    /// Creates the bucket (local development and tests; in AWS the template does). An existing
    /// bucket of ours is fine.
    pub async fn create_bucket(&self) -> Result<(), S3Error> {
        let url = self
            .bucket
            .create_bucket(&self.credentials)
            .sign(REQUEST_VALIDITY);
        // Outside us-east-1, S3 wants the region named in the body.
        let body = match self.bucket.region() {
            "us-east-1" => Vec::new(),
            region => format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{region}</LocationConstraint></CreateBucketConfiguration>"
            )
            .into_bytes(),
        };
        match self.send(Method::PUT, url, Some(body), None).await {
            Ok(_) => Ok(()),
            Err(S3Error::Rejected(e)) if e.contains("BucketAlreadyOwnedByYou") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), S3Error> {
        let mut action = self.bucket.put_object(Some(&self.credentials), key);
        action.headers_mut().insert("content-type", content_type);
        let url = action.sign(REQUEST_VALIDITY);
        self.send(Method::PUT, url, Some(body), Some(content_type))
            .await
            .map(drop)
    }

    async fn create_multipart(&self, key: &str, content_type: &str) -> Result<String, S3Error> {
        let mut action = self
            .bucket
            .create_multipart_upload(Some(&self.credentials), key);
        action.headers_mut().insert("content-type", content_type);
        let url = action.sign(REQUEST_VALIDITY);
        let (_, body) = self
            .send(Method::POST, url, None, Some(content_type))
            .await?;
        rusty_s3::actions::CreateMultipartUpload::parse_response(&body)
            .map(|r| r.upload_id().to_owned())
            .map_err(|e| S3Error::Transient(format!("CreateMultipartUpload answer: {e}")))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        body: Vec<u8>,
    ) -> Result<String, S3Error> {
        let url = self
            .bucket
            .upload_part(Some(&self.credentials), key, number, upload_id)
            .sign(REQUEST_VALIDITY);
        let (headers, _) = self.send(Method::PUT, url, Some(body), None).await?;
        headers
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| S3Error::Transient(format!("UploadPart {number}: no ETag")))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), S3Error> {
        let action = self.bucket.complete_multipart_upload(
            Some(&self.credentials),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        );
        let url = action.sign(REQUEST_VALIDITY);
        let body = action.body().into_bytes();
        let (_, answer) = self.send(Method::POST, url, Some(body), None).await?;
        // CompleteMultipartUpload can fail after its 200 has been sent: the error is then in
        // the body.
        if answer.contains("<Error>") {
            return Err(S3Error::Transient(format!(
                "CompleteMultipartUpload: {}",
                excerpt(&answer)
            )));
        }
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let url = self
            .bucket
            .abort_multipart_upload(Some(&self.credentials), key, upload_id)
            .sign(REQUEST_VALIDITY);
        self.send(Method::DELETE, url, None, None).await.map(drop)
    }

    /// Sends a presigned request under the retry policy of this module: the answer's headers
    /// and body on 2xx.
    async fn send(
        &self,
        method: Method,
        url: url::Url,
        body: Option<Vec<u8>>,
        content_type: Option<&str>,
    ) -> Result<(reqwest::header::HeaderMap, String), S3Error> {
        // Always a body, if empty: S3 wants a Content-Length on PUT and POST.
        let body = bytes::Bytes::from(body.unwrap_or_default());
        let mut pause = Duration::from_millis(200);
        let mut attempt = 1;
        loop {
            let mut request = self.http.request(method.clone(), url.as_str());
            if let Some(ct) = content_type {
                request = request.header(reqwest::header::CONTENT_TYPE, ct);
            }
            if method != Method::GET && method != Method::DELETE {
                // A clone of `Bytes` shares the buffer: no copy per attempt.
                request = request.body(body.clone());
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    match response.text().await {
                        Ok(text) if status.is_success() => return Ok((headers, text)),
                        Ok(text) if transient(status) => {
                            format!("HTTP {}: {}", status.as_u16(), excerpt(&text))
                        }
                        Ok(text) => {
                            return Err(S3Error::Rejected(format!(
                                "{method} HTTP {}: {}",
                                status.as_u16(),
                                excerpt(&text)
                            )))
                        }
                        Err(e) => format!("reading the answer: {e}"),
                    }
                }
                Err(e) => format!("{e}"),
            };
            if attempt >= ATTEMPTS {
                return Err(S3Error::Transient(format!("{method}: {failure}")));
            }
            tracing::warn!(attempt, %method, error = %failure, "S3 request failed, retrying");
            tokio::time::sleep(pause).await;
            pause *= 2;
            attempt += 1;
        }
    }
}

/// What `GET /api/exports/{id}` hands out.
impl domain::exports::DownloadLinks for ObjectStore {
    fn link(&self, object_key: &str, file_name: &str) -> (String, DateTime<Utc>) {
        self.download_link(object_key, file_name)
    }
}

fn transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// The start of an S3 answer, for errors (S3's XML errors name the code and the resource,
/// never the credentials).
fn excerpt(body: &str) -> String {
    body.chars().take(300).collect()
}

/// An object written part by part: [`ObjectUpload::part`] ships each part as it is
/// produced, [`ObjectUpload::finish`] the rest. The key is the caller's: writing the same key
/// again replaces the object.
pub struct ObjectUpload<'a> {
    store: &'a ObjectStore,
    key: String,
    content_type: &'static str,
    upload_id: Option<String>,
    etags: Vec<String>,
    size: u64,
}

impl<'a> ObjectUpload<'a> {
    pub fn new(store: &'a ObjectStore, key: impl Into<String>, content_type: &'static str) -> Self {
        Self {
            store,
            key: key.into(),
            content_type,
            upload_id: None,
            etags: Vec::new(),
            size: 0,
        }
    }

    /// Bytes shipped so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Ships `bytes` (at least [`PART_SIZE`] of them) as the next part; the multipart upload
    /// is created with the first.
    pub async fn part(&mut self, bytes: Vec<u8>) -> Result<(), S3Error> {
        debug_assert!(bytes.len() >= PART_SIZE);
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let id = self
                    .store
                    .create_multipart(&self.key, self.content_type)
                    .await?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = u16::try_from(self.etags.len() + 1)
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| S3Error::Rejected("more than 10 000 parts".into()))?;
        let len = bytes.len() as u64;
        let etag = self
            .store
            .upload_part(&self.key, &upload_id, number, bytes)
            .await?;
        self.etags.push(etag);
        self.size += len;
        Ok(())
    }

    /// Ships the last bytes and makes the object; its size. An object that never reached
    /// one part is a single PUT.
    pub async fn finish(mut self, rest: Vec<u8>) -> Result<u64, S3Error> {
        let len = rest.len() as u64;
        match self.upload_id.take() {
            None => {
                self.store
                    .put_object(&self.key, rest, self.content_type)
                    .await?
            }
            Some(upload_id) => {
                let done = async {
                    if !rest.is_empty() {
                        let number = (self.etags.len() + 1) as u16;
                        let etag = self
                            .store
                            .upload_part(&self.key, &upload_id, number, rest)
                            .await?;
                        self.etags.push(etag);
                    }
                    self.store
                        .complete_multipart(&self.key, &upload_id, &self.etags)
                        .await
                }
                .await;
                if let Err(e) = done {
                    self.upload_id = Some(upload_id);
                    self.abort().await;
                    return Err(e);
                }
            }
        }
        Ok(self.size + len)
    }

    /// Gives the upload up: the parts shipped are deleted (best effort; the bucket's
    /// lifecycle rule removes what an abort could not).
    pub async fn abort(self) {
        if let Some(upload_id) = &self.upload_id {
            if let Err(e) = self.store.abort_multipart(&self.key, upload_id).await {
                tracing::warn!(key = %self.key, error = %e, "could not abort a multipart upload");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(endpoint: Option<&str>, token: Option<&str>) -> ObjectStore {
        ObjectStore::new(&S3Config {
            bucket: "exports-bucket".into(),
            region: "eu-west-1".into(),
            endpoint: endpoint.map(Into::into),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: token.map(Into::into),
            link_ttl: Duration::from_secs(3600),
        })
        .unwrap()
    }

    #[test]
    fn download_links_are_presigned_for_the_link_lifetime() {
        let (url, until) =
            store(None, Some("session")).download_link("exports/1/2.csv", "event-1-guests-2.csv");
        assert!(
            url.starts_with("https://exports-bucket.s3.eu-west-1.amazonaws.com/exports/1/2.csv?"),
            "{url}"
        );
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Expires=3600",
            "X-Amz-Security-Token=session",
            "X-Amz-Signature=",
            "response-content-disposition=attachment",
        ] {
            assert!(url.contains(part), "{part} in {url}");
        }
        let left = until - Utc::now();
        assert!(left <= chrono::Duration::hours(1) && left > chrono::Duration::minutes(59));
        let (url, _) = store(Some("http://127.0.0.1:4566"), None).download_link("k.csv", "k.csv");
        assert!(
            url.starts_with("http://127.0.0.1:4566/exports-bucket/k.csv?"),
            "{url}"
        );
        assert!(!url.contains("Security-Token"));
    }
}

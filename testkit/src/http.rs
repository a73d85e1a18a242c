//! An HTTP caller of a gateway: requests with a token, responses read to
//! their end, server-sent event streams.

use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use serde_json::Value;

use crate::client::Answer;

/// No HTTP exchange in a test may take longer than this: a hung gateway
/// fails the test instead of stalling the run.
const HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// An HTTP caller of a gateway, with a token.
#[derive(Debug, Clone)]
pub struct Http {
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
}

/// An HTTP response, read to its end.
#[derive(Debug, Clone)]
pub struct HttpReply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Bytes,
}

impl HttpReply {
    async fn read(response: reqwest::Response) -> Result<Self> {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Self {
            status,
            headers,
            body,
        })
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The gateway's own error reason (`x-nats-api-gateway-error`).
    pub fn gateway_error(&self) -> Option<String> {
        self.header("x-nats-api-gateway-error")
    }

    /// A raw (not enveloped) reply as a NATS client sees it: the body and
    /// the service's error headers, taken from the `NatsH-` headers.
    pub fn answer(&self) -> Answer {
        Answer {
            raw: self.body.clone(),
            body: self.json(),
            code: self
                .header("NatsH-Nats-Service-Error-Code")
                .and_then(|c| c.parse().ok()),
            error: self.header("NatsH-Nats-Service-Error"),
        }
    }
}

impl Http {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            client: reqwest::Client::builder()
                .timeout(HTTP_TIMEOUT)
                .build()
                .unwrap_or_default(),
        }
    }

    /// The URL of a subject: `{base}/v1/nats/subjects/{subject}`.
    pub fn subject_url(&self, subject: &str) -> String {
        format!("{}/v1/nats/subjects/{subject}", self.base)
    }

    /// A request builder with the bearer token.
    pub fn authorized(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, url)
            .header("Authorization", format!("Bearer {}", self.token))
    }

    /// Sends a built request and reads the whole response.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<HttpReply> {
        HttpReply::read(request.send().await?).await
    }

    /// `POST` a request on a subject, as a gateway caller does.
    pub async fn request(
        &self,
        subject: &str,
        body: impl Into<reqwest::Body>,
    ) -> Result<HttpReply> {
        self.send(
            self.authorized(reqwest::Method::POST, &self.subject_url(subject))
                .body(body),
        )
        .await
    }

    /// `GET` any path of the gateway, without a token.
    pub async fn get_path(&self, path: &str) -> Result<HttpReply> {
        HttpReply::read(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await?,
        )
        .await
    }

    /// Opens an event stream (`GET` on a subject) with the token in the
    /// header; the subscription is in place once this returns.
    pub async fn subscribe(&self, subject: &str) -> Result<EventStream> {
        let response = self
            .authorized(reqwest::Method::GET, &self.subject_url(subject))
            .send()
            .await?;
        EventStream::from_response(response)
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// A server-sent event stream being read.
pub struct EventStream {
    stream: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Bytes>> + Send>>,
    buffer: String,
    pub content_type: Option<String>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// Wraps a response, failing unless it is a 200 event stream.
    pub fn from_response(response: reqwest::Response) -> Result<Self> {
        let status = response.status();
        if !status.is_success() {
            bail!(
                "event stream refused with {status}: {:?}",
                response.headers().get("x-nats-api-gateway-error")
            );
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(Self {
            stream: Box::pin(response.bytes_stream()),
            buffer: String::new(),
            content_type,
        })
    }

    /// The next event (comments skipped), or None when the stream ended.
    pub async fn next_event(&mut self, timeout: Duration) -> Result<Option<SseEvent>> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(event) = self.take_event() {
                return Ok(Some(event));
            }
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => bail!("no event within {timeout:?}"),
                Ok(None) => return Ok(None),
                Ok(Some(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk?)),
            }
        }
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut event = String::from("message");
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    event = value.trim_start().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            // A block of comments only (keep-alives) is not an event.
            if !data.is_empty() {
                return Some(SseEvent {
                    event,
                    data: data.join("\n"),
                });
            }
        }
    }
}

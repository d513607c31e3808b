//! The client of the daemon's API: HTTP/1.1 over its unix socket, one typed call per
//! endpoint of [`crate::api`].
//!
//! Every call opens its own connection (a unix socket connects in microseconds, and long
//! streams — `logs -f`, `stats`, `exec` — need one each anyway). An answer outside 2xx becomes
//! [`ClientError::Api`] with the daemon's [`ErrorBody`] message and the status; a socket
//! nobody listens on becomes [`ClientError::Unreachable`], whose message says how to start
//! the daemon. `logs` and streamed `stats` are decoded line by line as they arrive
//! ([`NdjsonStream`]); `attach` and `exec` switch the connection to [`crate::frame`]s
//! ([`FrameStream`]).

mod error;
mod host;
mod ndjson;
mod stream;
#[cfg(test)]
mod tests;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

pub use error::ClientError;
pub use host::{Host, HostError};
pub use ndjson::{MAX_LINE, NdjsonStream};
pub use stream::{FrameReader, FrameStream, FrameWriter};

use crate::API_PREFIX;
use crate::api::{
    ContainerInspect, ContainerSummary, CreateRequest, CreateResponse, ErrorBody, ExecRequest,
    LogRecord, NetworkCreateRequest, NetworkInspect, ResizeFrame, Stats, Version, WaitResponse,
};
use crate::frame::UPGRADE_PROTOCOL;

/// The largest JSON answer (or error body) read whole: a list of many containers fits.
const MAX_ANSWER: usize = 64 << 20;

/// A client of one daemon.
#[derive(Debug, Clone, Default)]
pub struct Client {
    host: Host,
}

/// What `logs` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogsOptions {
    /// Keep the answer open and send new records until the container has exited for good.
    pub follow: bool,
    /// Only the last N records; all when `None`.
    pub tail: Option<u64>,
    /// Only records at or after this RFC 3339 time.
    pub since: Option<String>,
}

/// Whether a start/stop changed anything (the daemon answers 304 when it did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changed {
    Yes,
    /// Already in the asked-for state.
    AlreadyThere,
}

impl Client {
    pub fn new(host: Host) -> Self {
        Self { host }
    }

    pub fn host(&self) -> &Host {
        &self.host
    }

    /// `GET /v1/version`.
    pub async fn version(&self) -> Result<Version, ClientError> {
        self.json(Method::GET, "/version".into(), None).await
    }

    /// `GET /v1/containers`: running containers, or all with `all`.
    pub async fn list(&self, all: bool) -> Result<Vec<ContainerSummary>, ClientError> {
        self.json(Method::GET, format!("/containers?all={all}"), None)
            .await
    }

    /// `POST /v1/containers`.
    pub async fn create(&self, request: &CreateRequest) -> Result<CreateResponse, ClientError> {
        let body = to_json(request);
        self.json(Method::POST, "/containers".into(), Some(body))
            .await
    }

    /// `GET /v1/containers/{id}`.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInspect, ClientError> {
        self.json(Method::GET, container_path(id, ""), None).await
    }

    /// `POST /v1/containers/{id}/start`.
    pub async fn start(&self, id: &str) -> Result<Changed, ClientError> {
        self.changed(Method::POST, container_path(id, "/start"))
            .await
    }

    /// `POST /v1/containers/{id}/stop`: SIGTERM, then SIGKILL after `timeout_secs` (the
    /// daemon's default when `None`).
    pub async fn stop(&self, id: &str, timeout_secs: Option<u32>) -> Result<Changed, ClientError> {
        let path = container_path(id, "/stop") + &timeout_query(timeout_secs);
        self.changed(Method::POST, path).await
    }

    /// `POST /v1/containers/{id}/restart`.
    pub async fn restart(&self, id: &str, timeout_secs: Option<u32>) -> Result<(), ClientError> {
        let path = container_path(id, "/restart") + &timeout_query(timeout_secs);
        self.changed(Method::POST, path).await.map(drop)
    }

    /// `POST /v1/containers/{id}/kill`: `signal` as a name (`TERM`, `SIGTERM`) or number;
    /// the daemon sends SIGKILL when `None`.
    pub async fn kill(&self, id: &str, signal: Option<&str>) -> Result<(), ClientError> {
        let mut path = container_path(id, "/kill");
        if let Some(signal) = signal {
            path = format!("{path}?signal={}", encode(signal));
        }
        self.changed(Method::POST, path).await.map(drop)
    }

    /// `POST /v1/containers/{id}/resize`: the size of the container's terminal (`-t`).
    pub async fn resize(&self, id: &str, size: ResizeFrame) -> Result<(), ClientError> {
        let path = container_path(id, "/resize") + &format!("?h={}&w={}", size.height, size.width);
        self.changed(Method::POST, path).await.map(drop)
    }

    /// `DELETE /v1/containers/{id}`; with `force`, a running container is killed first.
    pub async fn remove(&self, id: &str, force: bool) -> Result<(), ClientError> {
        let path = container_path(id, "") + &format!("?force={force}");
        self.changed(Method::DELETE, path).await.map(drop)
    }

    /// `GET /v1/networks`.
    pub async fn networks(&self) -> Result<Vec<NetworkInspect>, ClientError> {
        self.json(Method::GET, "/networks".into(), None).await
    }

    /// `POST /v1/networks`.
    pub async fn network_create(
        &self,
        request: &NetworkCreateRequest,
    ) -> Result<NetworkInspect, ClientError> {
        let body = to_json(request);
        self.json(Method::POST, "/networks".into(), Some(body))
            .await
    }

    /// `GET /v1/networks/{name}`.
    pub async fn network_inspect(&self, name: &str) -> Result<NetworkInspect, ClientError> {
        self.json(Method::GET, format!("/networks/{}", encode(name)), None)
            .await
    }

    /// `DELETE /v1/networks/{name}`.
    pub async fn network_remove(&self, name: &str) -> Result<(), ClientError> {
        self.changed(Method::DELETE, format!("/networks/{}", encode(name)))
            .await
            .map(drop)
    }

    /// `POST /v1/containers/{id}/wait`: returns once the container has exited for good.
    pub async fn wait(&self, id: &str) -> Result<WaitResponse, ClientError> {
        self.json(Method::POST, container_path(id, "/wait"), None)
            .await
    }

    /// `GET /v1/containers/{id}/logs`: the records, as they arrive.
    pub async fn logs(
        &self,
        id: &str,
        options: &LogsOptions,
    ) -> Result<NdjsonStream<LogRecord>, ClientError> {
        let mut query = Vec::new();
        if options.follow {
            query.push("follow=true".to_owned());
        }
        if let Some(tail) = options.tail {
            query.push(format!("tail={tail}"));
        }
        if let Some(since) = &options.since {
            query.push(format!("since={}", encode(since)));
        }
        let mut path = container_path(id, "/logs");
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        self.ndjson(path).await
    }

    /// `GET /v1/containers/{id}/stats?stream=false`: one sample.
    pub async fn stats(&self, id: &str) -> Result<Stats, ClientError> {
        let path = container_path(id, "/stats") + "?stream=false";
        self.json(Method::GET, path, None).await
    }

    /// `GET /v1/containers/{id}/stats?stream=true`: a sample a second until the container
    /// stops or the stream is dropped.
    pub async fn stats_stream(&self, id: &str) -> Result<NdjsonStream<Stats>, ClientError> {
        self.ndjson(container_path(id, "/stats") + "?stream=true")
            .await
    }

    /// `POST /v1/containers/{id}/attach`: a stream whose stdin frames reach the container.
    pub async fn attach(&self, id: &str) -> Result<FrameStream, ClientError> {
        self.upgrade(container_path(id, "/attach"), None).await
    }

    /// `POST /v1/containers/{id}/exec`: runs `request` in the container; its output and
    /// finally its exit code come back as frames.
    pub async fn exec(&self, id: &str, request: &ExecRequest) -> Result<FrameStream, ClientError> {
        self.upgrade(container_path(id, "/exec"), Some(to_json(request)))
            .await
    }

    /// Sends one request on a new connection; the connection's task also serves upgrades.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        upgrade: bool,
    ) -> Result<Response<Incoming>, ClientError> {
        let socket = UnixStream::connect(self.host.socket())
            .await
            .map_err(|err| ClientError::connect(&self.host, err))?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(socket))
            .await
            .map_err(|err| self.http_error(err))?;
        tokio::spawn(async move {
            // The connection's end is reported through the request's answer or body.
            let _ = connection.with_upgrades().await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{API_PREFIX}{path}"))
            .header(HOST, "berth");
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        if upgrade {
            request = request
                .header(CONNECTION, "Upgrade")
                .header(UPGRADE, HeaderValue::from_static(UPGRADE_PROTOCOL));
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .expect("every part of the request is valid: the path is percent-encoded");
        sender
            .send_request(request)
            .await
            .map_err(|err| self.http_error(err))
    }

    fn http_error(&self, source: hyper::Error) -> ClientError {
        ClientError::Http {
            host: self.host.to_string(),
            source,
        }
    }

    /// A request whose answer is a JSON document.
    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let response = self.send(method, &path, body, false).await?;
        let response = success(response).await?;
        let bytes = read_body(response.into_body(), &path).await?;
        serde_json::from_slice(&bytes).map_err(|err| ClientError::InvalidAnswer {
            request: path,
            reason: err.to_string(),
        })
    }

    /// A request answered with no body: 204 when it did something, 304 when nothing was to
    /// be done.
    async fn changed(&self, method: Method, path: String) -> Result<Changed, ClientError> {
        let response = self.send(method, &path, None, false).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(Changed::AlreadyThere);
        }
        success(response).await?;
        Ok(Changed::Yes)
    }

    async fn ndjson<T: DeserializeOwned>(
        &self,
        path: String,
    ) -> Result<NdjsonStream<T>, ClientError> {
        let response = self.send(Method::GET, &path, None, false).await?;
        let response = success(response).await?;
        Ok(NdjsonStream::new(response.into_body(), path))
    }

    async fn upgrade(
        &self,
        path: String,
        body: Option<Vec<u8>>,
    ) -> Result<FrameStream, ClientError> {
        let response = self.send(Method::POST, &path, body, true).await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let response = success(response).await?;
            return Err(ClientError::InvalidAnswer {
                request: path,
                reason: format!(
                    "expected 101 Switching Protocols, got {}",
                    response.status()
                ),
            });
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|err| self.http_error(err))?;
        Ok(FrameStream::new(upgraded))
    }
}

/// The response if its status is 2xx; otherwise the daemon's error.
async fn success(response: Response<Incoming>) -> Result<Response<Incoming>, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let bytes = read_body(response.into_body(), "an error")
        .await
        .unwrap_or_default();
    let message = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => body.message,
        Err(_) if bytes.is_empty() => format!("the daemon answered {status}"),
        Err(_) => format!(
            "the daemon answered {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        ),
    };
    Err(ClientError::Api {
        status: status.as_u16(),
        message,
    })
}

async fn read_body(body: Incoming, request: &str) -> Result<Bytes, ClientError> {
    Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|err| ClientError::InvalidAnswer {
            request: request.to_owned(),
            reason: format!("cannot read the answer: {err}"),
        })
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(value).expect("the API's request types always serialize")
}

/// `/containers/{id}{rest}` with the id percent-encoded.
fn container_path(id: &str, rest: &str) -> String {
    format!("/containers/{}{rest}", encode(id))
}

fn timeout_query(timeout_secs: Option<u32>) -> String {
    timeout_secs.map_or_else(String::new, |t| format!("?t={t}"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

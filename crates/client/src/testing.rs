//! A scripted daemon for tests: an HTTP server on a unix socket that hands each request,
//! upgrades included, to a closure. The client's own tests and the CLI's use it; the real
//! daemon is tested against real containers elsewhere.

use std::convert::Infallible;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

/// The body of a scripted answer.
pub type Body = BoxBody<Bytes, Infallible>;

/// Serves every connection on `socket` with `handler` until the runtime ends.
///
/// # Panics
/// When `socket` cannot be bound, or accepting fails.
pub fn serve<F, Fut>(socket: &Path, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let listener = UnixListener::bind(socket).expect("bind the scripted daemon's socket");
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("accept");
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = handler(request);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
}

/// An answer with `status` and `body`.
pub fn answer(status: StatusCode, body: &str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())).boxed());
    *response.status_mut() = status;
    response
}

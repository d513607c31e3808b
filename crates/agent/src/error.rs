//! The daemon's errors, each mapped to one HTTP status (see `docs/api/openapi.yaml`).

use axum::http::StatusCode;

/// Why an API request failed. The text is a sentence for a person; the variant picks the
/// HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// 400: a field of the request is invalid.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such container or image.
    #[error("{0}")]
    NotFound(String),
    /// 409: the name is in use, or the container is in the wrong state.
    #[error("{0}")]
    Conflict(String),
    /// 413: the request body is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 304: the container is already in the asked-for state (start/stop).
    #[error("container is already {0}")]
    NotModified(&'static str),
    /// 500: anything else (I/O, the supervisor did not answer, …).
    #[error("{0}")]
    Internal(String),
}

impl AgentError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotModified(_) => StatusCode::NOT_MODIFIED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;

//! A strict JSON body extractor: unknown fields are rejected (the wire types
//! say `deny_unknown_fields`) and every error names the field's JSON path.
//! The body size is capped by the router's `DefaultBodyLimit`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// The router reads bodies up to this size, so a body a little over
/// `BODY_BYTES_MAX` is read whole and answered 413; a client that stops
/// reading early would otherwise see a reset connection instead of the
/// answer. Bigger bodies are cut off (bounded memory per request).
pub const BODY_BYTES_READ_MAX: usize = 8 * BODY_BYTES_MAX;

#[derive(Debug)]
pub struct StrictJson<T> {
    pub value: T,
    /// The raw body, for idempotency hashes.
    pub bytes: Bytes,
}

impl<S, T> FromRequest<S> for StrictJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::new(status, "bad-request", rejection.body_text())
                }
            })?;
        if bytes.len() > BODY_BYTES_MAX {
            return Err(too_large());
        }
        let value = parse(&bytes)?;
        Ok(StrictJson { value, bytes })
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!("request body over {BODY_BYTES_MAX} bytes"),
    )
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad-json",
                format!("malformed JSON: {inner}"),
            )
        } else {
            ApiError::invalid(
                if path == "." { String::new() } else { path },
                inner.to_string(),
            )
        }
    })?;
    deserializer.end().map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-json",
            format!("malformed JSON: {error}"),
        )
    })?;
    Ok(value)
}

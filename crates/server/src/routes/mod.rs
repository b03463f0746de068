//! HTTP handlers: thin. Each one authenticates, checks who may do what,
//! validates with the core, calls the store, and converts rows to wire
//! types. Anything a caller may not see answers 404, exactly as what does
//! not exist (`ApiError::not_found`), and only then is the request's body
//! or query looked at (`json::JsonBody`, `query`).

pub mod bills;
pub mod earnings;
pub mod jobs;
pub mod ledger;
pub mod market;
pub mod principals;
pub mod quote;
pub mod sites;
pub mod system;
pub mod topology;
pub mod wallet;

use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// Longest id the server makes or accepts in a path.
pub const ID_BYTES_MAX: usize = 128;
/// The schema's pattern for ids in paths and cursors: what `check_path_id`
/// accepts.
pub const PATH_ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,128}$";

/// Ids in paths are ours: bounded and plain. Anything else cannot exist.
pub fn check_path_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty()
        || id.len() > ID_BYTES_MAX
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::not_found("resource"));
    }
    Ok(())
}

/// Parses a query string (axum's `RawQuery`), strictly: unknown parameters
/// are rejected, and a bad value is a 400 naming its parameter. Handlers
/// call it after their access checks.
pub fn query<T: DeserializeOwned>(raw: Option<&str>) -> ApiResult<T> {
    let parse = form_urlencoded::parse(raw.unwrap_or_default().as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(parse);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let mut error = ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad-query",
            format!("query string: {}", error.into_inner()),
        );
        if path != "." {
            error.field = Some(path);
        }
        error
    })
}

/// The page size a list answers: `limit` (1 to `max`, else 400), or
/// `default`.
pub fn page_limit(limit: Option<u32>, default: u32, max: u32) -> ApiResult<u32> {
    match limit {
        None => Ok(default),
        Some(limit) if (1..=max).contains(&limit) => Ok(limit),
        Some(_) => Err(bad_query("limit", format!("must be 1 to {max}"))),
    }
}

/// A cursor must be an id (`PATH_ID_PATTERN`).
pub fn check_cursor(field: &str, after: Option<&str>) -> ApiResult<()> {
    match after {
        Some(after) if check_path_id(after).is_err() => {
            Err(bad_query(field, format!("must match {PATH_ID_PATTERN}")))
        }
        _ => Ok(()),
    }
}

pub fn bad_query(field: &str, message: impl Into<String>) -> ApiError {
    let mut error = ApiError::new(StatusCode::BAD_REQUEST, "bad-query", message);
    error.field = Some(field.to_owned());
    error
}

/// The `{id}` of a path, for the document: `check_path_id`'s rule.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// An id the server gave out, e.g. `job_0193…`.
    #[param(pattern = "^[A-Za-z0-9_-]{1,128}$", min_length = 1, max_length = 128)]
    pub id: String,
}

//! HTTP handlers: thin. Each one authenticates, checks who may do what,
//! validates with the core, calls the store, and converts rows to wire
//! types. Anything a caller may not see answers 404.

pub mod jobs;
pub mod principals;
pub mod sites;
pub mod system;
pub mod topology;

use crate::error::ApiError;

/// Ids in paths are ours: bounded and plain. Anything else cannot exist.
pub fn check_path_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty()
        || id.len() > 128
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(ApiError::not_found("resource"));
    }
    Ok(())
}

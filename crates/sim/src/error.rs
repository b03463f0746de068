//! The simulator's one error type. Every error names where it is: the
//! scenario file and the field (`site[2].pool[0].units`), or the trace file
//! and its line number, so a bad input is fixed without guessing.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// A scenario field is missing, unknown or out of range.
    #[error("{file}: {field}: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
    /// A line of a workload file does not read.
    #[error("{file}:{line}: {message}")]
    Line {
        file: String,
        line: usize,
        message: String,
    },
    /// A file could not be read, or is too large.
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

impl SimError {
    pub fn field(file: &str, field: impl Into<String>, message: impl fmt::Display) -> SimError {
        SimError::Field {
            file: file.to_owned(),
            field: field.into(),
            message: message.to_string(),
        }
    }

    pub fn line(file: &str, line: usize, message: impl fmt::Display) -> SimError {
        SimError::Line {
            file: file.to_owned(),
            line,
            message: message.to_string(),
        }
    }

    pub fn file(file: &str, message: impl fmt::Display) -> SimError {
        SimError::File {
            file: file.to_owned(),
            message: message.to_string(),
        }
    }
}

/// Reads a text file of at most `bytes_max` bytes.
pub fn read_text(path: &std::path::Path, bytes_max: u64) -> Result<String, SimError> {
    let name = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| SimError::file(&name, e))?;
    if meta.len() > bytes_max {
        return Err(SimError::file(
            &name,
            format!("{} bytes, more than the limit of {bytes_max}", meta.len()),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| SimError::file(&name, e))
}

//! A strict JSON body extractor: unknown fields are rejected (the wire types
//! say `deny_unknown_fields`) and every error names the field's JSON path.
//! The body size is capped by the router's `DefaultBodyLimit`.
//!
//! The body is looked at only when the handler asks (`JsonBody::read`),
//! after it has checked the caller's role and what the caller may see: a
//! caller without the role gets the same 404 as for anything missing,
//! whatever it sent (authorization before validation). The extractor still
//! reads the bytes first (bounded), so that the client, still sending, gets
//! the answer rather than a reset connection.

mod objects;

use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

pub const BODY_BYTES_MAX: usize = 1024 * 1024;
/// The router reads bodies up to this size, so a body a little over
/// `BODY_BYTES_MAX` is read whole and answered 413; a client that stops
/// reading early would otherwise see a reset connection instead of the
/// answer. Bigger bodies are cut off (bounded memory per request).
pub const BODY_BYTES_READ_MAX: usize = 8 * BODY_BYTES_MAX;

/// A parsed body.
#[derive(Debug)]
pub struct StrictJson<T> {
    pub value: T,
    /// The raw body, for idempotency hashes.
    pub bytes: Bytes,
}

/// A JSON body not yet looked at: the extractor reads the bytes but never
/// rejects; what is wrong with them (too large, unreadable, not JSON, not
/// the type) comes out of `read`.
#[derive(Debug)]
pub struct JsonBody<T> {
    bytes: ApiResult<Bytes>,
    _type: PhantomData<fn() -> T>,
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(JsonBody {
            bytes: bytes(request, state).await,
            _type: PhantomData,
        })
    }
}

impl<T: DeserializeOwned> JsonBody<T> {
    /// The body parsed strictly: 413 over `BODY_BYTES_MAX`, 400 if it is not
    /// JSON, 422 naming the field that is wrong.
    pub async fn read(self) -> ApiResult<StrictJson<T>> {
        let bytes = self.bytes?;
        let value = parse(&bytes)?;
        Ok(StrictJson { value, bytes })
    }

    /// As [`JsonBody::read`], for an optional body: `None` when it is empty.
    pub async fn read_optional(self) -> ApiResult<Option<StrictJson<T>>> {
        match &self.bytes {
            Ok(bytes) if bytes.is_empty() => Ok(None),
            _ => self.read().await.map(Some),
        }
    }
}

/// Reads a request's body, at most `BODY_BYTES_MAX` of it kept.
async fn bytes<S: Send + Sync>(request: Request, state: &S) -> ApiResult<Bytes> {
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
    Ok(bytes)
}

/// The answer to a route that does not exist: the same as for anything the
/// caller may not see. Its body is read (and dropped) first, as above.
pub async fn no_such_route(request: Request) -> ApiError {
    let _ = axum::body::to_bytes(request.into_body(), BODY_BYTES_READ_MAX).await;
    ApiError::not_found("resource")
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!("request body over {BODY_BYTES_MAX} bytes"),
    )
}

pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let normalised = integral_numbers(bytes);
    let bytes = normalised.as_deref().unwrap_or(bytes);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let objects = objects::Objects(&mut deserializer);
    let value: T = serde_path_to_error::deserialize(objects).map_err(|error| {
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

/// Integers within this magnitude are exact in an `f64`.
const EXACT_INTEGER_MAX: f64 = 9_007_199_254_740_992.0;

/// JSON has one number type: `1.0` and `1e3` are integers to JSON Schema,
/// so they must be to the server too. Rewrites every number token outside
/// strings that has a fraction or exponent but an exact integral value
/// (`1.0`, `2.50e1`, `-0.0`) as that integer; other bytes stay as they are.
/// A float field reads the integer as the same number. `None` when nothing
/// changes (the common case). Malformed JSON stays malformed: the parser
/// then reports it.
fn integral_numbers(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let token = &bytes[start..i];
                if !token.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                    continue;
                }
                let Some(value) = std::str::from_utf8(token)
                    .ok()
                    .and_then(|text| text.parse::<f64>().ok())
                else {
                    continue;
                };
                if value.is_finite() && value.fract() == 0.0 && value.abs() <= EXACT_INTEGER_MAX {
                    let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                    out.extend_from_slice(&bytes[copied..start]);
                    // Exact: |value| <= 2^53.
                    #[allow(clippy::cast_possible_truncation)]
                    out.extend_from_slice((value as i64).to_string().as_bytes());
                    copied = i;
                }
            }
            _ => i += 1,
        }
    }
    let mut out = out?;
    out.extend_from_slice(&bytes[copied.min(bytes.len())..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(text: &str) -> String {
        String::from_utf8(integral_numbers(text.as_bytes()).unwrap_or_else(|| text.into()))
            .expect("UTF-8")
    }

    #[test]
    fn integral_numbers_become_integers() {
        assert_eq!(
            normal(r#"{"a":1.0,"b":[2.50e1,-0.0,3]}"#),
            r#"{"a":1,"b":[25,0,3]}"#
        );
        assert_eq!(normal(r#"{"a":1.5,"b":1e300}"#), r#"{"a":1.5,"b":1e300}"#);
        // Strings are untouched, escapes included.
        assert_eq!(
            normal(r#"{"a\"1.0":"2.0","b":4.0}"#),
            r#"{"a\"1.0":"2.0","b":4}"#
        );
        assert!(integral_numbers(br#"{"a":1,"b":"x"}"#).is_none());
    }

    #[test]
    fn integers_as_floats_parse_and_fractions_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Body {
            n: u64,
            x: f64,
        }
        let body: Body = parse(br#"{"n": 4.0, "x": 2.0}"#).expect("parses");
        assert_eq!((body.n, body.x), (4, 2.0));
        let error = parse::<Body>(br#"{"n": 4.5, "x": 1}"#).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("n"));
        let error = parse::<Body>(b"{\"n\": 1.0, \"x\": }").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn structs_come_from_objects_only() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Inner {
            #[serde(default)]
            a: Option<u64>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Outer {
            #[serde(default)]
            inner: Option<Inner>,
            #[serde(default)]
            list: Vec<Inner>,
        }
        let outer: Outer =
            parse(br#"{"inner": {"a": 1}, "list": [{}, {"a": 2}]}"#).expect("parses");
        assert_eq!(outer.inner.and_then(|i| i.a), Some(1));
        assert_eq!(outer.list.len(), 2);
        // Serde alone would read these arrays as structs.
        assert_eq!(
            parse::<Outer>(b"[null]").unwrap_err().field.as_deref(),
            Some("")
        );
        assert_eq!(
            parse::<Outer>(br#"{"inner": [3]}"#)
                .unwrap_err()
                .field
                .as_deref(),
            Some("inner")
        );
        assert_eq!(
            parse::<Outer>(br#"{"list": [{}, [4]]}"#)
                .unwrap_err()
                .field
                .as_deref(),
            Some("list[1]")
        );
    }
}

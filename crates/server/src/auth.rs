//! Tokens, principals and per-token rate limits.
//!
//! A token is `swt_` + 32 random bytes in hex. Only its SHA-256 is stored;
//! the secret is shown once. Lookups are cached for `CACHE_TTL` so a request
//! costs no database read; a revocation on this server drops the cache entry
//! at once, on other servers within `CACHE_TTL`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use sha2::{Digest, Sha256};
use suanwang_store::{PrincipalRow, Role};

use crate::error::ApiError;
use crate::state::AppState;

pub const CACHE_TTL: Duration = Duration::from_secs(5);
pub const CACHE_ENTRIES_MAX: usize = 100_000;
pub const TOKEN_PREFIX: &str = "swt_";

/// A secret that never shows in `Debug` or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer).expect("the OS random source works");
    hex(&buffer)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 15)] as char);
    }
    text
}

pub fn new_token() -> (Secret, String) {
    let secret = format!("{TOKEN_PREFIX}{}", random_hex(32));
    let hash = hash_token(&secret);
    (Secret(secret), hash)
}

pub fn hash_token(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::now_v7().simple())
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: PrincipalRow,
    pub token_id: String,
}

impl Caller {
    pub fn id(&self) -> &str {
        &self.principal.id
    }

    pub fn role(&self) -> Role {
        self.principal.role
    }

    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.principal.role == role {
            Ok(())
        } else {
            // 404, not 403: a caller learns nothing about what it may not see.
            Err(ApiError::not_found("resource"))
        }
    }
}

#[derive(Debug, Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (Caller, Instant)>>,
}

impl TokenCache {
    pub fn get(&self, hash: &str, now: Instant) -> Option<Caller> {
        let entries = self.entries.lock().expect("token cache lock");
        entries
            .get(hash)
            .filter(|(_, at)| now.duration_since(*at) < CACHE_TTL)
            .map(|(caller, _)| caller.clone())
    }

    pub fn put(&self, hash: String, caller: Caller, now: Instant) {
        let mut entries = self.entries.lock().expect("token cache lock");
        if entries.len() >= CACHE_ENTRIES_MAX {
            entries.retain(|_, (_, at)| now.duration_since(*at) < CACHE_TTL);
            if entries.len() >= CACHE_ENTRIES_MAX {
                entries.clear();
            }
        }
        entries.insert(hash, (caller, now));
    }

    pub fn forget_token(&self, token_id: &str) {
        let mut entries = self.entries.lock().expect("token cache lock");
        entries.retain(|_, (caller, _)| caller.token_id != token_id);
    }
}

/// Token buckets per token id.
#[derive(Debug)]
pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

pub const BUCKETS_MAX: usize = 100_000;

impl RateLimiter {
    pub fn new(per_s: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_s: f64::from(per_s),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request from the token's bucket; false when it is empty.
    pub fn allow(&self, token_id: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() >= BUCKETS_MAX && !buckets.contains_key(token_id) {
            // Full buckets carry no information: forget them first.
            let (per_s, burst) = (self.per_s, self.burst);
            buckets.retain(|_, (level, at)| {
                *level + now.duration_since(*at).as_secs_f64() * per_s < burst
            });
        }
        let (level, at) = buckets
            .entry(token_id.to_owned())
            .or_insert((self.burst, now));
        let refilled =
            (*level + now.duration_since(*at).as_secs_f64() * self.per_s).min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *level = refilled - 1.0;
            true
        } else {
            *level = refilled;
            false
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let secret = header
            .strip_prefix("Bearer ")
            .map(str::trim)
            .filter(|secret| secret.starts_with(TOKEN_PREFIX) && secret.len() <= 128)
            .ok_or_else(ApiError::unauthorized)?;
        let hash = hash_token(secret);
        let now = Instant::now();
        let caller = match state.tokens.get(&hash, now) {
            Some(caller) => caller,
            None => {
                let (principal, token_id) = state
                    .store
                    .principal_by_token(&hash)
                    .await?
                    .ok_or_else(ApiError::unauthorized)?;
                let caller = Caller {
                    principal,
                    token_id,
                };
                state.tokens.put(hash, caller.clone(), now);
                caller
            }
        };
        if !state.limiter.allow(&caller.token_id, now) {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "too many requests for this token; slow down and retry",
            ));
        }
        Ok(caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_tokens_hash() {
        let (secret, hash) = new_token();
        assert!(secret.0.starts_with(TOKEN_PREFIX));
        assert_eq!(hash, hash_token(&secret.0));
        assert_eq!(hash.len(), 64);
        assert!(!format!("{secret:?}").contains(&secret.0[4..]));
    }

    #[test]
    fn buckets_refill() {
        let limiter = RateLimiter::new(10, 2);
        let start = Instant::now();
        assert!(limiter.allow("t", start));
        assert!(limiter.allow("t", start));
        assert!(!limiter.allow("t", start));
        assert!(limiter.allow("t", start + Duration::from_millis(150)));
        assert!(limiter.allow("u", start));
    }
}

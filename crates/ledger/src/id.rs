//! Account and transfer ids: validated text, not numbers.
//!
//! *Rationale.* Callers derive ids from what they record
//! (`hold:{job}:{task}:{attempt}`, `wallet:{tenant}`), so a resend of the
//! same fact carries the same id and the ledger answers `Exists` instead of
//! charging twice, and a person reading the history sees what each id is.
//! The alphabet is small (`A-Z a-z 0-9 _ : . - /`) so an id needs no
//! quoting in SQL, URLs or logs, and compares as bytes the same everywhere
//! (the PostgreSQL schema stores ids `COLLATE "C"`). Ids are shared
//! (`Arc<str>`): an account id is held by the account and by every
//! transfer that names it, without a copy each.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The longest id, in bytes.
pub const ID_LEN_MAX: usize = 96;

/// Why a text is not an id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("an id is 1 to {ID_LEN_MAX} bytes long, not {len_bytes}")]
    Length { len_bytes: usize },
    #[error("an id is made of A-Z a-z 0-9 _ : . - /, and byte {at} is {byte:#04x}")]
    Char { at: usize, byte: u8 },
}

/// Whether `byte` may appear in an id.
pub fn id_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b':' | b'.' | b'-' | b'/')
}

fn validate(text: &str) -> Result<(), IdError> {
    if text.is_empty() || text.len() > ID_LEN_MAX {
        return Err(IdError::Length {
            len_bytes: text.len(),
        });
    }
    match text.bytes().position(|byte| !id_byte(byte)) {
        Some(at) => Err(IdError::Char {
            at,
            byte: text.as_bytes()[at],
        }),
        None => Ok(()),
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// `text` as an id, if it is one.
            pub fn new(text: &str) -> Result<$name, IdError> {
                validate(text)?;
                Ok($name(Arc::from(text)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(text: &str) -> Result<$name, IdError> {
                $name::new(text)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(text: &str) -> Result<$name, IdError> {
                $name::new(text)
            }
        }

        /// Lookups by `&str`: the id hashes and compares as its text.
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

text_id!(
    /// An account's id, e.g. `wallet:t-1`, `earnings:p-7`, `cash`.
    AccountId
);

text_id!(
    /// A transfer's id, chosen by its caller, e.g. `hold:j-1:3:1`; unique
    /// in the ledger for ever. The ledger's own expiries are
    /// `expire:{pending}` ([`TransferId::expiry_of`]); callers may not use
    /// that prefix.
    TransferId
);

/// The prefix of the ids of the ledger's own expiry transfers.
pub const EXPIRY_PREFIX: &str = "expire:";

/// The longest id of a pending transfer: room is left for its expiry's id.
pub const PENDING_ID_LEN_MAX: usize = ID_LEN_MAX - EXPIRY_PREFIX.len();

impl TransferId {
    /// The id of the expiry of the pending transfer `pending`.
    ///
    /// Panics if `pending` is longer than [`PENDING_ID_LEN_MAX`]: the
    /// ledger refuses such a pending when it is created.
    pub fn expiry_of(pending: &TransferId) -> TransferId {
        assert!(
            pending.0.len() <= PENDING_ID_LEN_MAX,
            "a pending transfer's id leaves room for its expiry's"
        );
        TransferId(Arc::from(format!("{EXPIRY_PREFIX}{}", pending.0)))
    }

    /// Whether this id is of the form the ledger's own expiries use.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(EXPIRY_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert_eq!(AccountId::new("wallet:t-1").unwrap().as_str(), "wallet:t-1");
        assert!(TransferId::new("hold:j-1/3.1_x").is_ok());
        assert_eq!(
            AccountId::new("").unwrap_err().to_string(),
            "an id is 1 to 96 bytes long, not 0"
        );
        assert_eq!(
            AccountId::new(&"a".repeat(97)).unwrap_err(),
            IdError::Length { len_bytes: 97 }
        );
        assert!(AccountId::new(&"a".repeat(96)).is_ok());
        assert_eq!(
            TransferId::new("a b").unwrap_err().to_string(),
            "an id is made of A-Z a-z 0-9 _ : . - /, and byte 1 is 0x20"
        );
        assert_eq!(
            TransferId::new("é").unwrap_err(),
            IdError::Char { at: 0, byte: 0xc3 }
        );
        assert_eq!(
            format!("{:?}", AccountId::new("x").unwrap()),
            r#"AccountId("x")"#
        );
    }

    #[test]
    fn expiry_ids_fit() {
        let pending = TransferId::new(&"p".repeat(PENDING_ID_LEN_MAX)).unwrap();
        let expiry = TransferId::expiry_of(&pending);
        assert_eq!(expiry.as_str().len(), ID_LEN_MAX);
        assert!(expiry.is_reserved());
        assert!(TransferId::new(expiry.as_str()).is_ok());
        assert!(!pending.is_reserved());
    }
}

//! suanwang's double-entry ledger: accounts and immutable, idempotent, two-phase transfers in integer micro-yuan (pure: no IO, no clock).

//! Bills: what a placement holds, what usage costs, who earns it. Pure
//! functions over integer micro-yuan; the ledger (`suanwang-ledger`) moves
//! the money, the store records what these functions decide.
//!
//! The path of a yuan, each step a rule here:
//! 1. **Hold at placement** ([`hold`]): each placed attempt reserves its
//!    estimate (units × the job's hours × the attempt's market price, plus
//!    moving its data once: `price::estimate_micro`) as a pending transfer
//!    from the tenant's wallet to escrow. A round places no more of a
//!    tenant's work than its wallet can hold ([`budget`]).
//! 2. **Rating** ([`rate`]): every usage record becomes bill lines (compute,
//!    and with an attempt's first record the data transfer), each pointing
//!    back to its usage key, the catalogue version and the price source.
//!    Money is not moved per record: lines accrue against the hold.
//! 3. **Settling** ([`settle`]): when an attempt ends, its hold is posted
//!    for what was rated (the rest released); anything rated beyond the
//!    hold, or after the attempt was settled, is charged directly — from
//!    the wallet where it can pay, else as arrears the tenant owes. Escrow
//!    then pays the provider its share less the platform fee, and the
//!    carrier of the link the transfer charge, in one linked chain.
//!
//! Carbon is a scheduling weight, not money: lines carry kWh and kg CO2e.

pub mod budget;
pub mod chart;
pub mod rate;
pub mod settle;

/// Basis points in one: a fee rate of 500 bps is 5 %.
pub const BPS_PER_ONE: i64 = 10_000;

/// What the operator sets about money (the server's config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MoneyConfig {
    /// The platform's fee on compute, in basis points of the charge.
    pub fee_bps: i64,
}

impl MoneyConfig {
    pub fn new(fee_bps: i64) -> Option<MoneyConfig> {
        (0..=BPS_PER_ONE)
            .contains(&fee_bps)
            .then_some(MoneyConfig { fee_bps })
    }
}

/// An attempt, as the ledger's ids and references name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptRef {
    pub job: String,
    pub task: u64,
    pub attempt: u32,
}

impl std::fmt::Display for AttemptRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.job, self.task, self.attempt)
    }
}

/// The hold of an attempt: its id is derived from the attempt, so a
/// round's write that is retried holds once.
pub fn hold(
    attempt: &AttemptRef,
    tenant: &str,
    amount_micro: i64,
    expires_at_ms: i64,
) -> suanwang_ledger::Transfer {
    use suanwang_ledger::{codes, Kind, Transfer, TransferId};
    assert!(amount_micro > 0, "a hold reserves something");
    Transfer::new(
        TransferId::new(&format!("hold:{attempt}")).expect("job ids are plain"),
        chart::wallet(tenant),
        chart::escrow(),
        amount_micro,
        codes::HOLD,
    )
    .kind(Kind::Pending { expires_at_ms })
    .reference(format!("attempt {attempt}"))
}

/// A billing period `YYYY-MM` (a UTC calendar month) as the milliseconds
/// `[from, to)` it spans.
pub fn period_ms(field: &str, text: &str) -> Result<(i64, i64), crate::FieldError> {
    let bad = || crate::FieldError::new(field, format!("{text:?} is not a month as YYYY-MM"));
    let (year, month) = text.split_once('-').ok_or_else(bad)?;
    if year.len() != 4 || month.len() != 2 {
        return Err(bad());
    }
    let year: i16 = year.parse().map_err(|_| bad())?;
    let month: i8 = month.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) || year < 1970 {
        return Err(bad());
    }
    let (next_year, next_month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let ms = |year: i16, month: i8| -> Result<i64, crate::FieldError> {
        let stamp: jiff::Timestamp = format!("{year:04}-{month:02}-01T00:00:00Z")
            .parse()
            .map_err(|_| bad())?;
        Ok(stamp.as_millisecond())
    };
    Ok((ms(year, month)?, ms(next_year, next_month)?))
}

/// How long a hold stays open at most: past this, the ledger releases it
/// by itself (a backstop; attempts settle when they end). A year, the
/// ledger's limit, less a day of margin for the clock.
pub const HOLD_OPEN_MS_MAX: i64 = suanwang_ledger::PENDING_TIMEOUT_MS_MAX - 24 * 3600 * 1000;

#[cfg(test)]
mod tests {
    #[test]
    fn periods_are_utc_months() {
        assert_eq!(
            super::period_ms("period", "2026-12").unwrap(),
            (1_796_083_200_000, 1_798_761_600_000)
        );
        assert_eq!(
            super::period_ms("period", "2024-02").unwrap().1
                - super::period_ms("period", "2024-02").unwrap().0,
            29 * 86_400_000
        );
        for bad in ["2026-13", "2026-1", "26-12", "2026/12", "", "2026-00"] {
            assert_eq!(
                super::period_ms("period", bad).unwrap_err().field,
                "period",
                "{bad}"
            );
        }
    }
}

//! Bills: what a placement holds, what usage costs, who earns it. Pure
//! functions over integer micro-yuan; the ledger (`suanwang-ledger`) moves
//! the money, the store records what these functions decide.
//!
//! The path of a yuan, each step a rule here:
//! 1. **Hold at placement** ([`hold`]): the tasks a round places of one
//!    job ([`HoldRef`]) reserve their estimates (each: units × the job's
//!    hours × the attempt's market price, plus moving its data once:
//!    `price::estimate_micro`) as one pending transfer from the tenant's
//!    wallet to escrow. A round places no more of a tenant's work than its
//!    wallet can hold ([`budget`]).
//! 2. **Rating** ([`rate`]): every usage record becomes bill lines (compute,
//!    and with an attempt's first record the data transfer), each pointing
//!    back to its usage key, the catalogue version and the price source.
//!    Money is not moved per record: lines accrue against the hold.
//! 3. **Settling** ([`settle`]): when the last attempt of a hold ends
//!    ([`ended_attempts`]), the hold is posted for what was rated (the rest
//!    released); anything rated beyond the hold, or after it was settled,
//!    is charged directly — from the wallet where it can pay, else as
//!    arrears the tenant owes. Escrow then pays each provider its share
//!    less the platform fee, and each link's carrier the transfer charge,
//!    in one linked chain.
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
    /// No platform fee.
    pub const FREE: MoneyConfig = MoneyConfig { fee_bps: 0 };

    pub fn new(fee_bps: i64) -> Option<MoneyConfig> {
        (0..=BPS_PER_ONE)
            .contains(&fee_bps)
            .then_some(MoneyConfig { fee_bps })
    }
}

/// A hold: the tasks of one job that one round placed, charged together.
/// Its id is derived from the job and the round's time, so a round's write
/// holds once, and every later charge names the same group.
///
/// Why per job and round rather than per attempt: a round of 100,000
/// tasks writes one hold per job it placed (hundreds), not one per task;
/// each attempt's usage is still rated line by line, and the group is
/// charged once its last attempt ends. The cost of the choice: what an
/// attempt that ended early did not use stays reserved until its group
/// ends (never an overspend, at most a late release).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HoldRef {
    pub job: String,
    pub round_at_ms: i64,
}

impl std::fmt::Display for HoldRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.job, self.round_at_ms)
    }
}

impl HoldRef {
    /// The id of the group's pending transfer.
    pub fn transfer_id(&self) -> suanwang_ledger::TransferId {
        let id = suanwang_ledger::TransferId::new(&format!("hold:{self}"))
            .expect("job ids are plain and short");
        assert!(
            id.as_str().len() <= suanwang_ledger::PENDING_ID_LEN_MAX,
            "a hold's id leaves room for its expiry's"
        );
        id
    }
}

/// The pending transfer of a hold: `amount_micro` reserved on the
/// tenant's wallet, into escrow, until `expires_at_ms` at the latest.
pub fn hold(
    of: &HoldRef,
    tenant: &str,
    amount_micro: i64,
    expires_at_ms: i64,
) -> suanwang_ledger::Transfer {
    use suanwang_ledger::{codes, Kind, Transfer};
    assert!(amount_micro > 0, "a hold reserves something");
    Transfer::new(
        of.transfer_id(),
        chart::wallet(tenant),
        chart::escrow(),
        amount_micro,
        codes::HOLD,
    )
    .kind(Kind::Pending { expires_at_ms })
    .reference(format!("placement {of}"))
}

/// What a tenant's wallet can still reserve or pay: available above its
/// floor (no floor: unlimited), never negative. `None` (no wallet yet):
/// nothing.
pub fn spare_micro(wallet: Option<&suanwang_ledger::Account>) -> i64 {
    match wallet {
        None => 0,
        Some(account) => match account.floor_micro {
            None => i64::MAX / 4,
            Some(floor) => (account.available_micro() - floor).max(0),
        },
    }
}

/// The tasks of `changes` whose attempt ended: placed or running in
/// `view`, and neither after the change (finished, failed, cancelled, or
/// back to pending). Each ends its hold's share; sorted by task.
pub fn ended_attempts(
    view: &crate::machine::View,
    changes: &crate::machine::Changes,
) -> Vec<crate::machine::TaskKey> {
    use crate::lifecycle::TaskState;
    let active = |state: TaskState| matches!(state, TaskState::Placed | TaskState::Running);
    changes
        .tasks
        .iter()
        .filter(|change| !active(change.state))
        .filter(|change| {
            view.task(&change.job, change.index)
                .is_some_and(|before| active(before.state))
        })
        .map(|change| (change.job.clone(), change.index))
        .collect()
}

/// Whether a hold is settled now, given its attempts, those ended (this
/// transaction's included), the settlements made (`charges`), and whether
/// lines were rated against it just now: first when its last attempt
/// ends, then again for every record that comes after.
pub fn settles(attempts: u64, ended: u64, charges: u32, rated_now: bool) -> bool {
    assert!(ended <= attempts, "no more attempts end than were placed");
    if charges == 0 {
        ended == attempts
    } else {
        rated_now
    }
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
    fn a_hold_settles_when_its_last_attempt_ends_then_per_late_record() {
        // (attempts, ended, charges, rated now) → settles
        let cases = [
            ((3, 2, 0, true), false),
            ((3, 3, 0, false), true),
            ((3, 3, 1, false), false),
            ((3, 3, 1, true), true),
            ((1, 0, 0, true), false),
        ];
        for ((attempts, ended, charges, rated), expect) in cases {
            assert_eq!(
                super::settles(attempts, ended, charges, rated),
                expect,
                "{attempts} {ended} {charges} {rated}"
            );
        }
    }

    #[test]
    fn an_attempt_ends_when_its_task_leaves_placed_or_running() {
        use crate::lifecycle::TaskState as S;
        use crate::machine::{Changes, TaskChange, TaskNow, View};
        let mut view = View::default();
        let states = [S::Placed, S::Running, S::Running, S::Pending, S::Placed];
        for (index, state) in states.into_iter().enumerate() {
            view.tasks.insert(
                ("j".into(), index as u64),
                TaskNow {
                    state,
                    ..TaskNow::never_placed()
                },
            );
        }
        let change = |index: u64, state| TaskChange {
            job: "j".into(),
            index,
            state,
            reason: None,
            exit_code: None,
            output_tail: None,
        };
        let changes = Changes {
            tasks: vec![
                change(0, S::Pending),   // lost: ended
                change(1, S::Succeeded), // ended
                change(2, S::Running),   // no change of attempt
                change(3, S::Cancelled), // never running
                change(4, S::Running),   // started
            ],
            ..Changes::default()
        };
        assert_eq!(
            super::ended_attempts(&view, &changes),
            [("j".to_owned(), 0), ("j".to_owned(), 1)]
        );
    }

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

//! Deadlines. A job's `deadline` is the time by which each of its tasks
//! must have finished. A task is offered to a round only while it can still
//! finish in time if it starts now (`now + hours <= deadline`); a waiting
//! task that no longer can ends as failed with the reason `deadline`, and its
//! job follows its usual rules (a gang's placed members are cancelled with
//! it). A task already placed or running is left to finish: the deadline
//! decides only what starts.
//!
//! Pure: the time is an argument (milliseconds since the epoch), never read.

use jiff::Timestamp;

/// The reason a task that missed its deadline fails with.
pub const REASON: &str = "deadline";

const HOUR_MS: f64 = 3_600_000.0;

/// An RFC 3339 time with its offset (`2026-12-01T08:00:00+08:00`,
/// `2026-12-01T00:00:00Z`) in milliseconds since the epoch; `None` if it is
/// not one. A time without an offset is refused: it names no instant.
pub fn parse_ms(text: &str) -> Option<i64> {
    text.parse::<Timestamp>()
        .ok()
        .map(Timestamp::as_millisecond)
}

/// The time `ms` as RFC 3339 in UTC, to the second (what explanations
/// show). Times outside jiff's range (years beyond ±9999) print as ms.
pub fn format_ms(ms: i64) -> String {
    match Timestamp::from_millisecond(ms.div_euclid(1_000) * 1_000) {
        Ok(at) => at.to_string(),
        Err(_) => format!("{ms} ms after the epoch"),
    }
}

/// A task's estimated run time, `hours`, in whole milliseconds, rounded up
/// (the spec bounds `hours`, so this cannot overflow).
pub fn hours_ms(hours: f64) -> i64 {
    assert!(
        (0.0..=crate::spec::limits::HOURS_MAX).contains(&hours),
        "hours validated"
    );
    (hours * HOUR_MS).ceil() as i64
}

/// Where a job with tasks waiting stands against its deadline at `now_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The job has no deadline.
    None,
    /// A task started now still finishes by the deadline.
    Open {
        deadline_ms: i64,
        /// `deadline - now`.
        left_ms: i64,
        /// How much longer a task may wait: `deadline - hours - now`.
        start_within_ms: i64,
    },
    /// A task started now would finish after the deadline: waiting tasks
    /// are not offered any more and fail with [`REASON`].
    Missed {
        deadline_ms: i64,
        /// `deadline - now`: negative once the deadline itself passed.
        left_ms: i64,
    },
}

impl Verdict {
    /// Whether waiting tasks may still be offered to a round.
    pub fn may_start(self) -> bool {
        !matches!(self, Verdict::Missed { .. })
    }
}

/// The rule: tasks of a job whose deadline is `deadline_ms`, each needing
/// `hours_ms`, may start at `now_ms` only while `now + hours <= deadline`.
pub fn verdict(deadline_ms: Option<i64>, hours_ms: i64, now_ms: i64) -> Verdict {
    let Some(deadline_ms) = deadline_ms else {
        return Verdict::None;
    };
    // Widened: a deadline far in the past or future never overflows.
    let left = i128::from(deadline_ms) - i128::from(now_ms);
    let start_within = left - i128::from(hours_ms);
    let clamp = |v: i128| i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX });
    if start_within >= 0 {
        Verdict::Open {
            deadline_ms,
            left_ms: clamp(left),
            start_within_ms: clamp(start_within),
        }
    } else {
        Verdict::Missed {
            deadline_ms,
            left_ms: clamp(left),
        }
    }
}

/// The deadline's line in "why is my job waiting?", or `None` without a
/// deadline. `waiting` says whether the job has tasks waiting now.
pub fn describe(verdict: Verdict, hours_ms: i64, waiting: bool) -> Option<String> {
    let (deadline_ms, left_ms, start_within_ms) = match verdict {
        Verdict::None => return None,
        Verdict::Open {
            deadline_ms,
            left_ms,
            start_within_ms,
        } => (deadline_ms, left_ms, Some(start_within_ms)),
        Verdict::Missed {
            deadline_ms,
            left_ms,
        } => (deadline_ms, left_ms, None),
    };
    let at = format_ms(deadline_ms);
    let (left, need) = (duration(left_ms), duration(hours_ms));
    Some(match (start_within_ms, waiting) {
        (Some(within), true) => format!(
            "deadline {at}, in {left}: a task needs {need}, so it must start within {}",
            duration(within)
        ),
        (Some(_), false) => format!("deadline {at}, in {left}"),
        (None, waiting) => {
            let missed = if left_ms >= 0 {
                format!("deadline {at} can no longer be met (a task needs {need}, {left} left)")
            } else {
                format!("deadline passed at {at}")
            };
            if waiting {
                format!("{missed}; its waiting tasks fail")
            } else {
                format!("{missed}; tasks still waiting then failed")
            }
        }
    })
}

/// A duration for people, rounded down: `2d3h`, `3h12m`, `12m30s`, `45s`,
/// `360ms`.
pub fn duration(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let s = ms / 1_000;
    let (d, h, m, sec) = (s / 86_400, s / 3_600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_796_083_200_000; // 2026-12-01T00:00:00Z

    #[test]
    fn the_rule() {
        // (deadline, hours_ms, now) → expected verdict.
        let table: &[(Option<i64>, i64, i64, Verdict)] = &[
            (None, H, T0, Verdict::None),
            (
                Some(T0 + 2 * H),
                H,
                T0,
                Verdict::Open {
                    deadline_ms: T0 + 2 * H,
                    left_ms: 2 * H,
                    start_within_ms: H,
                },
            ),
            // Exactly on time still starts: now + hours == deadline.
            (
                Some(T0 + H),
                H,
                T0,
                Verdict::Open {
                    deadline_ms: T0 + H,
                    left_ms: H,
                    start_within_ms: 0,
                },
            ),
            // One millisecond too late.
            (
                Some(T0 + H - 1),
                H,
                T0,
                Verdict::Missed {
                    deadline_ms: T0 + H - 1,
                    left_ms: H - 1,
                },
            ),
            // The deadline itself passed.
            (
                Some(T0),
                H,
                T0 + 5,
                Verdict::Missed {
                    deadline_ms: T0,
                    left_ms: -5,
                },
            ),
            // Far past and far future do not overflow.
            (
                Some(i64::MIN),
                H,
                i64::MAX,
                Verdict::Missed {
                    deadline_ms: i64::MIN,
                    left_ms: i64::MIN,
                },
            ),
            (
                Some(i64::MAX),
                H,
                i64::MIN,
                Verdict::Open {
                    deadline_ms: i64::MAX,
                    left_ms: i64::MAX,
                    start_within_ms: i64::MAX,
                },
            ),
        ];
        for &(deadline, hours, now, expect) in table {
            let got = verdict(deadline, hours, now);
            assert_eq!(got, expect, "deadline {deadline:?} hours {hours} now {now}");
            assert_eq!(
                got.may_start(),
                deadline.is_none_or(|d| i128::from(now) + i128::from(hours) <= i128::from(d))
            );
        }
    }

    #[test]
    fn parsing() {
        let table: &[(&str, Option<i64>)] = &[
            ("2026-12-01T00:00:00Z", Some(T0)),
            ("2026-12-01T08:00:00+08:00", Some(T0)),
            ("2026-11-30T19:00:00-05:00", Some(T0)),
            ("2026-12-01T00:00:00.250Z", Some(T0 + 250)),
            ("1970-01-01T00:00:00Z", Some(0)),
            // No offset: no instant.
            ("2026-12-01T00:00:00", None),
            ("2026-12-01", None),
            ("2026-02-30T00:00:00Z", None),
            ("2026-12-01T24:01:00Z", None),
            ("tomorrow", None),
            ("", None),
        ];
        for &(text, expect) in table {
            assert_eq!(parse_ms(text), expect, "{text:?}");
        }
        assert_eq!(format_ms(T0 + 1_999), "2026-12-01T00:00:01Z");
        assert_eq!(parse_ms(&format_ms(T0)), Some(T0));
    }

    #[test]
    fn hours_round_up_to_whole_milliseconds() {
        assert_eq!(hours_ms(1.0), H);
        assert_eq!(hours_ms(0.01), 36_000);
        assert_eq!(hours_ms(1e-9), 1);
        assert_eq!(hours_ms(0.0), 0);
    }

    #[test]
    fn explanations() {
        // (deadline, hours, now, waiting) → the line.
        let table: &[(i64, i64, i64, bool, &str)] = &[
            (
                T0 + 3 * H + 12 * 60_000,
                H,
                T0,
                true,
                "deadline 2026-12-01T03:12:00Z, in 3h12m: a task needs 1h0m, so it must start within 2h12m",
            ),
            (
                T0 + 50 * H,
                H,
                T0,
                false,
                "deadline 2026-12-03T02:00:00Z, in 2d2h",
            ),
            (
                T0 + 30 * 60_000,
                H,
                T0,
                true,
                "deadline 2026-12-01T00:30:00Z can no longer be met (a task needs 1h0m, 30m0s left); its waiting tasks fail",
            ),
            (
                T0,
                H,
                T0 + 1,
                true,
                "deadline passed at 2026-12-01T00:00:00Z; its waiting tasks fail",
            ),
            (
                T0,
                H,
                T0 + 1,
                false,
                "deadline passed at 2026-12-01T00:00:00Z; tasks still waiting then failed",
            ),
        ];
        for &(deadline, hours, now, waiting, expect) in table {
            let got = describe(verdict(Some(deadline), hours, now), hours, waiting);
            assert_eq!(got.as_deref(), Some(expect));
        }
        assert_eq!(describe(Verdict::None, H, true), None);
        assert_eq!(duration(45_900), "45s");
        assert_eq!(duration(26 * H + 1), "1d2h");
        assert_eq!(duration(-5), "0ms");
        assert_eq!(duration(360), "360ms");
        assert_eq!(duration(60_000), "1m0s");
    }
}

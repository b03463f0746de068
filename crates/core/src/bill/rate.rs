//! Rating: a usage record and the price its attempt was placed at become
//! bill lines. Pure and integer.
//!
//! Rules:
//! - **Compute** is `units × wall_ms × price / 3,600,000` micro-yuan. The
//!   exact amount is a fraction; a job's lines are rounded so that their
//!   running total is always the exact running total rounded half up:
//!   each line carries the job's remainder ([`Carry`]) to the next. So a
//!   job's bill is its exact cost rounded once, however many records it
//!   has, and no record's rounding is lost or counted twice.
//! - **Transfer**: an attempt's first record also bills moving its data
//!   once (`data_mb × transfer price per GB / 1,000`, rounded half up);
//!   an attempt that never reports usage moved nothing billable.
//! - **Energy and carbon** are reported, not charged: `units × wall_ms ×
//!   power_kw × PUE / 3,600` Wh, and Wh × the grid's kg CO2e per kWh as
//!   grams, each rounded to the nearest whole unit.

use crate::price::{self, AttemptPrice, MS_PER_HOUR};

/// A job's rounding remainder: the exact running total of its compute
/// lines less its floor, in 1/3,600,000 micro-yuan (`0..MS_PER_HOUR`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Carry(pub u64);

impl Carry {
    /// Whether the running total rounds up at this remainder.
    fn rounds_up(self) -> bool {
        self.0 * 2 >= MS_PER_HOUR
    }
}

/// The compute line of `units` for `wall_ms` at `price_micro` per
/// unit-hour, after the job's lines so far left `carry`: the line's
/// amount and the job's carry after it.
pub fn compute(units: u64, wall_ms: u64, price_micro: i64, carry: Carry) -> (i64, Carry) {
    assert!(carry.0 < MS_PER_HOUR, "a carry is a remainder");
    let price = u128::try_from(price_micro).expect("a price is >= 0");
    let exact = u128::from(units) * u128::from(wall_ms) * price + u128::from(carry.0);
    let whole = exact / u128::from(MS_PER_HOUR);
    let after = Carry(u64::try_from(exact % u128::from(MS_PER_HOUR)).expect("a remainder"));
    let amount = whole + u128::from(after.rounds_up()) - u128::from(carry.rounds_up());
    (i64::try_from(amount).expect("bounded amounts"), after)
}

/// The transfer line of an attempt's first record.
pub fn transfer(data_mb: u64, price: &AttemptPrice) -> i64 {
    price::transfer_charge_micro(data_mb, price.transfer_micro_yuan_per_gb)
}

/// A usage record to rate: what ran, and what its attempt was placed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record {
    pub units: u64,
    pub wall_ms: u64,
    /// The record's number within its attempt: 0 is the first.
    pub seq: u32,
    pub price: AttemptPrice,
}

/// One record's bill line amounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line {
    pub compute_micro: i64,
    /// The data moved billed with this record: all of it on an attempt's
    /// first record, none on the others.
    pub data_mb: u64,
    pub transfer_micro: i64,
}

/// Rates `record` after the job's lines so far left `carry`.
pub fn record(record: &Record, carry: Carry) -> (Line, Carry) {
    let (compute_micro, carry) = compute(
        record.units,
        record.wall_ms,
        record.price.price_micro_yuan_per_unit_hour,
        carry,
    );
    let data_mb = if record.seq == 0 {
        record.price.data_mb
    } else {
        0
    };
    let line = Line {
        compute_micro,
        data_mb,
        transfer_micro: transfer(data_mb, &record.price),
    };
    (line, carry)
}

/// What a pool's units draw: its power per unit, PUE and grid intensity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Energy {
    pub power_kw_per_unit: f64,
    pub pue: f64,
    pub grid_kg_co2_per_kwh: f64,
}

/// Watt-hours and grams of CO2e of `units` for `wall_ms` (reported, never
/// charged).
pub fn energy(units: u64, wall_ms: u64, energy: &Energy) -> (u64, u64) {
    let wh = units as f64 * wall_ms as f64 * energy.power_kw_per_unit * energy.pue / 3_600.0;
    let wh = if wh.is_finite() && wh > 0.0 {
        wh.round()
    } else {
        0.0
    };
    let grams = wh * energy.grid_kg_co2_per_kwh;
    let grams = if grams.is_finite() && grams > 0.0 {
        grams.round()
    } else {
        0.0
    };
    (wh as u64, grams as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact total rounded half up, in micro-yuan.
    fn rounded(exact: u128) -> i64 {
        ((exact * 2 + u128::from(MS_PER_HOUR)) / (2 * u128::from(MS_PER_HOUR))) as i64
    }

    #[test]
    fn a_jobs_lines_sum_to_its_exact_total_rounded_once() {
        // 240 records of one unit for 3,333 ms at 0.35 yuan: each exactly
        // 324.0416… micro-yuan.
        let mut carry = Carry::default();
        let mut total = 0;
        for _ in 0..240 {
            let (amount, after) = compute(1, 3_333, 350_000, carry);
            assert!((324..=325).contains(&amount), "{amount}");
            total += amount;
            carry = after;
        }
        assert_eq!(total, rounded(240 * 3_333 * 350_000));
        // Lines one at a time or one line for all: the same money.
        assert_eq!(compute(1, 240 * 3_333, 350_000, Carry(0)).0, total);
    }

    #[test]
    fn a_line_is_never_negative() {
        // A remainder just past a half, then a tiny record: the running
        // rounded total cannot go down.
        let (first, carry) = compute(1, 5, 360_000, Carry(0));
        assert_eq!((first, carry.rounds_up()), (1, true));
        let (second, _) = compute(1, 1, 360_000, carry);
        assert_eq!(second, 0);
        assert_eq!(compute(0, 1_000, 360_000, Carry(0)).0, 0);
    }

    #[test]
    fn energy_and_carbon_are_whole_units() {
        let gpu = Energy {
            power_kw_per_unit: 0.7,
            pue: 1.2,
            grid_kg_co2_per_kwh: 0.5,
        };
        // 2 GPUs for an hour: 1.68 kWh, 840 g.
        assert_eq!(energy(2, 3_600_000, &gpu), (1_680, 840));
        let none = Energy {
            power_kw_per_unit: 0.0,
            pue: 1.0,
            grid_kg_co2_per_kwh: 0.9,
        };
        assert_eq!(energy(8, 3_600_000, &none), (0, 0));
    }

    proptest::proptest! {
        #[test]
        fn any_split_of_records_bills_the_same(
            records in proptest::collection::vec((1u64..16, 0u64..10_000_000), 1..40),
            price in 0i64..5_000_000,
        ) {
            let mut carry = Carry::default();
            let mut total = 0i64;
            let mut exact = 0u128;
            for &(units, wall_ms) in &records {
                let (amount, after) = compute(units, wall_ms, price, carry);
                proptest::prop_assert!(amount >= 0);
                total += amount;
                carry = after;
                exact += u128::from(units) * u128::from(wall_ms) * price as u128;
            }
            proptest::prop_assert_eq!(total, rounded(exact));
        }
    }
}

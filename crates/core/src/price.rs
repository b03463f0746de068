//! The price of a placement: pay-as-clear, in integer micro-yuan.
//!
//! The engine clears each round's market in `f64` yuan per unit-hour: a
//! pool's *congestion* price is what a task must beat to take a unit there,
//! on top of the pool's list price (`place::Solution::prices_yuan_per_unit_hour`).
//! Money never leaves the engine as a float: this module turns the engine's
//! prices into integers once, by the rules below, and every later step —
//! the attempt's record, the hold, the bill — reads the integers.
//!
//! Rules, each with its reason:
//! - **Rounding: down to the micro-yuan.** The congestion price is floored
//!   (`floor(yuan × 10^6)`). A tenant never pays for the float's noise, and
//!   flooring can only keep a price at or under a bid it was under.
//! - **A pool's market price is list + clearing**, per unit-hour; a task
//!   placed in the round pays its pool's market price of that round
//!   (pay-as-clear: one price per pool per round, whatever each bid was).
//! - **The clearing price never exceeds a winning bid's headroom.** A
//!   uniform price above some accepted bid would charge that task more than
//!   it offered. The engine's ε-auction certifies its prices only within ε
//!   of each task's value, so the round clamps a pool's clearing price to
//!   the lowest `bid − list` among the tasks it placed there. Then
//!   `list + clearing <= bid` holds for every placed task by construction,
//!   and [`prices`] asserts it (in release too: it is money).
//! - **Transfer is priced per GB** from the job's data region to the pool's
//!   region (the topology's matrix), rounded to the nearest micro-yuan like
//!   every price the operator writes in yuan ([`crate::money::micro_yuan`]).
//!
//! Carbon is a scheduling weight, never money here: it moves placements,
//! it is not charged (bills report kWh and kg CO2e instead).

use crate::metering::Fraction;
use crate::money::{micro_yuan, MICRO_PER_YUAN, PRICE_YUAN_PER_UNIT_HOUR_MAX};

/// A pool's prices in one round, micro-yuan per unit-hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolPrice {
    /// The provider's list price.
    pub list_micro_yuan_per_unit_hour: i64,
    /// The congestion price the round cleared at, on top of the list price.
    pub clearing_micro_yuan_per_unit_hour: i64,
}

impl PoolPrice {
    /// What a task placed there pays per unit-hour: list + clearing.
    pub fn market_micro_yuan_per_unit_hour(&self) -> i64 {
        self.list_micro_yuan_per_unit_hour
            .checked_add(self.clearing_micro_yuan_per_unit_hour)
            .expect("prices are bounded far below i64")
    }
}

/// What one attempt was placed at: recorded with the attempt, and what its
/// hold and its bill are computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptPrice {
    /// The pool's market price (list + clearing) in the round that placed it.
    pub price_micro_yuan_per_unit_hour: i64,
    /// The price of moving one GB from the job's data region to the pool's.
    pub transfer_micro_yuan_per_gb: i64,
    /// The job's bid, for the record: `price <= bid` always.
    pub bid_micro_yuan_per_unit_hour: i64,
    /// The job's data, whole megabytes, moved once per attempt
    /// (`data_mb × transfer / 1,000` is the attempt's transfer charge).
    pub data_mb: u64,
}

/// Milliseconds in an hour: prices are per unit-hour, meters count ms.
pub const MS_PER_HOUR: u64 = 3_600_000;
/// Megabytes in a gigabyte (decimal, as transfer is priced).
pub const MB_PER_GB: u64 = 1_000;

/// Rounds `num / den` half up (both >= 0; `den` > 0).
fn round_half_up(num: u128, den: u128) -> u128 {
    assert!(den > 0);
    (num * 2 + den) / (den * 2)
}

/// A job's estimated hours in whole milliseconds (the spec's `hours` is
/// validated finite and positive): money is computed from integers only.
pub fn hours_ms(hours: f64) -> u64 {
    assert!(hours.is_finite() && hours >= 0.0, "validated hours");
    (hours * MS_PER_HOUR as f64).round() as u64
}

/// A job's data in whole megabytes, rounded to nearest.
pub fn data_mb(data_gb: f64) -> u64 {
    assert!(data_gb.is_finite() && data_gb >= 0.0, "validated data_gb");
    (data_gb * MB_PER_GB as f64).round() as u64
}

/// `units` units held for `wall_ms` at `price` per unit-hour, in
/// micro-yuan, rounded half up: `units × wall_ms × price / 3,600,000`.
pub fn compute_micro(units: u64, wall_ms: u64, micro_yuan_per_unit_hour: i64) -> i64 {
    let price = u128::try_from(micro_yuan_per_unit_hour).expect("a price is >= 0");
    let exact = u128::from(units) * u128::from(wall_ms) * price;
    i64::try_from(round_half_up(exact, u128::from(MS_PER_HOUR))).expect("bounded amounts")
}

/// Moving `data_mb` megabytes at `micro_yuan_per_gb`, in micro-yuan,
/// rounded half up.
pub fn transfer_charge_micro(data_mb: u64, micro_yuan_per_gb: i64) -> i64 {
    let price = u128::try_from(micro_yuan_per_gb).expect("a price is >= 0");
    let exact = u128::from(data_mb) * price;
    i64::try_from(round_half_up(exact, u128::from(MB_PER_GB))).expect("bounded amounts")
}

/// What one attempt is expected to cost at placement: its units for the
/// job's estimated hours at the attempt's price, plus moving its data
/// once. What a hold reserves and a quote shows.
pub fn estimate_micro(units: u64, hours_ms: u64, price: &AttemptPrice) -> i64 {
    compute_micro(units, hours_ms, price.price_micro_yuan_per_unit_hour)
        .checked_add(transfer_charge_micro(
            price.data_mb,
            price.transfer_micro_yuan_per_gb,
        ))
        .expect("bounded amounts")
}

/// The engine's congestion price in integer micro-yuan, floored; a value
/// that is not a finite number >= 0 is the engine's bug.
pub fn clearing_micro(engine_yuan_per_unit_hour: f64) -> i64 {
    assert!(
        engine_yuan_per_unit_hour.is_finite() && engine_yuan_per_unit_hour >= 0.0,
        "the engine's price is a finite number >= 0: {engine_yuan_per_unit_hour}"
    );
    let capped = engine_yuan_per_unit_hour.min(PRICE_YUAN_PER_UNIT_HOUR_MAX);
    // At most 10^12: exact in an f64 and far inside i64.
    (capped * MICRO_PER_YUAN as f64).floor() as i64
}

/// The transfer price per GB of a topology's matrix entry, micro-yuan.
pub fn transfer_micro(yuan_per_gb: f64) -> i64 {
    micro_yuan("transfer_yuan_per_gb", yuan_per_gb)
        .expect("the topology's transfer prices were validated")
}

/// A price per unit-hour as a price per SCU-hour, for a unit worth `scu`
/// standard compute units: rounded to the nearest micro-yuan (half up);
/// `None` for a unit the catalogue rates at 0.
pub fn per_scu_hour(micro_yuan_per_unit_hour: i64, scu: Fraction) -> Option<i64> {
    if scu.num == 0 {
        return None;
    }
    assert!(micro_yuan_per_unit_hour >= 0, "a price is >= 0");
    let (num, den) = (u128::from(scu.num), u128::from(scu.den));
    let price = u128::try_from(micro_yuan_per_unit_hour).expect(">= 0");
    let rounded = (price * den * 2 + num) / (num * 2);
    Some(i64::try_from(rounded).unwrap_or(i64::MAX))
}

/// One placement of a round, for [`prices`]: which pool, and the bid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Won {
    pub pool: usize,
    pub bid_micro_yuan_per_unit_hour: i64,
}

/// A round's prices per pool: the engine's congestion prices floored to
/// micro-yuan, each clamped to the lowest `bid − list` of the tasks placed
/// in that pool. `list[p]` is pool `p`'s list price, `engine[p]` its
/// congestion price in yuan.
///
/// Postcondition (asserted): every placement's market price is at most
/// its bid.
pub fn prices(list: &[i64], engine: &[f64], won: &[Won]) -> Vec<PoolPrice> {
    assert_eq!(list.len(), engine.len(), "one price per pool");
    let mut prices: Vec<PoolPrice> = list
        .iter()
        .zip(engine)
        .map(|(&list, &engine)| {
            assert!(list >= 0, "a list price is >= 0");
            PoolPrice {
                list_micro_yuan_per_unit_hour: list,
                clearing_micro_yuan_per_unit_hour: clearing_micro(engine),
            }
        })
        .collect();
    for placed in won {
        let price = &mut prices[placed.pool];
        let headroom = placed
            .bid_micro_yuan_per_unit_hour
            .checked_sub(price.list_micro_yuan_per_unit_hour)
            .expect("bounded prices");
        assert!(
            headroom >= 0,
            "the engine placed a task bidding {} at a list price of {} micro-yuan",
            placed.bid_micro_yuan_per_unit_hour,
            price.list_micro_yuan_per_unit_hour
        );
        price.clearing_micro_yuan_per_unit_hour =
            price.clearing_micro_yuan_per_unit_hour.min(headroom);
    }
    for placed in won {
        assert!(
            prices[placed.pool].market_micro_yuan_per_unit_hour()
                <= placed.bid_micro_yuan_per_unit_hour,
            "pay-as-clear: a task never pays more than its bid"
        );
    }
    prices
}

/// The pools whose price in this round differs from their newest recorded
/// one (`last[p]`, `None` before a pool's first round), by index: the
/// history keeps a row only when a price changes.
pub fn changed(last: &[Option<PoolPrice>], now: &[PoolPrice]) -> Vec<usize> {
    assert_eq!(last.len(), now.len(), "one price per pool");
    (0..now.len())
        .filter(|&pool| last[pool] != Some(now[pool]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_prices_floor_to_the_micro_yuan() {
        assert_eq!(clearing_micro(0.0), 0);
        assert_eq!(clearing_micro(0.1234567), 123_456);
        assert_eq!(clearing_micro(2.5), 2_500_000);
        // Noise below a micro-yuan is never charged.
        assert_eq!(clearing_micro(0.000_000_9), 0);
        assert_eq!(clearing_micro(1e30), 1_000_000_000_000);
    }

    #[test]
    fn a_pools_clearing_price_stays_under_every_winning_bid() {
        let list = [1_000_000, 2_000_000, 500_000];
        let engine = [0.75, 0.0, 3.0];
        let won = [
            Won {
                pool: 0,
                bid_micro_yuan_per_unit_hour: 2_000_000,
            },
            // Headroom 0.5 yuan: the pool clears at 0.5, not the engine's 0.75.
            Won {
                pool: 0,
                bid_micro_yuan_per_unit_hour: 1_500_000,
            },
            Won {
                pool: 1,
                bid_micro_yuan_per_unit_hour: 2_000_000,
            },
        ];
        let prices = prices(&list, &engine, &won);
        assert_eq!(prices[0].clearing_micro_yuan_per_unit_hour, 500_000);
        assert_eq!(prices[0].market_micro_yuan_per_unit_hour(), 1_500_000);
        assert_eq!(prices[1].market_micro_yuan_per_unit_hour(), 2_000_000);
        // Nothing placed there: the engine's price stands.
        assert_eq!(prices[2].clearing_micro_yuan_per_unit_hour, 3_000_000);
    }

    #[test]
    fn prices_per_scu_hour_round_to_the_nearest_micro_yuan() {
        let scu = |num, den| Fraction::new(num, den).unwrap();
        // 2.5 yuan per device-hour of a 50-SCU device: 0.05 yuan per SCU-hour.
        assert_eq!(per_scu_hour(2_500_000, scu(50, 1)), Some(50_000));
        // 1 micro-yuan over 3 SCU: a third, rounded to 0; 2 over 3: to 1.
        assert_eq!(per_scu_hour(1, scu(3, 1)), Some(0));
        assert_eq!(per_scu_hour(2, scu(3, 1)), Some(1));
        // A core of 1/25 SCU: the price per SCU-hour is 25 times its own.
        assert_eq!(per_scu_hour(350_000, scu(1, 25)), Some(8_750_000));
        assert_eq!(per_scu_hour(350_000, Fraction::ZERO), None);
    }

    #[test]
    fn charges_are_integer_and_round_half_up() {
        // 2 units for 30 minutes at 2.5 yuan per unit-hour: 2.5 yuan.
        assert_eq!(compute_micro(2, 1_800_000, 2_500_000), 2_500_000);
        // One millisecond of one core at 0.35 yuan: 0.0972 micro-yuan, 0.
        assert_eq!(compute_micro(1, 1, 350_000), 0);
        // At 0.36 yuan a millisecond is 0.1 micro-yuan: half up at 5 ms.
        assert_eq!(compute_micro(1, 5, 360_000), 1);
        assert_eq!(compute_micro(1, 4, 360_000), 0);
        assert_eq!(compute_micro(3, 5, 360_000), 2);
        // 1.5 GB at 0.03 yuan per GB: 0.045 yuan.
        assert_eq!(transfer_charge_micro(1_500, 30_000), 45_000);
        assert_eq!(hours_ms(0.5), 1_800_000);
        assert_eq!(data_mb(1.5), 1_500);
        let price = AttemptPrice {
            price_micro_yuan_per_unit_hour: 2_500_000,
            transfer_micro_yuan_per_gb: 30_000,
            bid_micro_yuan_per_unit_hour: 3_000_000,
            data_mb: 1_500,
        };
        assert_eq!(estimate_micro(2, 1_800_000, &price), 2_545_000);
    }

    #[test]
    fn the_history_keeps_a_row_only_when_a_price_changes() {
        let at = |list, clearing| PoolPrice {
            list_micro_yuan_per_unit_hour: list,
            clearing_micro_yuan_per_unit_hour: clearing,
        };
        let last = [None, Some(at(1, 0)), Some(at(1, 0)), Some(at(1, 5))];
        let now = [at(1, 0), at(1, 0), at(2, 0), at(1, 4)];
        assert_eq!(changed(&last, &now), [0, 2, 3]);
    }

    #[test]
    #[should_panic(expected = "placed a task bidding")]
    fn a_bid_under_the_list_price_is_the_engines_bug() {
        prices(
            &[1_000_000],
            &[0.0],
            &[Won {
                pool: 0,
                bid_micro_yuan_per_unit_hour: 999_999,
            }],
        );
    }
}

//! The market-clearing solver: an ε-auction over pool capacity.
//!
//! The linear relaxation of a placement round is a transportation problem in
//! units: classes supply `count * units`, pools absorb `capacity`, a unit of
//! class c in pool p is worth `v(c,p) = s(c,p) / units(c)`. Bertsekas's
//! auction solves it as a market: every unit of a pool carries a price, a
//! class bids for the cheapest units of the pool where its net value
//! `v(c,p) - price` is highest, and raises their price to the point where it
//! would be indifferent with its second-best choice, plus ε. Outbid tasks go
//! back to their class and bid again. When nobody wants to move, every placed
//! task is within ε of its best choice at the final prices (ε-complementary
//! slackness), so the prices certify a bound within `ε x units` of the
//! placement's welfare, and the placement is within that of the optimum.
//!
//! Departures from the textbook, each measured on the national instances
//! (see BENCHMARKS.md):
//! - a task takes `units` units at once (a gang: `count * units` in one pool),
//!   so evicting a bigger task can leave a fragment of free units that keeps
//!   the price it was sold at;
//! - ε is relative to each class's own value per unit, because a core-hour
//!   and an accelerator-hour differ by two orders of magnitude;
//! - one coarse phase (ε = 5 %) instead of ε-scaling. The placement it finds
//!   is within 0.1 % of the relaxation's optimum on the national instances,
//!   while finer ε multiplies the bids (a price war among the many classes
//!   that rank the same pools alike) for a few hundredths of a percent.
//!   ε-scaling is also unsound here without reverse steps: the problem is
//!   asymmetric (tasks may stay unplaced), and prices set in a coarse phase
//!   cannot come down in a fine one;
//! - classes bid first in order of value per unit, so the highest bids take
//!   the cheapest units before lower bids arrive;
//! - the reported price of a pool is the lowest price a task holds there (a
//!   new task must beat it), and zero where no unit was ever sold. Since a
//!   coarse ε overshoots, all prices are then scaled by the one factor in
//!   [0, 1] that minimises the bound they certify (the bound is convex in
//!   the prices, so a golden-section search finds it);
//! - after the auction, free fragments are filled with waiting tasks of
//!   positive surplus, best value first (welfare can only rise).
//!
//! Finding a class's best pool does not scan its pools: per bucket (region,
//! kind, family) the pools sit in an ordered set by unit cost plus cheapest
//! unit price, which is a lower bound on what a task pays there, so the scan
//! of a bucket stops as soon as no further pool can beat the second best.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::check;
use crate::index::Index;
use crate::model::{Assignment, Problem, Solution};

/// ε relative to each class's best value per unit at list price. It bounds
/// how far a placed task may be from its best choice at the final prices.
const EPSILON_RELATIVE: f64 = 0.05;

/// A limit on bids, against a livelock we do not expect: each bid raises
/// prices by at least ε, so the auction ends; this makes "ends" concrete.
const BIDS_PER_BLOCK_MAX: u64 = 64;

const NOBODY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Price(f64);

impl Eq for Price {}

impl PartialOrd for Price {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Price {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// A run of units in one pool at one price: free (owner `NOBODY`) or held by
/// whole tasks (blocks) of one class. `seq` keeps keys unique and the order
/// deterministic among equal prices (older first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SegmentKey {
    price: Price,
    seq: u64,
}

#[derive(Clone, Copy, Debug)]
struct Segment {
    owner: u32,
    units: u64,
}

/// Counters of one solve, for benchmarks and explanations of slow rounds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub bids: u64,
    pub evicted_blocks: u64,
    /// The auction was stopped by `BIDS_PER_BLOCK_MAX` (expected: never).
    pub cut: bool,
    pub filled_blocks: u64,
    pub kept_previous: bool,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    pub solution: Solution,
    pub stats: Stats,
}

/// Solve one round. With `previous` (the last round's solution for the same
/// problem), the previous placement is kept unless the new one has strictly
/// more welfare: a scheduler should not move work for nothing. A previous
/// solution that is infeasible for this problem is ignored.
pub fn solve(problem: &Problem, previous: Option<&Solution>) -> Solution {
    solve_with_stats(problem, previous).solution
}

pub fn solve_with_stats(problem: &Problem, previous: Option<&Solution>) -> Outcome {
    let index = Index::new(problem);
    let mut market = Market::new(problem, &index);
    let mut stats = Stats::default();
    market.run(&mut stats);
    let solution = market.into_solution(&mut stats);
    assert_placement_valid(problem, &solution);

    if let Some(previous) = previous {
        if previous.prices_yuan_per_unit_hour.len() == problem.pools.len() {
            let old = check::check(problem, previous);
            let new_welfare = welfare(problem, &solution);
            if old.feasible && old.welfare >= new_welfare {
                let mut kept = previous.clone();
                kept.assignments.sort();
                stats.kept_previous = true;
                return Outcome {
                    solution: kept,
                    stats,
                };
            }
        }
    }
    Outcome { solution, stats }
}

/// Welfare of a solution, summed in assignment order (deterministic).
pub fn welfare(problem: &Problem, solution: &Solution) -> f64 {
    solution
        .assignments
        .iter()
        .map(|a| {
            a.count as f64 * problem.surplus(&problem.classes[a.class], &problem.pools[a.pool])
        })
        .sum()
}

/// Postconditions kept on in release: a solver bug must never reach a
/// scheduler as an over-full pool or a split gang.
fn assert_placement_valid(problem: &Problem, solution: &Solution) {
    let mut used = vec![0u128; problem.pools.len()];
    let mut placed = vec![0u64; problem.classes.len()];
    let mut pools_of = vec![0u32; problem.classes.len()];
    for window in solution.assignments.windows(2) {
        assert!((window[0].class, window[0].pool) < (window[1].class, window[1].pool));
    }
    for assignment in &solution.assignments {
        let class = &problem.classes[assignment.class];
        let pool = &problem.pools[assignment.pool];
        assert!(assignment.count > 0);
        assert!(
            problem.feasible(class, pool),
            "class {} placed in infeasible {}",
            class.id,
            pool.id
        );
        used[assignment.pool] += u128::from(assignment.count) * u128::from(class.units);
        placed[assignment.class] += assignment.count;
        pools_of[assignment.class] += 1;
    }
    for (pool, used) in problem.pools.iter().zip(&used) {
        assert!(
            *used <= u128::from(pool.capacity),
            "pool {} over capacity",
            pool.id
        );
    }
    for (class_index, class) in problem.classes.iter().enumerate() {
        assert!(placed[class_index] <= class.count);
        if class.gang && placed[class_index] > 0 {
            assert!(placed[class_index] == class.count && pools_of[class_index] == 1);
        }
    }
    for price in &solution.prices_yuan_per_unit_hour {
        assert!(price.is_finite() && *price >= 0.0);
    }
}

/// Auction prices overshoot by about ε where ε is coarse: scale them all
/// down by the factor that minimises the bound. `bound` is convex in the
/// prices, so it is convex along the ray `theta x prices`, and a golden-
/// section search on `theta` in [0, 1] finds its minimum.
fn tighten(problem: &Problem, index: &Index, prices: Vec<f64>) -> Vec<f64> {
    let scaled = |theta: f64| -> Vec<f64> { prices.iter().map(|price| price * theta).collect() };
    let value = |theta: f64| check::bound(problem, index, &scaled(theta));
    let golden = 0.5 * (5f64.sqrt() - 1.0);
    let (mut low, mut high) = (0.0f64, 1.0f64);
    let mut left = high - golden * (high - low);
    let mut right = low + golden * (high - low);
    let (mut value_left, mut value_right) = (value(left), value(right));
    for _ in 0..TIGHTEN_STEPS {
        if value_left <= value_right {
            high = right;
            right = left;
            value_right = value_left;
            left = high - golden * (high - low);
            value_left = value(left);
        } else {
            low = left;
            left = right;
            value_left = value_right;
            right = low + golden * (high - low);
            value_right = value(right);
        }
    }
    let theta = if value_left <= value_right {
        left
    } else {
        right
    };
    if value(theta) <= value(1.0) {
        scaled(theta)
    } else {
        prices
    }
}

/// Golden-section steps: the interval shrinks to 0.618^16 < 0.1 % of [0, 1].
const TIGHTEN_STEPS: u32 = 16;

struct Market<'a> {
    problem: &'a Problem,
    index: &'a Index,
    /// Units of one block: a task, or a whole gang.
    block_units: Vec<u64>,
    /// Blocks of each class not holding units now.
    waiting: Vec<u64>,
    /// Best value per unit at list price; ε of a class is relative to it.
    value_scale: Vec<f64>,
    epsilon: Vec<f64>,
    segments: Vec<BTreeMap<SegmentKey, Segment>>,
    /// Per bucket: (unit cost + cheapest unit price, pool).
    bucket_keys: Vec<BTreeSet<(Price, usize)>>,
    pool_key: Vec<Option<Price>>,
    /// Per bucket, the lowest key in `bucket_keys` (infinite when empty): a
    /// bound on what any pool of the bucket can offer, checked before the set.
    bucket_key_min: Vec<f64>,
    seq: u64,
    queue: VecDeque<usize>,
    queued: Vec<bool>,
    /// Classes with a positive value somewhere, by value per unit descending.
    bid_order: Vec<usize>,
}

/// The two best choices of a class: pool and net value per unit of the best,
/// net value of the second best. Not placing at all is worth 0.
struct Choice {
    pool: Option<usize>,
    /// Price per unit of one block in `pool`.
    price: f64,
    net: f64,
    net_second: f64,
}

impl<'a> Market<'a> {
    fn new(problem: &'a Problem, index: &'a Index) -> Market<'a> {
        let class_count = problem.classes.len();
        let block_units: Vec<u64> = problem
            .classes
            .iter()
            .map(|class| class.block_units())
            .collect();
        let waiting: Vec<u64> = problem
            .classes
            .iter()
            .map(|class| if class.gang { 1 } else { class.count })
            .collect();
        let mut market = Market {
            problem,
            index,
            block_units,
            waiting,
            value_scale: vec![0.0; class_count],
            epsilon: vec![0.0; class_count],
            segments: vec![BTreeMap::new(); problem.pools.len()],
            bucket_keys: vec![BTreeSet::new(); index.buckets.len()],
            pool_key: vec![None; problem.pools.len()],
            bucket_key_min: vec![f64::INFINITY; index.buckets.len()],
            seq: 0,
            queue: VecDeque::with_capacity(class_count),
            queued: vec![false; class_count],
            bid_order: Vec::new(),
        };
        for (pool_index, pool) in problem.pools.iter().enumerate() {
            if pool.capacity > 0 {
                market.insert_segment(
                    pool_index,
                    0.0,
                    Segment {
                        owner: NOBODY,
                        units: pool.capacity,
                    },
                );
            }
            market.refresh_key(pool_index);
        }
        for class in 0..class_count {
            market.value_scale[class] = market.best_list_value(class);
        }
        let mut bid_order: Vec<usize> = (0..class_count)
            .filter(|&class| market.value_scale[class] > 0.0)
            .collect();
        bid_order.sort_by(|&a, &b| {
            let (va, vb) = (market.value_scale[a], market.value_scale[b]);
            vb.total_cmp(&va).then(a.cmp(&b))
        });
        market.bid_order = bid_order;
        market
    }

    /// Highest value per unit of `class` over its feasible pools at list price.
    fn best_list_value(&self, class: usize) -> f64 {
        let block_units = self.block_units[class];
        let mut best = 0.0f64;
        for &bucket in self.index.class_buckets(class) {
            let bucket_ref = &self.index.buckets[bucket];
            // Pools are sorted by unit cost: the first big enough is the best.
            if let Some(&pool) = bucket_ref
                .pools
                .iter()
                .find(|&&pool| self.problem.pools[pool].capacity >= block_units)
            {
                best = best.max(self.index.unit_value(self.problem, class, pool));
            }
        }
        best
    }

    fn run(&mut self, stats: &mut Stats) {
        for class in 0..self.problem.classes.len() {
            self.epsilon[class] = EPSILON_RELATIVE * self.value_scale[class];
        }
        // Highest value per unit first: they take the best units before
        // lower bids arrive, so fewer tasks are outbid and bid again.
        for position in 0..self.bid_order.len() {
            let class = self.bid_order[position];
            if self.waiting[class] > 0 {
                self.enqueue(class);
            }
        }
        let blocks_total: u64 = self.waiting.iter().sum();
        let bids_max = BIDS_PER_BLOCK_MAX * (blocks_total + self.problem.classes.len() as u64);
        while let Some(class) = self.queue.pop_front() {
            self.queued[class] = false;
            if self.waiting[class] == 0 {
                continue;
            }
            if stats.bids == bids_max {
                stats.cut = true;
                self.queue.clear();
                self.queued.fill(false);
                break;
            }
            stats.bids += 1;
            self.bid(class, stats);
        }
    }

    fn enqueue(&mut self, class: usize) {
        if !self.queued[class] {
            self.queued[class] = true;
            self.queue.push_back(class);
        }
    }

    fn insert_segment(&mut self, pool: usize, price: f64, segment: Segment) {
        debug_assert!(price.is_finite() && price >= 0.0 && segment.units > 0);
        self.seq += 1;
        self.segments[pool].insert(
            SegmentKey {
                price: Price(price),
                seq: self.seq,
            },
            segment,
        );
    }

    /// Keep the pool's entry in its bucket's ordered set current.
    fn refresh_key(&mut self, pool: usize) {
        let new_key = self.segments[pool]
            .keys()
            .next()
            .map(|key| Price(self.index.unit_cost[pool] + key.price.0));
        if new_key == self.pool_key[pool] {
            return;
        }
        let bucket = self.index.pool_bucket[pool];
        if let Some(old) = self.pool_key[pool] {
            self.bucket_keys[bucket].remove(&(old, pool));
        }
        if let Some(new) = new_key {
            self.bucket_keys[bucket].insert((new, pool));
        }
        self.pool_key[pool] = new_key;
        self.bucket_key_min[bucket] = self.bucket_keys[bucket]
            .first()
            .map_or(f64::INFINITY, |(key, _)| key.0);
    }

    /// Price per unit that `class` pays for one block in `pool`: the highest
    /// price among the cheapest units it could take (never its own).
    fn block_price(&self, pool: usize, class: usize) -> Option<f64> {
        let mut needed = self.block_units[class];
        for (key, segment) in &self.segments[pool] {
            if segment.owner == class as u32 {
                continue;
            }
            if segment.units >= needed {
                return Some(key.price.0);
            }
            needed -= segment.units;
        }
        None
    }

    /// Value per unit of `class` in any pool of `region`, before unit cost.
    fn region_value(&self, class: usize, region: usize) -> f64 {
        let class_ref = &self.problem.classes[class];
        class_ref.bid_yuan_per_unit_hour
            - self.problem.transfer_yuan_per_hour(class_ref, region) / class_ref.units as f64
    }

    fn choose(&self, class: usize) -> Choice {
        let block_units = self.block_units[class];
        let mut choice = Choice {
            pool: None,
            price: 0.0,
            net: 0.0,
            net_second: 0.0,
        };
        for &bucket in self.index.class_buckets(class) {
            let base = self.region_value(class, self.index.buckets[bucket].region);
            if base - self.bucket_key_min[bucket] <= choice.net_second {
                continue;
            }
            for &(key, pool) in &self.bucket_keys[bucket] {
                // `key` is a lower bound on the cost of any block here, and
                // the set is ordered by it: nothing further can do better.
                if base - key.0 <= choice.net_second {
                    break;
                }
                if self.problem.pools[pool].capacity < block_units {
                    continue;
                }
                let Some(price) = self.block_price(pool, class) else {
                    continue;
                };
                let net = base - (self.index.unit_cost[pool] + price);
                if net > choice.net {
                    choice.net_second = choice.net;
                    choice.net = net;
                    choice.pool = Some(pool);
                    choice.price = price;
                } else if net > choice.net_second {
                    choice.net_second = net;
                }
            }
        }
        choice
    }

    fn bid(&mut self, class: usize, stats: &mut Stats) {
        let choice = self.choose(class);
        let Some(pool) = choice.pool else { return };
        let region = self.problem.pools[pool].region;
        let value = self.region_value(class, region) - self.index.unit_cost[pool];
        // The price at which the class would be indifferent with its second
        // choice; every unit it takes is at or below it, and it pays ε more.
        // Never below the block's own price: rounding must not leave a bid
        // that cannot take the block it chose.
        let threshold = (value - choice.net_second).max(choice.price);
        let offer = threshold + self.epsilon[class];
        assert!(offer > threshold && offer.is_finite());

        let block_units = self.block_units[class];
        let waiting = self.waiting[class];
        let mut available = 0u64;
        for (key, segment) in &self.segments[pool] {
            if key.price.0 > threshold || available >= waiting * block_units {
                break;
            }
            if segment.owner != class as u32 {
                available += segment.units;
            }
        }
        let blocks = waiting.min(available / block_units);
        // The chosen pool's cost for one block is at most the threshold.
        assert!(blocks > 0, "bid found no block below its own threshold");
        let mut needed = blocks * block_units;
        let mut taken: Vec<SegmentKey> = Vec::new();
        let mut collected = 0u64;
        for (key, segment) in &self.segments[pool] {
            if collected >= needed {
                break;
            }
            if segment.owner != class as u32 {
                taken.push(*key);
                collected += segment.units;
            }
        }
        for key in taken {
            let segment = self.segments[pool]
                .remove(&key)
                .expect("segment listed above");
            let take = segment.units.min(needed);
            needed -= take;
            if segment.owner == NOBODY {
                if segment.units > take {
                    let rest = Segment {
                        owner: NOBODY,
                        units: segment.units - take,
                    };
                    self.segments[pool].insert(key, rest);
                }
                continue;
            }
            let owner = segment.owner as usize;
            let owner_block = self.block_units[owner];
            let evicted = take.div_ceil(owner_block);
            let released = evicted * owner_block;
            debug_assert!(released <= segment.units);
            if segment.units > released {
                self.segments[pool].insert(
                    key,
                    Segment {
                        owner: segment.owner,
                        units: segment.units - released,
                    },
                );
            }
            if released > take {
                self.insert_segment(
                    pool,
                    key.price.0,
                    Segment {
                        owner: NOBODY,
                        units: released - take,
                    },
                );
            }
            self.waiting[owner] += evicted;
            stats.evicted_blocks += evicted;
            self.enqueue(owner);
        }
        assert!(needed == 0);
        self.insert_segment(
            pool,
            offer,
            Segment {
                owner: class as u32,
                units: blocks * block_units,
            },
        );
        self.waiting[class] -= blocks;
        self.refresh_key(pool);
        if self.waiting[class] > 0 {
            self.enqueue(class);
        }
    }

    fn into_solution(mut self, stats: &mut Stats) -> Solution {
        self.fill(stats);
        let mut placed: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        for (pool, segments) in self.segments.iter().enumerate() {
            for segment in segments.values() {
                if segment.owner != NOBODY {
                    let class = segment.owner as usize;
                    assert!(segment.units % self.block_units[class] == 0);
                    *placed.entry((class, pool)).or_default() +=
                        segment.units / self.block_units[class];
                }
            }
        }
        let assignments: Vec<Assignment> = placed
            .into_iter()
            .map(|((class, pool), blocks)| {
                let class_ref = &self.problem.classes[class];
                let count = if class_ref.gang {
                    class_ref.count
                } else {
                    blocks
                };
                Assignment { class, pool, count }
            })
            .collect();
        let prices_yuan_per_unit_hour = tighten(self.problem, self.index, self.prices());
        Solution {
            assignments,
            prices_yuan_per_unit_hour,
        }
    }

    /// Waiting blocks of positive surplus go into free units left over, best
    /// value first. Prices are not touched: this only adds welfare.
    fn fill(&mut self, stats: &mut Stats) {
        let mut free_units: Vec<u64> = self
            .segments
            .iter()
            .map(|segments| {
                segments
                    .values()
                    .filter(|s| s.owner == NOBODY)
                    .map(|s| s.units)
                    .sum()
            })
            .collect();
        let mut classes: Vec<usize> = (0..self.problem.classes.len())
            .filter(|&class| self.waiting[class] > 0)
            .collect();
        classes.sort_by(|&a, &b| {
            self.value_scale[b]
                .total_cmp(&self.value_scale[a])
                .then(a.cmp(&b))
        });
        let mut candidates: Vec<(f64, usize)> = Vec::new();
        for class in classes {
            let block_units = self.block_units[class];
            candidates.clear();
            for &bucket in self.index.class_buckets(class) {
                for &pool in &self.index.buckets[bucket].pools {
                    if free_units[pool] >= block_units {
                        let value = self.index.unit_value(self.problem, class, pool);
                        if value > 0.0 {
                            candidates.push((value, pool));
                        }
                    }
                }
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            for &(_, pool) in &candidates {
                if self.waiting[class] == 0 {
                    break;
                }
                let blocks = self.waiting[class].min(free_units[pool] / block_units);
                if blocks == 0 {
                    continue;
                }
                self.take_free(pool, class, blocks * block_units);
                free_units[pool] -= blocks * block_units;
                self.waiting[class] -= blocks;
                stats.filled_blocks += blocks;
            }
        }
    }

    /// Hand `units` free units of `pool` to `class`, cheapest first. They
    /// become one holding at the highest price among them, so that a holding
    /// is always whole blocks.
    fn take_free(&mut self, pool: usize, class: usize, units: u64) {
        let mut needed = units;
        let mut price_max = 0.0f64;
        let free: Vec<SegmentKey> = self.segments[pool]
            .iter()
            .filter(|(_, segment)| segment.owner == NOBODY)
            .map(|(key, _)| *key)
            .collect();
        for key in free {
            if needed == 0 {
                break;
            }
            let segment = self.segments[pool].remove(&key).expect("listed above");
            let take = segment.units.min(needed);
            needed -= take;
            price_max = price_max.max(key.price.0);
            if segment.units > take {
                self.segments[pool].insert(
                    key,
                    Segment {
                        owner: NOBODY,
                        units: segment.units - take,
                    },
                );
            }
        }
        assert!(needed == 0);
        self.insert_segment(
            pool,
            price_max,
            Segment {
                owner: class as u32,
                units,
            },
        );
        self.refresh_key(pool);
    }

    /// The congestion price of each pool: the lowest price a task holds
    /// there, which is what the next task must beat; zero where capacity is
    /// left, that is where the units never sold could take one more task of
    /// that cheapest holder (or nobody holds anything). Fragments too small
    /// for the tasks that bid there do not make a pool uncongested. A pool
    /// of capacity 0 sells nothing: its price is the highest bid of the
    /// round, so that no class gains anything there.
    fn prices(&self) -> Vec<f64> {
        let bid_max = self
            .problem
            .classes
            .iter()
            .map(|class| class.bid_yuan_per_unit_hour)
            .fold(0.0f64, f64::max);
        self.segments
            .iter()
            .map(|segments| {
                let Some((first, _)) = segments.iter().next() else {
                    return bid_max;
                };
                let never_sold: u64 = segments
                    .iter()
                    .filter(|(key, segment)| segment.owner == NOBODY && key.price.0 == 0.0)
                    .map(|(_, segment)| segment.units)
                    .sum();
                match segments.iter().find(|(_, segment)| segment.owner != NOBODY) {
                    None => first.price.0,
                    Some((key, holder)) => {
                        if never_sold >= self.block_units[holder.owner as usize] {
                            0.0
                        } else {
                            key.price.0
                        }
                    }
                }
            })
            .collect()
    }
}

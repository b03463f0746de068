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
//! - a class whose bid took all a pool had below its threshold but still has
//!   tasks waiting bids again at once, not from the back of the queue. On L
//!   this halves the bids (1.65 M to 0.73 M): by the time a queued class came
//!   back, others had raised the prices it then had to outbid;
//! - the reported price of a pool is the lowest price a task holds there (a
//!   new task must beat it), and zero where no unit was ever sold. Since a
//!   coarse ε overshoots, all prices are then scaled by the one factor in
//!   [0, 1] that minimises the bound they certify (the bound is convex in
//!   the prices, so a golden-section search finds it);
//! - after the auction, free fragments are filled with waiting tasks of
//!   positive surplus, best value first (welfare can only rise);
//! - on a small round (few feasible pairs) the greedy policy in three class
//!   orders is tried too, and its placement returned when it has strictly
//!   more welfare: on a few tasks with fragmented capacity, the `ε x units`
//!   the auction may lose per task can be more than a greedy order loses.
//!
//! Finding a class's best pool does not scan its pools: per bucket (region,
//! kind, family) the pools sit in a list ordered by unit cost plus cheapest
//! unit price, which is a lower bound on what a task pays there, so the scan
//! of a bucket stops as soon as no further pool can beat the second best.
//! Each entry of that list carries a copy of the pool's cheapest few
//! segments, which prices most blocks without touching the pool itself (the
//! walk over a pool's segments was a cache miss per candidate). A pool's
//! segments are a vector sorted by key descending, so that taking the
//! cheapest units pops from its end.

use std::collections::{BTreeMap, VecDeque};

use crate::check;
use crate::greedy;
use crate::index::Index;
use crate::model::{Assignment, Problem, Solution};

/// ε relative to each class's best value per unit at list price. It bounds
/// how far a placed task may be from its best choice at the final prices.
const EPSILON_RELATIVE: f64 = 0.05;

/// A limit on bids, against a livelock we do not expect: each bid raises
/// prices by at least ε, so the auction ends; this makes "ends" concrete.
const BIDS_PER_BLOCK_MAX: u64 = 64;

const NOBODY: u32 = u32::MAX;

/// A run of units in one pool at one price: free (owner `NOBODY`) or held by
/// whole tasks (blocks) of one class. `(price, seq)` is its key: `seq` keeps
/// keys unique and the order deterministic among equal prices (older first).
#[derive(Clone, Copy, Debug)]
struct Segment {
    price: f64,
    seq: u64,
    owner: u32,
    units: u64,
}

impl Segment {
    /// Order of keys: by price, then by age.
    fn key_cmp(&self, price: f64, seq: u64) -> std::cmp::Ordering {
        self.price.total_cmp(&price).then(self.seq.cmp(&seq))
    }
}

/// Counters of one solve, for benchmarks and explanations of slow rounds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub bids: u64,
    pub evicted_blocks: u64,
    /// The auction was stopped by `BIDS_PER_BLOCK_MAX` (expected: never).
    pub cut: bool,
    pub filled_blocks: u64,
    /// A greedy order placed more welfare than the market on a small round.
    pub greedy_won: bool,
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
/// section search on `theta` in [0, 1] finds its minimum. The search uses
/// [`ScaledBound`], a faster evaluation of the same bound; the certificate
/// itself is always `check::bound` of the prices returned.
fn tighten(problem: &Problem, index: &Index, region_values: &[f64], prices: Vec<f64>) -> Vec<f64> {
    let scaled_bound = ScaledBound::new(problem, index, region_values, &prices);
    let mut scratch = scaled_bound.scratch();
    let mut value = |theta: f64| scaled_bound.value(theta, &mut scratch);
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
        prices.iter().map(|price| price * theta).collect()
    } else {
        prices
    }
}

/// `bound(theta x prices)` for many `theta`: per bucket, the cheapest pool
/// (unit cost plus price) is all a task needs, and for a gang the cheapest
/// pool big enough, found by capacity. A task's value differs between the
/// buckets of one region only by that cost, so a class that is not a gang
/// needs, per region of its bucket list, only the cheapest of them. The same
/// bound as `check::bound` up to rounding.
struct ScaledBound<'a> {
    problem: &'a Problem,
    index: &'a Index,
    region_values: &'a [f64],
    prices: Vec<f64>,
    /// Per bucket, its pools by capacity descending.
    by_capacity: Vec<Vec<usize>>,
    /// Per gang, from `gang_start[class]` to `gang_start[class + 1]`: the
    /// buckets with a pool big enough, as (bucket, the last such pool in
    /// `by_capacity`, region).
    gang_start: Vec<usize>,
    gang_fits: Vec<(u32, u32, u32)>,
    /// Per bucket list of the index: its regions, each with its buckets.
    set_regions: Vec<Vec<(usize, Vec<usize>)>>,
}

/// What one evaluation of [`ScaledBound`] computes before the classes.
struct ScaledScratch {
    /// Per bucket, the running minimum of unit cost plus price over its
    /// pools by capacity descending (the last is the bucket's cheapest).
    cheapest: Vec<Vec<f64>>,
    /// Per bucket list, per region of it, the cheapest of its buckets there.
    region_cost: Vec<Vec<(usize, f64)>>,
}

impl<'a> ScaledBound<'a> {
    fn new(
        problem: &'a Problem,
        index: &'a Index,
        region_values: &'a [f64],
        prices: &[f64],
    ) -> ScaledBound<'a> {
        let prices = prices
            .iter()
            .map(|&price| {
                if price.is_finite() && price > 0.0 {
                    price
                } else {
                    0.0
                }
            })
            .collect();
        let by_capacity: Vec<Vec<usize>> = index
            .buckets
            .iter()
            .map(|bucket| {
                let mut pools = bucket.pools.clone();
                pools.sort_by(|&a, &b| {
                    problem.pools[b]
                        .capacity
                        .cmp(&problem.pools[a].capacity)
                        .then(a.cmp(&b))
                });
                pools
            })
            .collect();
        let capacities: Vec<Vec<u64>> = by_capacity
            .iter()
            .map(|pools| {
                pools
                    .iter()
                    .map(|&pool| problem.pools[pool].capacity)
                    .collect()
            })
            .collect();
        let mut gang_start = Vec::with_capacity(problem.classes.len() + 1);
        let mut gang_fits = Vec::new();
        for (class_index, class) in problem.classes.iter().enumerate() {
            gang_start.push(gang_fits.len());
            if !class.gang {
                continue;
            }
            let block_units = class.block_units();
            for &bucket in index.class_buckets(class_index) {
                let fitting =
                    capacities[bucket].partition_point(|&capacity| capacity >= block_units);
                if fitting > 0 {
                    let region = index.buckets[bucket].region;
                    gang_fits.push((bucket as u32, (fitting - 1) as u32, region as u32));
                }
            }
        }
        gang_start.push(gang_fits.len());
        let set_regions = index
            .sets
            .iter()
            .map(|set| {
                let mut regions: Vec<(usize, Vec<usize>)> = Vec::new();
                for &bucket in set {
                    let region = index.buckets[bucket].region;
                    match regions.iter_mut().find(|(other, _)| *other == region) {
                        Some((_, buckets)) => buckets.push(bucket),
                        None => regions.push((region, vec![bucket])),
                    }
                }
                regions
            })
            .collect();
        ScaledBound {
            problem,
            index,
            region_values,
            prices,
            by_capacity,
            gang_start,
            gang_fits,
            set_regions,
        }
    }

    fn scratch(&self) -> ScaledScratch {
        ScaledScratch {
            cheapest: self
                .by_capacity
                .iter()
                .map(|pools| vec![0.0; pools.len()])
                .collect(),
            region_cost: self
                .set_regions
                .iter()
                .map(|regions| regions.iter().map(|&(region, _)| (region, 0.0)).collect())
                .collect(),
        }
    }

    fn value(&self, theta: f64, scratch: &mut ScaledScratch) -> f64 {
        let mut dual = 0.0;
        for (pool, price) in self.prices.iter().enumerate() {
            dual += self.problem.pools[pool].capacity as f64 * (price * theta);
        }
        for (pools, cheapest) in self.by_capacity.iter().zip(scratch.cheapest.iter_mut()) {
            let mut low = f64::INFINITY;
            for (&pool, slot) in pools.iter().zip(cheapest.iter_mut()) {
                low = low.min(self.index.unit_cost[pool] + self.prices[pool] * theta);
                *slot = low;
            }
        }
        for (regions, costs) in self.set_regions.iter().zip(scratch.region_cost.iter_mut()) {
            for ((_, buckets), (_, cost)) in regions.iter().zip(costs.iter_mut()) {
                *cost = buckets
                    .iter()
                    .filter_map(|&bucket| scratch.cheapest[bucket].last().copied())
                    .fold(f64::INFINITY, f64::min);
            }
        }
        let regions = self.problem.region_count();
        for (class_index, class) in self.problem.classes.iter().enumerate() {
            let values = &self.region_values[class_index * regions..(class_index + 1) * regions];
            let mut best = 0.0f64;
            if class.gang {
                let fits =
                    &self.gang_fits[self.gang_start[class_index]..self.gang_start[class_index + 1]];
                for &(bucket, slot, region) in fits {
                    best = best.max(
                        values[region as usize] - scratch.cheapest[bucket as usize][slot as usize],
                    );
                }
            } else {
                for &(region, cost) in &scratch.region_cost[self.index.class_set[class_index]] {
                    best = best.max(values[region] - cost);
                }
            }
            dual += class.count as f64 * (class.units as f64 * best);
        }
        dual
    }
}

/// Above this many feasible (class, pool) pairs (gangs' sizes ignored) the
/// greedy guard of `Market::better_greedy` is skipped: it enumerates them.
const GREEDY_GUARD_PAIRS_MAX: usize = 100_000;

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
    /// `region_values[class * regions + region]`: value per unit of `class`
    /// in any pool of `region`, before unit cost and price.
    region_values: Vec<f64>,
    /// Per pool, its segments by key *descending*: the cheapest unit is last,
    /// so that taking the cheapest units pops from the end.
    segments: Vec<Vec<Segment>>,
    /// Per bucket, its pools with units, by key ascending.
    bucket_keys: Vec<Vec<BucketEntry>>,
    /// Per interned bucket list of the index: (bucket, its region).
    set_buckets: Vec<Vec<(u32, u32)>>,
    capacity: Vec<u64>,
    pool_key: Vec<Option<f64>>,
    /// Per bucket, the lowest key in `bucket_keys` (infinite when empty): a
    /// bound on what any pool of the bucket can offer, checked before the set.
    bucket_key_min: Vec<f64>,
    seq: u64,
    queue: VecDeque<usize>,
    queued: Vec<bool>,
    /// Classes with a positive value somewhere, by value per unit descending.
    bid_order: Vec<usize>,
    /// Scratch for `bid`: the segments taken off a pool's cheap end.
    scratch: Vec<Segment>,
    /// Scratch for `bid`: the segments to put back in key order.
    scratch_insert: Vec<Segment>,
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

/// Insert `segment` into `segments` (descending by key) at its place.
fn insert_sorted(segments: &mut Vec<Segment>, segment: Segment) {
    let position = segments.partition_point(|other| {
        other.key_cmp(segment.price, segment.seq) == std::cmp::Ordering::Greater
    });
    segments.insert(position, segment);
}

/// Segments of a pool copied into its bucket entry, cheapest first.
const HEAD: usize = 4;

/// A pool in its bucket's list: its key (unit cost plus the price of its
/// cheapest unit, a lower bound on what a block there costs), and a copy of
/// its cheapest segments, which price most blocks without touching the pool.
#[derive(Clone, Copy, Debug)]
struct BucketEntry {
    key: f64,
    pool: u32,
    /// Segments in `head`; fewer than `HEAD` means these are all of them.
    head_len: u32,
    head_price: [f64; HEAD],
    head_units: [u64; HEAD],
    head_owner: [u32; HEAD],
}

impl BucketEntry {
    fn new(key: f64, pool: u32, segments: &[Segment]) -> BucketEntry {
        let mut entry = BucketEntry {
            key,
            pool,
            head_len: 0,
            head_price: [0.0; HEAD],
            head_units: [0; HEAD],
            head_owner: [NOBODY; HEAD],
        };
        for (slot, segment) in segments.iter().rev().take(HEAD).enumerate() {
            entry.head_price[slot] = segment.price;
            entry.head_units[slot] = segment.units;
            entry.head_owner[slot] = segment.owner;
            entry.head_len += 1;
        }
        entry
    }

    /// `Market::block_price` from the copy: `Ok` when the copy decides it,
    /// `Err` when the pool's further segments are needed.
    fn block_price(&self, owner: u32, block_units: u64) -> Result<Option<f64>, ()> {
        let mut needed = block_units;
        for slot in 0..self.head_len as usize {
            if self.head_owner[slot] == owner {
                continue;
            }
            if self.head_units[slot] >= needed {
                return Ok(Some(self.head_price[slot]));
            }
            needed -= self.head_units[slot];
        }
        if (self.head_len as usize) < HEAD {
            Ok(None)
        } else {
            Err(())
        }
    }
}

impl BucketEntry {
    fn order(&self, key: f64, pool: u32) -> std::cmp::Ordering {
        self.key.total_cmp(&key).then(self.pool.cmp(&pool))
    }
}

impl<'a> Market<'a> {
    fn new(problem: &'a Problem, index: &'a Index) -> Market<'a> {
        let class_count = problem.classes.len();
        let regions = problem.region_count();
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
        let mut region_values = Vec::with_capacity(class_count * regions);
        for class in &problem.classes {
            for region in 0..regions {
                region_values.push(
                    class.bid_yuan_per_unit_hour
                        - problem.transfer_yuan_per_hour(class, region) / class.units as f64,
                );
            }
        }
        let mut market = Market {
            problem,
            index,
            block_units,
            waiting,
            value_scale: vec![0.0; class_count],
            epsilon: vec![0.0; class_count],
            region_values,
            segments: vec![Vec::new(); problem.pools.len()],
            bucket_keys: vec![Vec::new(); index.buckets.len()],
            set_buckets: index
                .sets
                .iter()
                .map(|set| {
                    set.iter()
                        .map(|&bucket| (bucket as u32, index.buckets[bucket].region as u32))
                        .collect()
                })
                .collect(),
            capacity: problem.pools.iter().map(|pool| pool.capacity).collect(),
            pool_key: vec![None; problem.pools.len()],
            bucket_key_min: vec![f64::INFINITY; index.buckets.len()],
            seq: 0,
            queue: VecDeque::with_capacity(class_count),
            queued: vec![false; class_count],
            bid_order: Vec::new(),
            scratch: Vec::new(),
            scratch_insert: Vec::new(),
        };
        for (pool_index, pool) in problem.pools.iter().enumerate() {
            if pool.capacity > 0 {
                let seq = market.next_seq();
                market.segments[pool_index].push(Segment {
                    price: 0.0,
                    seq,
                    owner: NOBODY,
                    units: pool.capacity,
                });
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

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
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
            // A class that took what one pool had below its threshold bids
            // again at once for the rest, while its data is in the cache.
            while self.bid(class, stats) && self.waiting[class] > 0 && stats.bids < bids_max {
                stats.bids += 1;
            }
        }
    }

    fn enqueue(&mut self, class: usize) {
        if !self.queued[class] {
            self.queued[class] = true;
            self.queue.push_back(class);
        }
    }

    /// Keep the pool's entry in its bucket's ordered list current.
    fn refresh_key(&mut self, pool: usize) {
        let new_key = self.segments[pool]
            .last()
            .map(|segment| self.index.unit_cost[pool] + segment.price);
        let bucket = self.index.pool_bucket[pool];
        let keys = &mut self.bucket_keys[bucket];
        let pool_id = pool as u32;
        let old_position = self.pool_key[pool].map(|old| {
            keys.binary_search_by(|entry| entry.order(old, pool_id))
                .expect("the pool's key is listed")
        });
        if let (Some(position), Some(new)) = (old_position, new_key) {
            if new.to_bits() == keys[position].key.to_bits() {
                keys[position] = BucketEntry::new(new, pool_id, &self.segments[pool]);
                return;
            }
        }
        if let Some(position) = old_position {
            keys.remove(position);
        }
        if let Some(new) = new_key {
            let position = keys.partition_point(|entry| entry.order(new, pool_id).is_lt());
            keys.insert(
                position,
                BucketEntry::new(new, pool_id, &self.segments[pool]),
            );
        }
        self.pool_key[pool] = new_key;
        self.bucket_key_min[bucket] = keys.first().map_or(f64::INFINITY, |entry| entry.key);
    }

    /// Price per unit that `class` pays for one block in `pool`: the highest
    /// price among the cheapest units it could take (never its own).
    fn block_price(&self, pool: usize, class: usize) -> Option<f64> {
        let mut needed = self.block_units[class];
        for segment in self.segments[pool].iter().rev() {
            if segment.owner == class as u32 {
                continue;
            }
            if segment.units >= needed {
                return Some(segment.price);
            }
            needed -= segment.units;
        }
        None
    }

    fn choose(&self, class: usize) -> Choice {
        let block_units = self.block_units[class];
        let owner_self = class as u32;
        let regions = self.problem.region_count();
        let region_values = &self.region_values[class * regions..(class + 1) * regions];
        let mut choice = Choice {
            pool: None,
            price: 0.0,
            net: 0.0,
            net_second: 0.0,
        };
        for &(bucket, region) in &self.set_buckets[self.index.class_set[class]] {
            let base = region_values[region as usize];
            let bucket = bucket as usize;
            if base - self.bucket_key_min[bucket] <= choice.net_second {
                continue;
            }
            for entry in &self.bucket_keys[bucket] {
                // `key` is a lower bound on the cost of any block here, and
                // the list is ordered by it: nothing further can do better.
                if base - entry.key <= choice.net_second {
                    break;
                }
                let pool = entry.pool as usize;
                if self.capacity[pool] < block_units {
                    continue;
                }
                let price = match entry.block_price(owner_self, block_units) {
                    Ok(price) => price,
                    Err(()) => self.block_price(pool, class),
                };
                let Some(price) = price else {
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

    fn bid(&mut self, class: usize, stats: &mut Stats) -> bool {
        let choice = self.choose(class);
        let Some(pool) = choice.pool else {
            return false;
        };
        let region = self.problem.pools[pool].region;
        let value = self.region_values[class * self.problem.region_count() + region]
            - self.index.unit_cost[pool];
        // The price at which the class would be indifferent with its second
        // choice; every unit it takes is at or below it, and it pays ε more.
        // Never below the block's own price: rounding must not leave a bid
        // that cannot take the block it chose.
        let threshold = (value - choice.net_second).max(choice.price);
        let offer = threshold + self.epsilon[class];
        assert!(offer > threshold && offer.is_finite());

        let owner_self = class as u32;
        let block_units = self.block_units[class];
        let waiting = self.waiting[class];
        let mut available = 0u64;
        for segment in self.segments[pool].iter().rev() {
            if segment.price > threshold || available >= waiting * block_units {
                break;
            }
            if segment.owner != owner_self {
                available += segment.units;
            }
        }
        let blocks = waiting.min(available / block_units);
        // The chosen pool's cost for one block is at most the threshold.
        assert!(blocks > 0, "bid found no block below its own threshold");
        let mut needed = blocks * block_units;

        // Take the cheapest segments not our own off the end, cheapest
        // first, until they hold `needed` units; our own ones stay.
        let mut taken = std::mem::take(&mut self.scratch);
        let mut inserts = std::mem::take(&mut self.scratch_insert);
        taken.clear();
        inserts.clear();
        {
            let segments = &mut self.segments[pool];
            let mut collected = 0u64;
            while collected < needed {
                let segment = segments.pop().expect("enough units were counted");
                if segment.owner != owner_self {
                    collected += segment.units;
                }
                taken.push(segment);
            }
        }
        // `taken` is ascending by key. What stays of it goes back where it
        // was (same keys, all below what is left in the pool); new fragments
        // get fresh keys and are inserted in order.
        for kept in taken.iter_mut() {
            let segment = *kept;
            if segment.owner == owner_self {
                continue;
            }
            let take = segment.units.min(needed);
            needed -= take;
            if segment.owner == NOBODY {
                kept.units = segment.units - take;
                continue;
            }
            let owner = segment.owner as usize;
            let owner_block = self.block_units[owner];
            let evicted = take.div_ceil(owner_block);
            let released = evicted * owner_block;
            debug_assert!(released <= segment.units);
            kept.units = segment.units - released;
            if released > take {
                let seq = self.next_seq();
                inserts.push(Segment {
                    price: segment.price,
                    seq,
                    owner: NOBODY,
                    units: released - take,
                });
            }
            self.waiting[owner] += evicted;
            stats.evicted_blocks += evicted;
            self.enqueue(owner);
        }
        assert!(needed == 0);
        let seq = self.next_seq();
        inserts.push(Segment {
            price: offer,
            seq,
            owner: owner_self,
            units: blocks * block_units,
        });
        {
            let segments = &mut self.segments[pool];
            for segment in taken.iter().rev() {
                if segment.units > 0 {
                    segments.push(*segment);
                }
            }
            for segment in &inserts {
                insert_sorted(segments, *segment);
            }
        }
        self.scratch = taken;
        self.scratch_insert = inserts;
        self.waiting[class] -= blocks;
        self.refresh_key(pool);
        if self.waiting[class] > 0 {
            self.enqueue(class);
        }
        true
    }

    fn into_solution(mut self, stats: &mut Stats) -> Solution {
        self.fill(stats);
        let mut placed: BTreeMap<(usize, usize), u64> = BTreeMap::new();
        for (pool, segments) in self.segments.iter().enumerate() {
            for segment in segments.iter().rev() {
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
        let mut solution = Solution {
            assignments,
            prices_yuan_per_unit_hour: self.prices(),
        };
        if let Some(greedy) = self.better_greedy(&solution) {
            stats.greedy_won = true;
            solution = greedy;
        }
        solution.prices_yuan_per_unit_hour = tighten(
            self.problem,
            self.index,
            &self.region_values,
            solution.prices_yuan_per_unit_hour,
        );
        solution
    }

    /// On a small round, the greedy policy in three orders (file order,
    /// whole-block value, value per unit, highest first), and the best of
    /// them when it beats the market's placement (`market` with its untightened
    /// prices). ε-complementary slackness allows a loss of about ε x units
    /// per task, and on a few tasks with fragmented capacity that can be more
    /// than a greedy order loses. The market's prices stay (any prices give
    /// a valid bound), except where the greedy placement leaves capacity.
    fn better_greedy(&self, market: &Solution) -> Option<Solution> {
        let problem = self.problem;
        let index = self.index;
        let pairs: usize = (0..problem.classes.len())
            .flat_map(|class| index.class_buckets(class))
            .map(|&bucket| index.buckets[bucket].pools.len())
            .sum();
        if pairs > GREEDY_GUARD_PAIRS_MAX {
            return None;
        }
        let mut block_value = vec![0.0f64; problem.classes.len()];
        for (class_index, class) in problem.classes.iter().enumerate() {
            for pool in index.feasible_pools(problem, class_index) {
                let surplus = problem.surplus(class, &problem.pools[pool]);
                let blocks = if class.gang { class.count } else { 1 };
                block_value[class_index] = block_value[class_index].max(surplus * blocks as f64);
            }
        }
        let file_order: Vec<usize> = (0..problem.classes.len()).collect();
        let mut by_block = file_order.clone();
        by_block.sort_by(|&a, &b| block_value[b].total_cmp(&block_value[a]).then(a.cmp(&b)));
        let mut by_unit = file_order.clone();
        by_unit.sort_by(|&a, &b| {
            self.value_scale[b]
                .total_cmp(&self.value_scale[a])
                .then(a.cmp(&b))
        });
        let mut best: Option<(f64, Solution)> = None;
        let market_welfare = welfare(problem, market);
        for order in [&file_order, &by_block, &by_unit] {
            let candidate = greedy::solve_in_order(problem, index, order);
            let candidate_welfare = welfare(problem, &candidate);
            let best_welfare = best.as_ref().map_or(market_welfare, |(value, _)| *value);
            if candidate_welfare > best_welfare {
                best = Some((candidate_welfare, candidate));
            }
        }
        let (_, mut solution) = best?;
        let mut used = vec![0u64; problem.pools.len()];
        let mut block_min = vec![u64::MAX; problem.pools.len()];
        for assignment in &solution.assignments {
            let class = &problem.classes[assignment.class];
            used[assignment.pool] += assignment.count * class.units;
            block_min[assignment.pool] = block_min[assignment.pool].min(class.block_units());
        }
        let mut prices = market.prices_yuan_per_unit_hour.clone();
        for (pool_index, pool) in problem.pools.iter().enumerate() {
            let free = pool.capacity - used[pool_index];
            if free > 0 && (block_min[pool_index] == u64::MAX || free >= block_min[pool_index]) {
                prices[pool_index] = 0.0;
            }
        }
        solution.prices_yuan_per_unit_hour = prices;
        Some(solution)
    }

    /// Waiting blocks of positive surplus go into free units left over, best
    /// value first. Prices are not touched: this only adds welfare.
    fn fill(&mut self, stats: &mut Stats) {
        let mut free_units: Vec<u64> = self
            .segments
            .iter()
            .map(|segments| {
                segments
                    .iter()
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
        let segments = &mut self.segments[pool];
        let mut position = segments.len();
        while needed > 0 {
            position -= 1;
            let segment = &mut segments[position];
            if segment.owner != NOBODY {
                continue;
            }
            let take = segment.units.min(needed);
            needed -= take;
            price_max = price_max.max(segment.price);
            segment.units -= take;
        }
        segments.retain(|segment| segment.units > 0);
        let seq = self.next_seq();
        insert_sorted(
            &mut self.segments[pool],
            Segment {
                price: price_max,
                seq,
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
                let Some(first) = segments.last() else {
                    return bid_max;
                };
                let never_sold: u64 = segments
                    .iter()
                    .filter(|segment| segment.owner == NOBODY && segment.price == 0.0)
                    .map(|segment| segment.units)
                    .sum();
                match segments
                    .iter()
                    .rev()
                    .find(|segment| segment.owner != NOBODY)
                {
                    None => first.price,
                    Some(holder) => {
                        if never_sold >= self.block_units[holder.owner as usize] {
                            0.0
                        } else {
                            holder.price
                        }
                    }
                }
            })
            .collect()
    }
}

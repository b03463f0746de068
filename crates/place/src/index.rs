//! Candidate index: which pools each class may use, without listing every
//! (class, pool) pair.
//!
//! Feasibility depends on a pool only through its bucket — (region, kind,
//! family) — except for a gang's size, which depends on the pool's capacity.
//! And within a bucket, the value of a pool to any class differs only by the
//! pool's unit cost (list price plus carbon), because the transfer cost is the
//! same for every pool of a region. So a class needs its list of feasible
//! buckets, and classes with the same constraints share one list. On the
//! national instances this turns tens of millions of pairs into a few hundred
//! buckets and a few thousand shared lists.

use std::collections::HashMap;

use crate::model::{Class, Kind, Problem};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bucket {
    pub region: usize,
    pub kind: Kind,
    pub family: usize,
    /// Pools of the bucket, by unit cost then index.
    pub pools: Vec<usize>,
}

/// The constraints that decide a class's feasible buckets.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SetKey {
    kind: Kind,
    families: Vec<usize>,
    /// `(origin, max latency bits)` when a latency circle applies.
    latency: Option<(usize, u64)>,
    allowed_regions: Option<Vec<usize>>,
}

#[derive(Debug)]
pub struct Index {
    pub buckets: Vec<Bucket>,
    pub pool_bucket: Vec<usize>,
    /// `unit_cost[p]`: list price plus carbon per unit-hour.
    pub unit_cost: Vec<f64>,
    /// Interned bucket lists; `class_set[c]` indexes it.
    pub sets: Vec<Vec<usize>>,
    pub class_set: Vec<usize>,
}

impl Index {
    pub fn new(problem: &Problem) -> Index {
        let unit_cost: Vec<f64> = problem
            .pools
            .iter()
            .map(|pool| problem.unit_cost_yuan_per_hour(pool))
            .collect();

        let mut order: Vec<usize> = (0..problem.pools.len()).collect();
        order.sort_by(|&a, &b| {
            let (pa, pb) = (&problem.pools[a], &problem.pools[b]);
            (pa.region, pa.kind, pa.family)
                .cmp(&(pb.region, pb.kind, pb.family))
                .then(unit_cost[a].total_cmp(&unit_cost[b]))
                .then(a.cmp(&b))
        });
        let mut buckets: Vec<Bucket> = Vec::new();
        let mut pool_bucket = vec![0; problem.pools.len()];
        for pool_index in order {
            let pool = &problem.pools[pool_index];
            let same = buckets.last().is_some_and(|bucket| {
                (bucket.region, bucket.kind, bucket.family) == (pool.region, pool.kind, pool.family)
            });
            if !same {
                buckets.push(Bucket {
                    region: pool.region,
                    kind: pool.kind,
                    family: pool.family,
                    pools: Vec::new(),
                });
            }
            let bucket_index = buckets.len() - 1;
            buckets[bucket_index].pools.push(pool_index);
            pool_bucket[pool_index] = bucket_index;
        }

        // Lookup only: the map never decides an order, ids come from `sets`.
        let mut set_ids: HashMap<SetKey, usize> = HashMap::new();
        let mut sets: Vec<Vec<usize>> = Vec::new();
        let mut class_set = Vec::with_capacity(problem.classes.len());
        for class in &problem.classes {
            let key = SetKey {
                kind: class.kind,
                families: class.families.clone(),
                latency: class.max_latency_ms.map(|ms| (class.origin, ms.to_bits())),
                allowed_regions: class.allowed_regions.clone(),
            };
            let id = *set_ids.entry(key).or_insert_with(|| {
                sets.push(feasible_buckets(problem, &buckets, class));
                sets.len() - 1
            });
            class_set.push(id);
        }
        Index {
            buckets,
            pool_bucket,
            unit_cost,
            sets,
            class_set,
        }
    }

    pub fn class_buckets(&self, class: usize) -> &[usize] {
        &self.sets[self.class_set[class]]
    }

    /// Feasible pools of `class`, in bucket order; gang size checked here.
    pub fn feasible_pools<'a>(
        &'a self,
        problem: &'a Problem,
        class: usize,
    ) -> impl Iterator<Item = usize> + 'a {
        let block_units = problem.classes[class].block_units();
        self.class_buckets(class)
            .iter()
            .flat_map(move |&bucket| self.buckets[bucket].pools.iter().copied())
            .filter(move |&pool| problem.pools[pool].capacity >= block_units)
    }

    /// Per-unit value of one task of `class` in `pool` before any congestion
    /// price: `s(c,p) / units`.
    pub fn unit_value(&self, problem: &Problem, class: usize, pool: usize) -> f64 {
        let class_ref = &problem.classes[class];
        problem.surplus(class_ref, &problem.pools[pool]) / class_ref.units as f64
    }
}

/// Buckets a class may use, ignoring a gang's size (a pool property).
fn feasible_buckets(problem: &Problem, buckets: &[Bucket], class: &Class) -> Vec<usize> {
    buckets
        .iter()
        .enumerate()
        .filter(|(_, bucket)| {
            problem
                .site_infeasibility(class, bucket.region, bucket.kind, bucket.family)
                .is_none()
        })
        .map(|(index, _)| index)
        .collect()
}

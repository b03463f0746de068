//! One scheduling round: waiting jobs and free pool capacity in, a
//! `suanwang.placement/v1` problem built, solved by the placement engine,
//! and a plan out (how many tasks of which job go to which pool, and why
//! each job left waiting waits). Pure: the scheduling loop does the IO.

use std::collections::BTreeMap;
use std::sync::Arc;

use suanwang_place::explain::{explain, render};
use suanwang_place::{solve, Class, Kind, Pool, Problem, Region, Solution};

use crate::money::yuan;
use crate::price::{self, AttemptPrice, PoolPrice, Won};
use crate::spec::{JobDef, JobKind};
use crate::topology::Topology;

/// A pool as the round sees it: what is free now.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundPool {
    pub id: String,
    pub site: String,
    /// The site's and the pool's names: people know a pool as `site/pool`,
    /// so the round's problem and its explanations name it so.
    pub site_name: String,
    pub name: String,
    pub region: usize,
    pub kind: Kind,
    pub family: String,
    /// Capacity minus the units held by placed and running tasks.
    pub free_units: u64,
    pub price_micro_yuan_per_unit_hour: i64,
    pub power_kw_per_unit: f64,
    pub pue: f64,
    pub grid_kg_co2_per_kwh: f64,
}

/// A job with tasks waiting.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundJob {
    pub id: String,
    pub tenant: String,
    pub def: Arc<JobDef>,
    /// Tasks waiting for a pool. For a gang, all of its unfinished tasks.
    pub pending: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Placement {
    /// Index into the round's jobs.
    pub job: usize,
    /// Index into the round's pools.
    pub pool: usize,
    pub count: u64,
    /// What each of these tasks pays (`core::price`: pay-as-clear).
    pub price: AttemptPrice,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Sorted by (job, pool).
    pub placements: Vec<Placement>,
    /// Every pool's prices in this round, by pool index: list and clearing.
    pub prices: Vec<PoolPrice>,
    /// Jobs left (partly) waiting, with the engine's explanation.
    pub waiting: Vec<(usize, String)>,
    pub tasks_placed: u64,
    pub welfare: f64,
}

/// The pools' ids in the round's problem: `site/pool`, the names people
/// know. Site names are unique per provider only, so a name two pools share
/// gets the pool's own id appended (`site/pool@id`): ids stay unique, as the
/// format requires, and every explanation still says which pool it means.
pub fn pool_ids(pools: &[RoundPool]) -> Vec<String> {
    let names: Vec<String> = pools
        .iter()
        .map(|pool| format!("{}/{}", pool.site_name, pool.name))
        .collect();
    let mut uses: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &names {
        *uses.entry(name.as_str()).or_default() += 1;
    }
    let ids: Vec<String> = names
        .iter()
        .zip(pools)
        .map(|(name, pool)| {
            if uses[name.as_str()] == 1 {
                name.clone()
            } else {
                format!("{name}@{}", pool.id)
            }
        })
        .collect();
    // Postcondition: unique (pool ids are unique, so `name@id` is).
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        ids.len(),
        "round pool ids are unique"
    );
    ids
}

/// The placement problem of a round. Class `i` is job `i`; pool `j` is
/// pool `j`, named `site/pool` ([`pool_ids`]). Pools with nothing free are
/// left in (capacity 0) so prices and explanations still name them.
pub fn problem(topology: &Topology, pools: &[RoundPool], jobs: &[RoundJob]) -> Problem {
    let mut family_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut families: Vec<String> = Vec::new();
    let mut intern = |name: &str, family_index: &mut BTreeMap<&str, usize>| -> usize {
        if let Some(&index) = family_index.get(name) {
            return index;
        }
        families.push(name.to_owned());
        families.len() - 1
    };
    let mut problem_pools = Vec::with_capacity(pools.len());
    for (pool, id) in pools.iter().zip(pool_ids(pools)) {
        let family = intern(&pool.family, &mut family_index);
        family_index.entry(pool.family.as_str()).or_insert(family);
        problem_pools.push(Pool {
            id,
            site: pool.site_name.clone(),
            region: pool.region,
            kind: pool.kind,
            family,
            capacity: pool.free_units,
            price_yuan_per_unit_hour: yuan(pool.price_micro_yuan_per_unit_hour),
            power_kw_per_unit: pool.power_kw_per_unit,
            pue: pool.pue,
            grid_kg_co2_per_kwh: pool.grid_kg_co2_per_kwh,
        });
    }
    let mut classes = Vec::with_capacity(jobs.len());
    for job in jobs {
        assert!(job.pending > 0, "a round job has tasks waiting");
        let def = &job.def;
        let mut class_families: Vec<usize> = def
            .families
            .iter()
            .map(|name| {
                let index = intern(name, &mut family_index);
                family_index.entry(name.as_str()).or_insert(index);
                index
            })
            .collect();
        class_families.sort_unstable();
        class_families.dedup();
        classes.push(Class {
            id: job.id.clone(),
            tenant: job.tenant.clone(),
            kind: def.resource_kind,
            families: class_families,
            count: job.pending,
            units: def.units,
            hours: def.hours,
            bid_yuan_per_unit_hour: yuan(def.bid_micro_yuan_per_unit_hour),
            origin: def.origin,
            max_latency_ms: def.latency_ms_max,
            data_region: def.data_region,
            data_gb: def.data_gb,
            allowed_regions: def.allowed_regions.clone(),
            gang: def.kind == JobKind::Gang,
        });
    }
    Problem {
        regions: topology
            .regions
            .iter()
            .map(|region| Region {
                id: region.id.clone(),
                name: region.name.clone(),
                lat_deg: region.lat_deg,
                lon_deg: region.lon_deg,
            })
            .collect(),
        latency_ms: topology.latency_ms.clone(),
        transfer_yuan_per_gb: topology.transfer_yuan_per_gb.clone(),
        carbon_yuan_per_kg: topology.carbon_yuan_per_kg,
        families,
        pools: problem_pools,
        classes,
    }
}

/// Solves a round: the market placement, and an explanation for every job
/// left waiting.
pub fn plan(topology: &Topology, pools: &[RoundPool], jobs: &[RoundJob]) -> (Problem, Plan) {
    let problem = problem(topology, pools, jobs);
    let solution = solve::solve(&problem, None);
    let plan = plan_of(topology, pools, jobs, &problem, &solution);
    (problem, plan)
}

/// What a task of `def` placed on `pool` at the pool's market price pays:
/// that price, the topology's transfer price from the job's data region
/// to the pool's, its bid, and its data.
pub fn attempt_price(
    topology: &Topology,
    pool: &RoundPool,
    def: &JobDef,
    market_micro_yuan_per_unit_hour: i64,
) -> AttemptPrice {
    let regions = topology.regions.len();
    AttemptPrice {
        price_micro_yuan_per_unit_hour: market_micro_yuan_per_unit_hour,
        transfer_micro_yuan_per_gb: price::transfer_micro(
            topology.transfer_yuan_per_gb[def.data_region * regions + pool.region],
        ),
        bid_micro_yuan_per_unit_hour: def.bid_micro_yuan_per_unit_hour,
        data_mb: price::data_mb(def.data_gb),
    }
}

fn plan_of(
    topology: &Topology,
    pools: &[RoundPool],
    jobs: &[RoundJob],
    problem: &Problem,
    solution: &Solution,
) -> Plan {
    let mut placed = vec![0u64; problem.classes.len()];
    let mut used = vec![0u64; problem.pools.len()];
    let won: Vec<Won> = solution
        .assignments
        .iter()
        .map(|assignment| Won {
            pool: assignment.pool,
            bid_micro_yuan_per_unit_hour: jobs[assignment.class].def.bid_micro_yuan_per_unit_hour,
        })
        .collect();
    let list: Vec<i64> = pools
        .iter()
        .map(|pool| pool.price_micro_yuan_per_unit_hour)
        .collect();
    let prices = price::prices(&list, &solution.prices_yuan_per_unit_hour, &won);
    let placements: Vec<Placement> = solution
        .assignments
        .iter()
        .map(|assignment| {
            placed[assignment.class] += assignment.count;
            used[assignment.pool] += assignment.count * problem.classes[assignment.class].units;
            let def = &jobs[assignment.class].def;
            let pool = &pools[assignment.pool];
            Placement {
                job: assignment.class,
                pool: assignment.pool,
                count: assignment.count,
                price: attempt_price(
                    topology,
                    pool,
                    def,
                    prices[assignment.pool].market_micro_yuan_per_unit_hour(),
                ),
            }
        })
        .collect();
    // Postconditions: capacity respected, nothing placed twice.
    for (pool, &units) in problem.pools.iter().zip(&used) {
        assert!(units <= pool.capacity, "round over-fills pool {}", pool.id);
    }
    let mut waiting = Vec::new();
    for (class_index, class) in problem.classes.iter().enumerate() {
        assert!(placed[class_index] <= class.count);
        if placed[class_index] < class.count {
            let explanation = explain(problem, solution, class_index);
            waiting.push((class_index, render(problem, solution, &explanation)));
        }
    }
    Plan {
        tasks_placed: placed.iter().sum(),
        welfare: solve::welfare(problem, solution),
        placements,
        prices,
        waiting,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use suanwang_api::{JobSpec, ResourcesSpec, RunSpec};

    use super::*;
    use crate::spec::validate_job;

    /// A job of `tasks` tasks of 2 CPU units for 1 h at `bid` yuan, of
    /// tenant `t`.
    pub(crate) fn job(topology: &Topology, id: &str, tasks: u64, bid: f64, gang: bool) -> RoundJob {
        let spec = JobSpec {
            name: id.into(),
            kind: if gang {
                suanwang_api::JobKind::Gang
            } else {
                suanwang_api::JobKind::Batch
            },
            tasks,
            resources: ResourcesSpec {
                kind: suanwang_api::ResourceKind::Cpu,
                units: 2,
                families: vec![],
                memory_gib: 0.0,
            },
            run: RunSpec {
                command: "true".into(),
                args: vec![],
                env: Default::default(),
                slurm_script: None,
            },
            hours: 1.0,
            bid_yuan_per_unit_hour: bid,
            origin: "shanghai".into(),
            latency_ms_max: None,
            data_region: None,
            data_gb: 0.0,
            allowed_regions: None,
            deadline: None,
            retries: 0,
        };
        RoundJob {
            id: id.into(),
            tenant: "t".into(),
            def: Arc::new(validate_job(&spec, topology).unwrap()),
            pending: tasks,
        }
    }

    pub(crate) fn pool(
        topology: &Topology,
        id: &str,
        region: &str,
        free: u64,
        price: i64,
    ) -> RoundPool {
        RoundPool {
            id: id.into(),
            site: "s".into(),
            site_name: format!("{region}-dc"),
            name: id.into(),
            region: topology.region(region).unwrap(),
            kind: Kind::Cpu,
            family: "x86".into(),
            free_units: free,
            price_micro_yuan_per_unit_hour: price,
            power_kw_per_unit: 0.0,
            pue: 1.0,
            grid_kg_co2_per_kwh: 0.0,
        }
    }

    #[test]
    fn places_within_capacity_and_explains_the_rest() {
        let topology = Topology::national();
        let pools = vec![
            pool(&topology, "cheap", "guian", 8, 100_000),
            pool(&topology, "dear", "shanghai", 4, 900_000),
        ];
        let jobs = vec![
            job(&topology, "a", 4, 2.0, false),
            job(&topology, "b", 10, 0.5, false),
            job(&topology, "g", 3, 5.0, true),
        ];
        let (problem, plan) = plan(&topology, &pools, &jobs);
        assert_eq!(problem.classes.len(), 3);
        let placed_units: u64 = plan.placements.iter().map(|p| p.count * 2).sum();
        assert!(placed_units <= 12);
        // The gang (6 units) fits only whole, in one pool.
        let gang: Vec<_> = plan.placements.iter().filter(|p| p.job == 2).collect();
        assert!(gang.is_empty() || (gang.len() == 1 && gang[0].count == 3));
        // Everything not placed is explained.
        let placed_b: u64 = plan
            .placements
            .iter()
            .filter(|p| p.job == 1)
            .map(|p| p.count)
            .sum();
        assert!(placed_b < 10);
        assert!(plan
            .waiting
            .iter()
            .any(|(job, why)| *job == 1 && !why.is_empty()));
        assert_eq!(
            plan.tasks_placed,
            plan.placements.iter().map(|p| p.count).sum::<u64>()
        );
    }

    #[test]
    fn explanations_name_pools_by_site_and_pool() {
        let topology = Topology::national();
        let mut pools = vec![
            pool(&topology, "pool_01", "guian", 2, 100_000),
            pool(&topology, "pool_02", "zhongwei", 2, 900_000),
            // Another provider's site of the same name, with a pool of the
            // same name: told apart by its id.
            pool(&topology, "pool_03", "zhongwei", 2, 900_000),
        ];
        for pool in &mut pools {
            pool.name = "cpu".into();
        }
        assert_eq!(
            pool_ids(&pools),
            [
                "guian-dc/cpu",
                "zhongwei-dc/cpu@pool_02",
                "zhongwei-dc/cpu@pool_03"
            ]
        );
        // Outbid everywhere: the explanation names the best candidate.
        let jobs = vec![job(&topology, "a", 1, 0.01, false)];
        let (problem, plan) = plan(&topology, &pools, &jobs);
        assert_eq!(problem.pools[0].id, "guian-dc/cpu");
        assert_eq!(problem.pools[0].site, "guian-dc");
        let (_, why) = &plan.waiting[0];
        assert!(
            why.contains("the best candidate guian-dc/cpu needs a bid"),
            "{why}"
        );
        assert!(!why.contains("pool_01"), "{why}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Pay-as-clear on random rounds: every placement pays its pool's
        /// market price (list + clearing, both recorded), never more than its
        /// bid, and the transfer price is the topology's for its regions.
        #[test]
        fn every_placement_pays_at_most_its_bid(
            pools in proptest::collection::vec((0usize..4, 1u64..20, 50_000i64..3_000_000), 1..6),
            jobs in proptest::collection::vec((1u64..12, 0.05f64..4.0, proptest::bool::ANY), 1..8),
        ) {
            let topology = Topology::national();
            let regions = ["guian", "zhongwei", "shanghai", "beijing"];
            let pools: Vec<RoundPool> = pools
                .iter()
                .enumerate()
                .map(|(i, &(region, free, price))| {
                    pool(&topology, &format!("p{i}"), regions[region], free, price)
                })
                .collect();
            let jobs: Vec<RoundJob> = jobs
                .iter()
                .enumerate()
                .map(|(i, &(tasks, bid, gang))| job(&topology, &format!("j{i}"), tasks, bid, gang))
                .collect();
            let (_, plan) = plan(&topology, &pools, &jobs);
            proptest::prop_assert_eq!(plan.prices.len(), pools.len());
            for (price, pool) in plan.prices.iter().zip(&pools) {
                proptest::prop_assert_eq!(
                    price.list_micro_yuan_per_unit_hour,
                    pool.price_micro_yuan_per_unit_hour
                );
                proptest::prop_assert!(price.clearing_micro_yuan_per_unit_hour >= 0);
            }
            let n = topology.regions.len();
            for placement in &plan.placements {
                let def = &jobs[placement.job].def;
                let pool = &pools[placement.pool];
                let paid = placement.price.price_micro_yuan_per_unit_hour;
                proptest::prop_assert_eq!(
                    paid,
                    plan.prices[placement.pool].market_micro_yuan_per_unit_hour()
                );
                proptest::prop_assert!(paid <= def.bid_micro_yuan_per_unit_hour);
                proptest::prop_assert_eq!(
                    placement.price.bid_micro_yuan_per_unit_hour,
                    def.bid_micro_yuan_per_unit_hour
                );
                proptest::prop_assert_eq!(
                    placement.price.transfer_micro_yuan_per_gb,
                    crate::price::transfer_micro(
                        topology.transfer_yuan_per_gb[def.data_region * n + pool.region]
                    )
                );
            }
        }
    }
}

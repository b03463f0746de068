//! A synthetic national scenario: the East-Data-West-Compute network as one
//! placement problem of any size, for `suanwang place gen`, benchmarks and
//! tests. Every distribution and formula is documented in
//! `docs/generator.md`.
//!
//! Pure: the region table is compiled in (`data/regions.csv`), there is no
//! clock, and every random number comes from
//! `ChaCha8Rng::seed_from_u64(seed)` (one stream per part of the scenario),
//! so the same [`GenParams`] always give the same [`Problem`]. The work is
//! linear in `pools + classes`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::{Class, Kind, Pool, Problem, Region};

/// What to generate: exactly `pools` pools and `classes` classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenParams {
    pub pools: usize,
    pub classes: usize,
    pub seed: u64,
}

/// Generates the national scenario for `params`. Same params, same problem.
pub fn generate(params: &GenParams) -> Problem {
    let table = region_table();
    let n = table.len();
    let mut distance_km = vec![0.0; n * n];
    for (i, a) in table.iter().enumerate() {
        for (j, b) in table.iter().enumerate() {
            distance_km[i * n + j] = haversine_km(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg);
        }
    }
    let latency_ms = (0..n * n)
        .map(|k| {
            if k / n == k % n {
                LOCAL_LATENCY_MS
            } else {
                latency_ms(distance_km[k])
            }
        })
        .collect();
    let transfer_yuan_per_gb = (0..n * n)
        .map(|k| {
            if k / n == k % n {
                0.0
            } else {
                transfer_yuan_per_gb(distance_km[k])
            }
        })
        .collect();

    let mut scenario_rng = stream(params.seed, STREAM_SCENARIO);
    let ratios = DemandRatios {
        cpu: scenario_rng.random_range(0.75..1.15),
        gpu: scenario_rng.random_range(1.4..1.9),
        hpc: scenario_rng.random_range(0.9..1.4),
    };

    let mut draft_pools = draft_pools(&table, params.pools, &mut stream(params.seed, STREAM_POOLS));
    let draft_classes = draft_classes(
        &table,
        &distance_km,
        params.classes,
        &mut stream(params.seed, STREAM_CLASSES),
    );
    size_pools(&mut draft_pools, &draft_classes, &ratios);

    // Families interned in first-seen order: pools, then classes.
    let mut interned: Vec<usize> = Vec::new();
    let mut family_index = [usize::MAX; FAMILIES.len()];
    let mut intern = |spec: usize| {
        if family_index[spec] == usize::MAX {
            family_index[spec] = interned.len();
            interned.push(spec);
        }
        family_index[spec]
    };

    let pools = draft_pools
        .into_iter()
        .map(|draft| {
            let family = &FAMILIES[draft.family];
            Pool {
                id: format!("{}/{}-{}", draft.site, family.kind.as_str(), family.name),
                site: draft.site,
                region: draft.region,
                kind: family.kind,
                family: intern(draft.family),
                capacity: draft.capacity,
                price_yuan_per_unit_hour: draft.price,
                power_kw_per_unit: family.power_kw_per_unit,
                pue: draft.pue,
                grid_kg_co2_per_kwh: draft.grid,
            }
        })
        .collect();
    let classes = draft_classes
        .into_iter()
        .enumerate()
        .map(|(index, draft)| {
            let mut families: Vec<usize> =
                draft.families.iter().map(|&spec| intern(spec)).collect();
            families.sort_unstable();
            families.dedup();
            Class {
                id: format!("c{index}"),
                tenant: format!("t{}", draft.tenant),
                kind: draft.kind,
                families,
                count: draft.count,
                units: draft.units,
                hours: draft.hours,
                bid_yuan_per_unit_hour: draft.bid,
                origin: draft.origin,
                max_latency_ms: draft.max_latency_ms,
                data_region: draft.data_region,
                data_gb: draft.data_gb,
                allowed_regions: draft.allowed_regions,
                gang: draft.gang,
            }
        })
        .collect();

    Problem {
        regions: table
            .iter()
            .map(|row| Region {
                id: row.id.to_string(),
                name: row.name.to_string(),
                lat_deg: row.lat_deg,
                lon_deg: row.lon_deg,
            })
            .collect(),
        latency_ms,
        transfer_yuan_per_gb,
        carbon_yuan_per_kg: CARBON_YUAN_PER_KG,
        families: interned
            .iter()
            .map(|&spec| FAMILIES[spec].name.to_string())
            .collect(),
        pools,
        classes,
    }
}

// ---------------------------------------------------------------------------
// Constants of the model (docs/generator.md explains each).

/// Price of one kg of CO2 in welfare, yuan (China's ETS trades near 0.1 yuan/kg).
const CARBON_YUAN_PER_KG: f64 = 0.1;
const EARTH_RADIUS_KM: f64 = 6371.0;
/// Fibre route length over great-circle distance.
const ROUTE_FACTOR: f64 = 1.5;
/// Speed of light in fibre, km per ms (c / 1.47); with `ROUTE_FACTOR` and a
/// 1 ms round-trip overhead this reproduces the `rtt_ms_direct_fibre_r1.5_o1`
/// column of `hub_pairwise_distance_rtt_model.csv` within 0.01 ms.
const FIBRE_KM_PER_MS: f64 = 204.0;
/// Half the 1 ms round-trip overhead (switching, last mile).
const ONE_WAY_OVERHEAD_MS: f64 = 0.5;
/// Latency inside one region (same metro area).
const LOCAL_LATENCY_MS: f64 = 0.3;
const TRANSFER_BASE_YUAN_PER_GB: f64 = 0.03;
const TRANSFER_YUAN_PER_GB_PER_1000_KM: f64 = 0.06;
const TRANSFER_CAP_YUAN_PER_GB: f64 = 0.2;

const STREAM_SCENARIO: u64 = 0;
const STREAM_POOLS: u64 = 1;
const STREAM_CLASSES: u64 = 2;

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let d_phi = (lat2 - lat1).to_radians();
    let d_lambda = (lon2 - lon1).to_radians();
    let a = (d_phi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (d_lambda / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().min(1.0).asin()
}

/// One-way latency between two distinct regions `distance_km` apart.
fn latency_ms(distance_km: f64) -> f64 {
    round_to(
        ONE_WAY_OVERHEAD_MS + distance_km * ROUTE_FACTOR / FIBRE_KM_PER_MS,
        1e3,
    )
}

/// Price of moving one GB between two distinct regions `distance_km` apart.
fn transfer_yuan_per_gb(distance_km: f64) -> f64 {
    let price = TRANSFER_BASE_YUAN_PER_GB + TRANSFER_YUAN_PER_GB_PER_1000_KM * distance_km / 1000.0;
    round_to(price.min(TRANSFER_CAP_YUAN_PER_GB), 1e4)
}

fn round_to(value: f64, scale: f64) -> f64 {
    (value * scale).round() / scale
}

// ---------------------------------------------------------------------------
// Regions.

const REGIONS_CSV: &str = include_str!("../data/regions.csv");

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Zone {
    /// Western hub: big, cheap, low PUE, buys green power.
    West,
    /// Eastern hub: near demand, dearer.
    East,
    /// Demand city: small metro/edge clouds, dearest.
    City,
}

#[derive(Clone, Debug)]
struct RegionRow {
    id: &'static str,
    name: &'static str,
    zone: Zone,
    lat_deg: f64,
    lon_deg: f64,
    grid_kg_co2_per_kwh: f64,
    supply_weight: f64,
    demand_weight: f64,
}

/// The compiled-in region table. Panics only if `data/regions.csv` is
/// malformed, which the tests rule out.
fn region_table() -> Vec<RegionRow> {
    let mut lines = REGIONS_CSV
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let header = lines.next().expect("regions.csv has a header");
    assert_eq!(
        header,
        "id,name,zone,lat,lon,province,grid_kg_co2_per_kwh_2022,supply_weight,demand_weight,source"
    );
    lines
        .map(|line| {
            let fields: Vec<&'static str> = line.split(',').collect();
            assert_eq!(fields.len(), 10, "regions.csv: bad line {line:?}");
            let number = |k: usize| -> f64 {
                fields[k]
                    .parse()
                    .unwrap_or_else(|_| panic!("regions.csv: bad number in {line:?}"))
            };
            RegionRow {
                id: fields[0],
                name: fields[1],
                zone: match fields[2] {
                    "west" => Zone::West,
                    "east" => Zone::East,
                    "city" => Zone::City,
                    other => panic!("regions.csv: bad zone {other:?}"),
                },
                lat_deg: number(3),
                lon_deg: number(4),
                grid_kg_co2_per_kwh: number(6),
                supply_weight: number(7),
                demand_weight: number(8),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Chip families.

struct FamilySpec {
    kind: Kind,
    name: &'static str,
    /// Reference list price, yuan per unit-hour, before the zone multiplier.
    list_price: f64,
    power_kw_per_unit: f64,
    /// Relative share among the kind's families in eastern hubs and cities
    /// (also the families tenants ask for), and in western hubs.
    share_east: f64,
    share_west: f64,
}

const FAMILIES: [FamilySpec; 8] = [
    FamilySpec {
        kind: Kind::Cpu,
        name: "x86",
        list_price: 0.09,
        power_kw_per_unit: 0.011,
        share_east: 0.65,
        share_west: 0.55,
    },
    FamilySpec {
        kind: Kind::Cpu,
        name: "arm",
        list_price: 0.075,
        power_kw_per_unit: 0.007,
        share_east: 0.35,
        share_west: 0.45,
    },
    FamilySpec {
        kind: Kind::Gpu,
        name: "nvidia",
        list_price: 10.0,
        power_kw_per_unit: 0.7,
        share_east: 0.45,
        share_west: 0.25,
    },
    FamilySpec {
        kind: Kind::Gpu,
        name: "ascend",
        list_price: 6.5,
        power_kw_per_unit: 0.4,
        share_east: 0.30,
        share_west: 0.40,
    },
    FamilySpec {
        kind: Kind::Gpu,
        name: "hygon",
        list_price: 5.0,
        power_kw_per_unit: 0.35,
        share_east: 0.15,
        share_west: 0.15,
    },
    FamilySpec {
        kind: Kind::Gpu,
        name: "cambricon",
        list_price: 4.5,
        power_kw_per_unit: 0.3,
        share_east: 0.10,
        share_west: 0.20,
    },
    FamilySpec {
        kind: Kind::Hpc,
        name: "x86-fp64",
        list_price: 11.0,
        power_kw_per_unit: 0.8,
        share_east: 0.75,
        share_west: 0.70,
    },
    FamilySpec {
        kind: Kind::Hpc,
        name: "arm-fp64",
        list_price: 9.0,
        power_kw_per_unit: 0.6,
        share_east: 0.25,
        share_west: 0.30,
    },
];

/// Indices into `FAMILIES` of the families of `kind`.
fn family_range(kind: Kind) -> std::ops::Range<usize> {
    match kind {
        Kind::Cpu => 0..2,
        Kind::Gpu => 2..6,
        Kind::Hpc => 6..8,
    }
}

/// `k` distinct families of `kind`, drawn without replacement by share.
fn draw_families(rng: &mut ChaCha8Rng, kind: Kind, k: usize, west: bool) -> Vec<usize> {
    let mut left: Vec<usize> = family_range(kind).collect();
    let mut chosen = Vec::with_capacity(k);
    while chosen.len() < k && !left.is_empty() {
        let weights: Vec<f64> = left
            .iter()
            .map(|&spec| {
                if west {
                    FAMILIES[spec].share_west
                } else {
                    FAMILIES[spec].share_east
                }
            })
            .collect();
        let at = Weighted::new(&weights).sample(rng);
        chosen.push(left.remove(at));
    }
    chosen
}

// ---------------------------------------------------------------------------
// Sampling helpers.

/// Draws an index with probability proportional to its weight.
struct Weighted {
    cumulative: Vec<f64>,
}

impl Weighted {
    fn new(weights: &[f64]) -> Weighted {
        let mut total = 0.0;
        let cumulative = weights
            .iter()
            .map(|&weight| {
                total += weight.max(0.0);
                total
            })
            .collect();
        Weighted { cumulative }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = rng.random::<f64>() * total;
        self.cumulative
            .partition_point(|&c| c <= target)
            .min(self.cumulative.len().saturating_sub(1))
    }
}

/// Picks a value from a small `(value, weight)` table.
fn pick<T: Copy>(rng: &mut ChaCha8Rng, table: &[(T, f64)]) -> T {
    let total: f64 = table.iter().map(|&(_, weight)| weight).sum();
    let mut target = rng.random::<f64>() * total;
    for &(value, weight) in table {
        if target < weight {
            return value;
        }
        target -= weight;
    }
    table[table.len() - 1].0
}

/// Log-uniform on `[low, high]`, rounded to 3 decimals and kept in range.
fn log_uniform(rng: &mut ChaCha8Rng, low: f64, high: f64) -> f64 {
    let exponent = rng.random_range(low.log10()..high.log10());
    round_to(10f64.powf(exponent), 1e3).clamp(low, high)
}

// ---------------------------------------------------------------------------
// Pools.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SiteType {
    /// General compute cloud (通算).
    Cloud,
    /// AI compute centre (智算).
    Ai,
    /// Supercomputing centre (超算).
    Super,
}

struct DraftPool {
    site: String,
    region: usize,
    family: usize,
    /// Relative size; `size_pools` turns it into a capacity.
    weight: f64,
    capacity: u64,
    price: f64,
    pue: f64,
    grid: f64,
}

/// Sites one after another until exactly `count` pools exist (the last site
/// may be cut short). The capacities are set later by `size_pools`.
fn draft_pools(table: &[RegionRow], count: usize, rng: &mut ChaCha8Rng) -> Vec<DraftPool> {
    let supply = Weighted::new(
        &table
            .iter()
            .map(|row| row.supply_weight)
            .collect::<Vec<_>>(),
    );
    let mut sites_in_region = vec![0usize; table.len()];
    let mut pools = Vec::with_capacity(count);
    while pools.len() < count {
        let region = supply.sample(rng);
        let row = &table[region];
        sites_in_region[region] += 1;
        let site = format!("{}-{:02}", row.id, sites_in_region[region]);
        let west = row.zone == Zone::West;
        let (price_range, pue_range, green_range, size) = match row.zone {
            Zone::West => (0.70..0.85, 1.15..1.25, 0.2..0.6, 1.6),
            Zone::East => (0.90..1.05, 1.22..1.35, 0.0..0.2, 1.0),
            Zone::City => (1.05..1.25, 1.30..1.50, 0.0..0.05, 0.4),
        };
        let price_multiplier = rng.random_range(price_range);
        let pue = round_to(rng.random_range(pue_range), 1e3);
        let green_share = rng.random_range(green_range);
        let grid = round_to(row.grid_kg_co2_per_kwh * (1.0 - green_share), 1e4);

        let site_type = pick(
            rng,
            &match row.zone {
                Zone::West => [
                    (SiteType::Ai, 0.45),
                    (SiteType::Cloud, 0.35),
                    (SiteType::Super, 0.20),
                ],
                Zone::East => [
                    (SiteType::Ai, 0.40),
                    (SiteType::Cloud, 0.45),
                    (SiteType::Super, 0.15),
                ],
                Zone::City => [
                    (SiteType::Ai, 0.35),
                    (SiteType::Cloud, 0.55),
                    (SiteType::Super, 0.10),
                ],
            },
        );
        let mut families = match site_type {
            SiteType::Cloud => {
                let k = if rng.random_bool(0.5) { 2 } else { 1 };
                let mut families = draw_families(rng, Kind::Cpu, k, west);
                if rng.random_bool(0.3) {
                    families.extend(draw_families(rng, Kind::Gpu, 1, west));
                }
                families
            }
            SiteType::Ai => {
                let k = pick(rng, &[(1, 0.35), (2, 0.40), (3, 0.25)]);
                let mut families = draw_families(rng, Kind::Gpu, k, west);
                if rng.random_bool(0.6) {
                    families.extend(draw_families(rng, Kind::Cpu, 1, west));
                }
                families
            }
            SiteType::Super => {
                let k = if rng.random_bool(0.3) { 2 } else { 1 };
                let mut families = draw_families(rng, Kind::Hpc, k, west);
                if rng.random_bool(0.5) {
                    families.extend(draw_families(rng, Kind::Cpu, 1, west));
                }
                if rng.random_bool(0.25) {
                    families.extend(draw_families(rng, Kind::Gpu, 1, west));
                }
                families
            }
        };
        families.sort_unstable();
        for family in families {
            let jitter = rng.random_range(0.95..1.05);
            let weight = size * 2f64.powf(rng.random_range(-2.0..2.0));
            if pools.len() < count {
                pools.push(DraftPool {
                    site: site.clone(),
                    region,
                    family,
                    weight,
                    capacity: 0,
                    price: round_to(FAMILIES[family].list_price * price_multiplier * jitter, 1e4),
                    pue,
                    grid,
                });
            }
        }
    }
    pools
}

/// Demand over supply, in units, per kind.
struct DemandRatios {
    cpu: f64,
    gpu: f64,
    hpc: f64,
}

/// Gives each kind a total capacity of `demand / ratio` units, shared among
/// its pools by weight (or a nominal size per pool where nobody demands the
/// kind), every pool at least one unit.
fn size_pools(pools: &mut [DraftPool], classes: &[DraftClass], ratios: &DemandRatios) {
    for kind in Kind::ALL {
        let (ratio, nominal_per_pool) = match kind {
            Kind::Cpu => (ratios.cpu, 8_000.0),
            Kind::Gpu => (ratios.gpu, 500.0),
            Kind::Hpc => (ratios.hpc, 200.0),
        };
        let of_kind = |pool: &&mut DraftPool| FAMILIES[pool.family].kind == kind;
        let (pool_count, weight_sum) = pools
            .iter_mut()
            .filter(of_kind)
            .fold((0usize, 0.0), |(n, sum), pool| (n + 1, sum + pool.weight));
        if pool_count == 0 {
            continue;
        }
        let demand: u64 = classes
            .iter()
            .filter(|class| class.kind == kind)
            .map(|class| class.count * class.units)
            .sum();
        let total = if demand > 0 {
            demand as f64 / ratio
        } else {
            nominal_per_pool * pool_count as f64
        };
        for pool in pools.iter_mut().filter(of_kind) {
            pool.capacity = ((total * pool.weight / weight_sum).round() as u64).max(1);
        }
    }
}

// ---------------------------------------------------------------------------
// Classes.

struct DraftClass {
    tenant: usize,
    kind: Kind,
    families: Vec<usize>,
    count: u64,
    units: u64,
    hours: f64,
    bid: f64,
    origin: usize,
    max_latency_ms: Option<f64>,
    data_region: usize,
    data_gb: f64,
    allowed_regions: Option<Vec<usize>>,
    gang: bool,
}

/// Classes per tenant, on average.
const CLASSES_PER_TENANT: usize = 25;

fn draft_classes(
    table: &[RegionRow],
    distance_km: &[f64],
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<DraftClass> {
    let n = table.len();
    let demand = Weighted::new(
        &table
            .iter()
            .map(|row| row.demand_weight)
            .collect::<Vec<_>>(),
    );
    let supply = Weighted::new(
        &table
            .iter()
            .map(|row| row.supply_weight)
            .collect::<Vec<_>>(),
    );
    let tenants = count.div_ceil(CLASSES_PER_TENANT).max(1);
    let tenant_home: Vec<usize> = (0..tenants).map(|_| demand.sample(rng)).collect();

    (0..count)
        .map(|_| {
            let kind = pick(
                rng,
                &[(Kind::Cpu, 0.45), (Kind::Gpu, 0.45), (Kind::Hpc, 0.10)],
            );
            // Few big tenants, many small ones: tenant = floor(T * u^2).
            let u: f64 = rng.random();
            let tenant = ((tenants as f64 * u * u) as usize).min(tenants - 1);
            let origin = if rng.random_bool(0.8) {
                tenant_home[tenant]
            } else {
                demand.sample(rng)
            };
            let gang = rng.random_bool(match kind {
                Kind::Cpu => 0.05,
                Kind::Gpu => 0.35,
                Kind::Hpc => 0.30,
            });
            let units = match (kind, gang) {
                (Kind::Cpu, _) => pick(
                    rng,
                    &[
                        (1, 4.0),
                        (2, 6.0),
                        (4, 10.0),
                        (8, 16.0),
                        (16, 20.0),
                        (32, 18.0),
                        (64, 16.0),
                        (128, 10.0),
                    ],
                ),
                (Kind::Gpu, false) => pick(rng, &[(1, 40.0), (2, 12.0), (4, 13.0), (8, 35.0)]),
                (Kind::Gpu, true) => pick(rng, &[(1, 5.0), (2, 5.0), (4, 10.0), (8, 80.0)]),
                (Kind::Hpc, false) => pick(
                    rng,
                    &[
                        (1, 30.0),
                        (2, 22.0),
                        (4, 18.0),
                        (8, 14.0),
                        (16, 9.0),
                        (32, 5.0),
                        (64, 2.0),
                    ],
                ),
                (Kind::Hpc, true) => pick(rng, &[(1, 30.0), (2, 30.0), (4, 25.0), (8, 15.0)]),
            };
            let count = if gang {
                pick(
                    rng,
                    &[
                        (2, 30.0),
                        (4, 30.0),
                        (8, 20.0),
                        (16, 12.0),
                        (32, 6.0),
                        (64, 2.0),
                    ],
                )
            } else {
                // Heavy tail: floor(2^(bits * u^1.3)), on 1..=256 (mean about
                // 37, median 10) or, for HPC, on 1..=64 (mean about 11).
                let bits = if kind == Kind::Hpc { 6.0 } else { 8.0 };
                let u: f64 = rng.random();
                (2f64.powf(bits * u.powf(1.3)).floor() as u64).clamp(1, 1 << bits as u32)
            };
            let hours = match (kind, gang) {
                (Kind::Cpu, _) => log_uniform(rng, 0.1, 100.0),
                (Kind::Gpu, false) => log_uniform(rng, 0.1, 300.0),
                (Kind::Gpu, true) => log_uniform(rng, 10.0, 1000.0),
                (Kind::Hpc, _) => log_uniform(rng, 0.3, 300.0),
            };
            let data_gb = if kind == Kind::Gpu && gang {
                log_uniform(rng, 10.0, 500.0)
            } else {
                log_uniform(rng, 0.1, 500.0)
            };
            let data_region = if rng.random_bool(0.85) {
                origin
            } else {
                supply.sample(rng)
            };
            let families = if rng.random_bool(0.6) {
                Vec::new()
            } else {
                let k = pick(rng, &[(1, 0.50), (2, 0.35), (3, 0.15)]);
                draw_families(rng, kind, k, false)
            };
            let max_latency_ms = if rng.random_bool(0.25) {
                Some(pick(rng, &[(3.0, 0.2), (10.0, 0.4), (20.0, 0.4)]))
            } else {
                None
            };
            let allowed_regions = if rng.random_bool(0.05) {
                let radius_km = pick(rng, &[(500.0, 1.0), (1000.0, 1.0), (1500.0, 1.0)]);
                Some(
                    (0..n)
                        .filter(|&r| distance_km[data_region * n + r] <= radius_km)
                        .collect(),
                )
            } else {
                None
            };
            let reference_price = if families.is_empty() {
                let range = family_range(kind);
                let len = range.len() as f64;
                range.map(|spec| FAMILIES[spec].list_price).sum::<f64>() / len
            } else {
                families
                    .iter()
                    .map(|&spec| FAMILIES[spec].list_price)
                    .sum::<f64>()
                    / families.len() as f64
            };
            let u: f64 = rng.random();
            let markup = 0.8 + 2.2 * u * u;
            DraftClass {
                tenant,
                kind,
                families,
                count,
                units,
                hours,
                bid: round_to(reference_price * markup, 1e4),
                origin,
                max_latency_ms,
                data_region,
                data_gb,
                allowed_regions,
                gang,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::limits;
    use std::collections::BTreeSet;

    fn params(pools: usize, classes: usize, seed: u64) -> GenParams {
        GenParams {
            pools,
            classes,
            seed,
        }
    }

    fn finite_non_negative(value: f64) -> bool {
        value.is_finite() && value >= 0.0
    }

    /// Every invariant of `model::Problem`, plus the generator's own ranges.
    fn assert_valid(problem: &Problem) {
        let n = problem.regions.len();
        assert_eq!(problem.latency_ms.len(), n * n);
        assert_eq!(problem.transfer_yuan_per_gb.len(), n * n);
        assert!(problem.latency_ms.iter().all(|&v| finite_non_negative(v)));
        assert!(problem
            .transfer_yuan_per_gb
            .iter()
            .all(|&v| finite_non_negative(v)));
        assert!(finite_non_negative(problem.carbon_yuan_per_kg));
        let ids: BTreeSet<&str> = problem.regions.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.len(), n);
        for region in &problem.regions {
            assert!(region
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
            assert!(region.lat_deg.is_finite() && region.lon_deg.is_finite());
        }
        let families: BTreeSet<&str> = problem.families.iter().map(String::as_str).collect();
        assert_eq!(families.len(), problem.families.len());

        let ids: BTreeSet<&str> = problem.pools.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids.len(), problem.pools.len(), "pool ids unique");
        for pool in &problem.pools {
            assert!(pool.region < n && pool.family < problem.families.len());
            assert!(pool.id.len() <= limits::ID_BYTES_MAX);
            assert!(pool.id.starts_with(&format!("{}/", pool.site)));
            assert!(pool.site.starts_with(&problem.regions[pool.region].id));
            let family = &problem.families[pool.family];
            assert_eq!(
                pool.id,
                format!("{}/{}-{}", pool.site, pool.kind.as_str(), family)
            );
            assert!(family_range(pool.kind).any(|spec| FAMILIES[spec].name == family));
            assert!(pool.capacity >= 1 && pool.capacity <= limits::CAPACITY_MAX);
            assert!(
                pool.price_yuan_per_unit_hour > 0.0 && pool.price_yuan_per_unit_hour.is_finite()
            );
            assert!(pool.power_kw_per_unit > 0.0 && pool.power_kw_per_unit.is_finite());
            assert!(pool.pue >= 1.0 && pool.pue <= 1.5);
            assert!(pool.grid_kg_co2_per_kwh > 0.0 && pool.grid_kg_co2_per_kwh < 1.0);
        }

        let ids: BTreeSet<&str> = problem.classes.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids.len(), problem.classes.len(), "class ids unique");
        for class in &problem.classes {
            assert!(class.origin < n && class.data_region < n);
            assert!(class.count >= 1 && class.count <= 256);
            assert!(class.units >= 1 && class.units <= 128);
            assert!(class.hours >= 0.1 && class.hours <= 1000.0);
            assert!(class.data_gb >= 0.1 && class.data_gb <= 500.0);
            assert!(class.bid_yuan_per_unit_hour > 0.0 && class.bid_yuan_per_unit_hour.is_finite());
            assert!(
                class.families.windows(2).all(|w| w[0] < w[1]),
                "families sorted unique"
            );
            for &family in &class.families {
                assert!(family < problem.families.len());
                let name = &problem.families[family];
                assert!(family_range(class.kind).any(|spec| FAMILIES[spec].name == name));
            }
            if let Some(latency) = class.max_latency_ms {
                assert!([3.0, 10.0, 20.0]
                    .iter()
                    .any(|&tier| (latency - tier).abs() < 1e-9));
            }
            if let Some(allowed) = &class.allowed_regions {
                assert!(!allowed.is_empty());
                assert!(
                    allowed.windows(2).all(|w| w[0] < w[1]),
                    "allowed sorted unique"
                );
                assert!(allowed.iter().all(|&r| r < n));
                assert!(allowed.binary_search(&class.data_region).is_ok());
            }
            if class.gang {
                assert!((2..=64).contains(&class.count));
            }
        }
    }

    fn units_by_kind(problem: &Problem) -> ([u64; 3], [u64; 3]) {
        let index = |kind: Kind| Kind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
        let mut supply = [0; 3];
        let mut demand = [0; 3];
        for pool in &problem.pools {
            supply[index(pool.kind)] += pool.capacity;
        }
        for class in &problem.classes {
            demand[index(class.kind)] += class.count * class.units;
        }
        (supply, demand)
    }

    #[test]
    fn region_table_parses_and_ids_are_unique() {
        let table = region_table();
        assert!(table.len() >= 35);
        let ids: BTreeSet<&str> = table.iter().map(|row| row.id).collect();
        assert_eq!(ids.len(), table.len());
        for row in &table {
            assert!((18.0..=54.0).contains(&row.lat_deg) && (73.0..=135.0).contains(&row.lon_deg));
            assert!(row.grid_kg_co2_per_kwh > 0.0 && row.grid_kg_co2_per_kwh < 1.0);
            assert!(row.supply_weight > 0.0 && row.demand_weight > 0.0);
        }
        for hub in [
            "zhangjiakou",
            "horinger",
            "guian",
            "zhongwei",
            "qingyang",
            "lingshui",
            "shaoguan",
            "wuhu",
        ] {
            assert!(ids.contains(hub), "{hub}");
        }
    }

    #[test]
    fn latency_matches_the_shared_fibre_model() {
        // hub_pairwise_distance_rtt_model.csv: jjj (Zhangjiakou) - jjj-lf
        // (Langfang) 210.4 km, direct-fibre RTT 4.09 ms; jjj - sh (Shanghai)
        // 1216.2 km, 18.89 ms.
        let d = haversine_km(40.78341, 114.87139, 39.52079, 116.71471);
        assert!((d - 210.4).abs() < 0.5, "{d}");
        assert!((latency_ms(d) - 4.09 / 2.0).abs() < 0.02);
        let d = haversine_km(40.78341, 114.87139, 31.22222, 121.45806);
        assert!((d - 1216.2).abs() < 0.5, "{d}");
        assert!((latency_ms(d) - 18.89 / 2.0).abs() < 0.02);
        assert!((transfer_yuan_per_gb(1000.0) - 0.09).abs() < 1e-9);
        assert!((transfer_yuan_per_gb(5000.0) - TRANSFER_CAP_YUAN_PER_GB).abs() < 1e-9);
    }

    #[test]
    fn matrices_are_symmetric_with_a_local_diagonal() {
        let problem = generate(&params(10, 10, 1));
        let n = problem.region_count();
        for i in 0..n {
            assert!((problem.latency(i, i) - LOCAL_LATENCY_MS).abs() < 1e-12);
            assert!(problem.transfer(i, i).abs() < 1e-12);
            for j in 0..n {
                assert!((problem.latency(i, j) - problem.latency(j, i)).abs() < 1e-12);
                assert!((problem.transfer(i, j) - problem.transfer(j, i)).abs() < 1e-12);
                if i != j {
                    assert!(problem.latency(i, j) > LOCAL_LATENCY_MS);
                    assert!(problem.transfer(i, j) >= TRANSFER_BASE_YUAN_PER_GB);
                }
            }
        }
    }

    #[test]
    fn same_seed_same_problem_and_different_seeds_differ() {
        let a = generate(&params(60, 300, 7));
        assert_eq!(a, generate(&params(60, 300, 7)));
        assert_ne!(a, generate(&params(60, 300, 8)));
    }

    #[test]
    fn counts_are_exact_and_values_valid() {
        for (pools, classes) in [
            (0, 0),
            (0, 25),
            (9, 0),
            (1, 1),
            (2, 3),
            (7, 13),
            (60, 300),
            (500, 5_000),
        ] {
            for seed in [0, 1, 42] {
                let problem = generate(&params(pools, classes, seed));
                assert_eq!(problem.pools.len(), pools);
                assert_eq!(problem.classes.len(), classes);
                assert_valid(&problem);
            }
        }
    }

    #[test]
    fn pools_do_not_depend_on_classes_except_capacity() {
        let small = generate(&params(60, 10, 3));
        let big = generate(&params(60, 1_000, 3));
        let strip = |problem: &Problem| -> Vec<(String, usize, f64)> {
            problem
                .pools
                .iter()
                .map(|pool| (pool.id.clone(), pool.region, pool.price_yuan_per_unit_hour))
                .collect()
        };
        assert_eq!(strip(&small), strip(&big));
    }

    #[test]
    fn demand_exceeds_supply_for_gpu_but_not_for_cpu() {
        for seed in [0, 1, 2, 3] {
            let problem = generate(&params(500, 5_000, seed));
            let (supply, demand) = units_by_kind(&problem);
            let ratio = |k: usize| demand[k] as f64 / supply[k] as f64;
            assert!(
                (1.3..=2.0).contains(&ratio(1)),
                "gpu demand/supply {}",
                ratio(1)
            );
            assert!(
                (0.7..=1.2).contains(&ratio(0)),
                "cpu demand/supply {}",
                ratio(0)
            );
            assert!(
                (0.85..=1.45).contains(&ratio(2)),
                "hpc demand/supply {}",
                ratio(2)
            );
        }
    }

    #[test]
    fn the_mix_looks_like_the_brief() {
        let problem = generate(&params(500, 5_000, 11));
        let classes = problem.classes.len() as f64;
        let share = |f: &dyn Fn(&Class) -> bool| {
            problem.classes.iter().filter(|c| f(c)).count() as f64 / classes
        };
        assert!((0.40..0.50).contains(&share(&|c| c.kind == Kind::Gpu)));
        assert!((0.07..0.13).contains(&share(&|c| c.kind == Kind::Hpc)));
        assert!((0.15..0.25).contains(&share(&|c| c.gang)));
        assert!((0.70..0.80).contains(&share(&|c| c.max_latency_ms.is_none())));
        assert!((0.03..0.07).contains(&share(&|c| c.allowed_regions.is_some())));
        assert!((0.55..0.65).contains(&share(&|c| c.families.is_empty())));
        // Some 3 ms classes can run somewhere, and some cannot.
        let tight: Vec<&Class> = problem
            .classes
            .iter()
            .filter(|c| c.max_latency_ms == Some(3.0))
            .collect();
        let served = tight
            .iter()
            .filter(|c| problem.pools.iter().any(|p| problem.feasible(c, p)))
            .count();
        assert!(
            served > 0 && served < tight.len(),
            "{served} of {}",
            tight.len()
        );
        // Western hubs are cheaper than metro clouds.
        let mean_gpu_price = |zone_ids: &[&str]| {
            let prices: Vec<f64> = problem
                .pools
                .iter()
                .filter(|p| {
                    p.kind == Kind::Gpu && zone_ids.contains(&problem.regions[p.region].id.as_str())
                })
                .map(|p| p.price_yuan_per_unit_hour)
                .collect();
            prices.iter().sum::<f64>() / prices.len() as f64
        };
        assert!(
            mean_gpu_price(&["guian", "zhongwei", "qingyang", "horinger"])
                < mean_gpu_price(&["beijing", "shanghai", "shenzhen", "guangzhou", "hangzhou"])
        );
    }

    #[test]
    fn size_l_has_about_one_and_a_half_million_tasks() {
        let problem = generate(&params(5_000, 50_000, 0));
        assert_eq!(problem.pools.len(), 5_000);
        assert_eq!(problem.classes.len(), 50_000);
        let tasks = problem.task_count();
        assert!((1_200_000..=1_800_000).contains(&tasks), "{tasks} tasks");
    }
}

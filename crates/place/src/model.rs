//! The domain model of one scheduling round: regions, pools, classes, and a
//! solution. Indices instead of ids: the reader resolves every id once, so
//! the solver never hashes a string.
//!
//! These types are not serialisable on purpose: only `format` knows JSON, and
//! it converts between its wire types and these (see ARCHITECTURE.md).

/// Limits on everything the reader accepts. An input beyond them is rejected
/// with a clear error instead of exhausting memory or overflowing `u64`.
pub mod limits {
    pub const REGIONS_MAX: usize = 4_096;
    pub const POOLS_MAX: usize = 1_000_000;
    pub const CLASSES_MAX: usize = 10_000_000;
    pub const FAMILIES_PER_CLASS_MAX: usize = 64;
    /// Units of a pool: 10^12 keeps every `count * units` sum far below u64::MAX.
    pub const CAPACITY_MAX: u64 = 1_000_000_000_000;
    pub const COUNT_MAX: u64 = 1_000_000_000;
    pub const UNITS_MAX: u64 = 1_000_000;
    /// Ids are names, not documents.
    pub const ID_BYTES_MAX: usize = 256;
}

/// Kind of compute a pool sells and a class needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// General compute (通算); unit = one core.
    Cpu,
    /// AI accelerators (智算); unit = one accelerator.
    Gpu,
    /// Supercomputer nodes (超算); unit = one node.
    Hpc,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Cpu, Kind::Gpu, Kind::Hpc];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cpu => "cpu",
            Kind::Gpu => "gpu",
            Kind::Hpc => "hpc",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    pub id: String,
    pub name: String,
    pub lat_deg: f64,
    pub lon_deg: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Pool {
    pub id: String,
    pub site: String,
    pub region: usize,
    pub kind: Kind,
    /// Index into `Problem::families`.
    pub family: usize,
    pub capacity: u64,
    pub price_yuan_per_unit_hour: f64,
    pub power_kw_per_unit: f64,
    pub pue: f64,
    pub grid_kg_co2_per_kwh: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Class {
    pub id: String,
    pub tenant: String,
    pub kind: Kind,
    /// Indices into `Problem::families`, sorted and unique; empty means any.
    pub families: Vec<usize>,
    pub count: u64,
    pub units: u64,
    pub hours: f64,
    pub bid_yuan_per_unit_hour: f64,
    pub origin: usize,
    pub max_latency_ms: Option<f64>,
    pub data_region: usize,
    pub data_gb: f64,
    /// Region indices, sorted and unique; `None` means anywhere.
    pub allowed_regions: Option<Vec<usize>>,
    pub gang: bool,
}

impl Class {
    /// Units one placement of this class occupies in one pool at once: a gang
    /// is indivisible, so it moves as a single block of `count * units`.
    pub fn block_units(&self) -> u64 {
        if self.gang {
            self.count * self.units
        } else {
            self.units
        }
    }
}

/// One scheduling round. Invariants (established by `format::read_problem`;
/// the generator's tests check its output too): ids unique per table, matrices
/// square in region order, every index in range, every number finite and
/// non-negative, counts, units and hours positive.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub regions: Vec<Region>,
    /// Row-major `regions.len() x regions.len()`.
    pub latency_ms: Vec<f64>,
    /// Row-major `regions.len() x regions.len()`, yuan per GB from row to column.
    pub transfer_yuan_per_gb: Vec<f64>,
    pub carbon_yuan_per_kg: f64,
    /// Interned family names, in first-seen order (pools, then classes).
    pub families: Vec<String>,
    pub pools: Vec<Pool>,
    pub classes: Vec<Class>,
}

impl Problem {
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    pub fn latency(&self, from: usize, to: usize) -> f64 {
        self.latency_ms[from * self.regions.len() + to]
    }

    pub fn transfer(&self, from: usize, to: usize) -> f64 {
        self.transfer_yuan_per_gb[from * self.regions.len() + to]
    }

    /// Carbon cost of one unit-hour in pool `p`, yuan.
    pub fn carbon_yuan_per_unit_hour(&self, pool: &Pool) -> f64 {
        pool.power_kw_per_unit * pool.pue * pool.grid_kg_co2_per_kwh * self.carbon_yuan_per_kg
    }

    /// Why class `c` may not use pool `p`, or `None` when it may. The order
    /// of the checks is the order of the filters in explanations.
    pub fn infeasibility(&self, class: &Class, pool: &Pool) -> Option<Filter> {
        if let Some(filter) = self.site_infeasibility(class, pool.region, pool.kind, pool.family) {
            return Some(filter);
        }
        if class.gang && class.count * class.units > pool.capacity {
            return Some(Filter::GangTooBig);
        }
        None
    }

    /// The filters that depend only on where a pool is and what it sells,
    /// not on its size: the same for every pool of one (region, kind, family).
    pub fn site_infeasibility(
        &self,
        class: &Class,
        region: usize,
        kind: Kind,
        family: usize,
    ) -> Option<Filter> {
        if class.kind != kind {
            return Some(Filter::Kind);
        }
        if !class.families.is_empty() && class.families.binary_search(&family).is_err() {
            return Some(Filter::Family);
        }
        if let Some(latency_ms_max) = class.max_latency_ms {
            if self.latency(class.origin, region) > latency_ms_max {
                return Some(Filter::Latency);
            }
        }
        if let Some(allowed) = &class.allowed_regions {
            if allowed.binary_search(&region).is_err() {
                return Some(Filter::Residency);
            }
        }
        None
    }

    pub fn feasible(&self, class: &Class, pool: &Pool) -> bool {
        self.infeasibility(class, pool).is_none()
    }

    /// List price plus carbon cost of one unit-hour in `pool`, yuan.
    pub fn unit_cost_yuan_per_hour(&self, pool: &Pool) -> f64 {
        pool.price_yuan_per_unit_hour + self.carbon_yuan_per_unit_hour(pool)
    }

    /// Data-transfer cost per hour of one task of `class` in `region`, yuan.
    pub fn transfer_yuan_per_hour(&self, class: &Class, region: usize) -> f64 {
        class.data_gb * self.transfer(class.data_region, region) / class.hours
    }

    /// `s(c,p)`: welfare per hour of running one task of `class` in `pool`.
    /// The solver computes the same expression from the same parts in the
    /// same order, so its welfare and `check`'s agree to the bit.
    pub fn surplus(&self, class: &Class, pool: &Pool) -> f64 {
        class.units as f64 * (class.bid_yuan_per_unit_hour - self.unit_cost_yuan_per_hour(pool))
            - self.transfer_yuan_per_hour(class, pool.region)
    }

    pub fn task_count(&self) -> u64 {
        self.classes.iter().map(|class| class.count).sum()
    }
}

/// A feasibility filter: the reason a pool is not a candidate for a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Filter {
    Kind,
    Family,
    Latency,
    Residency,
    GangTooBig,
}

impl Filter {
    pub const ALL: [Filter; 5] = [
        Filter::Kind,
        Filter::Family,
        Filter::Latency,
        Filter::Residency,
        Filter::GangTooBig,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Filter::Kind => "kind",
            Filter::Family => "family",
            Filter::Latency => "latency",
            Filter::Residency => "residency",
            Filter::GangTooBig => "gang-too-big",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Filter::Kind => "pool sells another kind of compute",
            Filter::Family => "chip family not accepted",
            Filter::Latency => "outside the latency circle from the origin",
            Filter::Residency => "region not allowed for the data",
            Filter::GangTooBig => "the whole gang does not fit in the pool",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Assignment {
    pub class: usize,
    pub pool: usize,
    pub count: u64,
}

/// A placement: assignments sorted by (class, pool) with positive counts and
/// at most one entry per pair, and one congestion price per pool.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    pub assignments: Vec<Assignment>,
    /// Congestion price per pool, yuan per unit-hour on top of the list price.
    pub prices_yuan_per_unit_hour: Vec<f64>,
}

impl Solution {
    pub fn empty(problem: &Problem) -> Solution {
        Solution {
            assignments: Vec::new(),
            prices_yuan_per_unit_hour: vec![0.0; problem.pools.len()],
        }
    }
}

//! The placement formats of `FORMAT.md`: the problem `suanwang.placement/v1`
//! and the solution `suanwang.placement-solution/v1`. Strict readers that
//! name the JSON path and the rule of every error, and deterministic writers.
//!
//! Reading is two passes: a small strict JSON parser of this module turns
//! the text into a borrowed tree, then a hand-written walk validates the tree
//! and resolves every id to an index. Either the whole problem comes back or
//! an error does; no input makes the reader panic.
//!
//! Why not `serde_json::Value`: without its `float_roundtrip` feature
//! serde_json does not round decimal numbers correctly (a written problem
//! could read back one ulp off, breaking `read(write(p)) == p`), `Value`
//! silently keeps the last of two equal keys, and its errors do not name the
//! path. The parser here keeps each number's text and converts it with the
//! standard library, which rounds correctly.
//!
//! Writing goes through serde_json, with serialisable twins of the model whose
//! fields are declared in `FORMAT.md` order, so the output is byte-identical
//! for equal inputs.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::Write as _;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::model::limits;
use crate::model::{Assignment, Class, Kind, Pool, Problem, Region, Solution};

/// The `format` value of a problem file.
pub const PROBLEM_FORMAT: &str = "suanwang.placement/v1";
/// The `format` value of a solution file.
pub const SOLUTION_FORMAT: &str = "suanwang.placement-solution/v1";

/// Arrays and objects nested deeper than this are rejected before they can
/// exhaust the stack; the formats themselves need four levels.
const DEPTH_MAX: usize = 64;
/// User text quoted in an error message is cut to this many characters, so a
/// hostile input cannot make a megabyte-long message.
const QUOTE_CHARS_MAX: usize = 64;

/// Why a file was rejected: the JSON path of the offending value (`$`,
/// `.field`, `[index]`, `["odd key"]`) and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {rule}")]
pub struct FormatError {
    pub path: String,
    pub rule: String,
}

// ---------------------------------------------------------------------------
// Reading the problem
// ---------------------------------------------------------------------------

const PROBLEM_FIELDS: &[&str] = &[
    "format",
    "regions",
    "latency_ms",
    "transfer_yuan_per_gb",
    "carbon_yuan_per_kg",
    "pools",
    "classes",
];
const REGION_FIELDS: &[&str] = &["id", "name", "lat", "lon"];
const POOL_FIELDS: &[&str] = &[
    "id",
    "site",
    "region",
    "kind",
    "family",
    "capacity",
    "price_yuan_per_unit_hour",
    "power_kw_per_unit",
    "pue",
    "grid_kg_co2_per_kwh",
];
const CLASS_FIELDS: &[&str] = &[
    "id",
    "tenant",
    "kind",
    "families",
    "count",
    "units",
    "hours",
    "bid_yuan_per_unit_hour",
    "origin",
    "max_latency_ms",
    "data_region",
    "data_gb",
    "allowed_regions",
    "gang",
];
const SOLUTION_FIELDS: &[&str] = &["format", "assignments", "prices"];
const ASSIGNMENT_FIELDS: &[&str] = &["class", "pool", "count"];

/// Reads a `suanwang.placement/v1` problem, validating every rule of
/// `FORMAT.md` and the limits of [`limits`].
pub fn read_problem(json: &str) -> Result<Problem, FormatError> {
    let root = parse(json)?;
    let path = Path::Root;
    check_format(&root, &path, PROBLEM_FORMAT)?;
    let fields = Fields::new(&root, &path, PROBLEM_FIELDS)?;

    let (regions, region_index) = read_regions(&fields)?;
    let latency_ms = read_matrix(&fields, "latency_ms", regions.len())?;
    let transfer_yuan_per_gb = read_matrix(&fields, "transfer_yuan_per_gb", regions.len())?;
    let carbon_yuan_per_kg = fields.number("carbon_yuan_per_kg", Bound::AtLeast(0.0))?;
    let mut families = Interner::default();
    let pools = read_pools(&fields, &region_index, &mut families)?;
    let classes = read_classes(&fields, &region_index, &mut families)?;

    Ok(Problem {
        regions,
        latency_ms,
        transfer_yuan_per_gb,
        carbon_yuan_per_kg,
        families: families.names,
        pools,
        classes,
    })
}

fn read_regions<'j>(
    fields: &Fields<'j, '_, '_>,
) -> Result<(Vec<Region>, HashMap<&'j str, usize>), FormatError> {
    let (value, path) = fields.get("regions")?;
    let items = as_array(value, &path)?;
    check_len(items, &path, limits::REGIONS_MAX)?;
    let mut regions = Vec::with_capacity(items.len());
    let mut index = HashMap::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let item_path = path.index(position);
        let region = Fields::new(item, &item_path, REGION_FIELDS)?;
        let id = region.id("id")?;
        insert_unique(&mut index, id, position, &path)?;
        regions.push(Region {
            id: id.to_owned(),
            name: region.str("name")?.to_owned(),
            lat_deg: region.number("lat", Bound::Between(-90.0, 90.0))?,
            lon_deg: region.number("lon", Bound::Between(-180.0, 180.0))?,
        });
    }
    Ok((regions, index))
}

/// A square matrix in region order, flattened row-major.
fn read_matrix(fields: &Fields, name: &'static str, n: usize) -> Result<Vec<f64>, FormatError> {
    let (value, path) = fields.get(name)?;
    let rows = as_array(value, &path)?;
    if rows.len() != n {
        return Err(path.error(format!(
            "matrix must be {n} x {n} (one row per region), found {} rows",
            rows.len()
        )));
    }
    let mut matrix = Vec::with_capacity(n * n);
    for (i, row) in rows.iter().enumerate() {
        let row_path = path.index(i);
        let entries = as_array(row, &row_path)?;
        if entries.len() != n {
            return Err(row_path.error(format!(
                "row must have {n} entries (one per region), found {}",
                entries.len()
            )));
        }
        for (j, entry) in entries.iter().enumerate() {
            matrix.push(as_number(entry, &row_path.index(j), Bound::AtLeast(0.0))?);
        }
    }
    Ok(matrix)
}

fn read_pools<'j>(
    fields: &Fields<'j, '_, '_>,
    region_index: &HashMap<&str, usize>,
    families: &mut Interner<'j>,
) -> Result<Vec<Pool>, FormatError> {
    let (value, path) = fields.get("pools")?;
    let items = as_array(value, &path)?;
    check_len(items, &path, limits::POOLS_MAX)?;
    let mut pools = Vec::with_capacity(items.len());
    let mut index = HashMap::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let item_path = path.index(position);
        let pool = Fields::new(item, &item_path, POOL_FIELDS)?;
        let id = pool.id("id")?;
        insert_unique(&mut index, id, position, &path)?;
        pools.push(Pool {
            id: id.to_owned(),
            site: pool.id("site")?.to_owned(),
            region: pool.region("region", region_index)?,
            kind: pool.kind("kind")?,
            family: families.intern(pool.id("family")?),
            capacity: pool.whole("capacity", 0, limits::CAPACITY_MAX)?,
            price_yuan_per_unit_hour: pool
                .number("price_yuan_per_unit_hour", Bound::AtLeast(0.0))?,
            power_kw_per_unit: pool.number("power_kw_per_unit", Bound::AtLeast(0.0))?,
            pue: pool.number("pue", Bound::AtLeast(1.0))?,
            grid_kg_co2_per_kwh: pool.number("grid_kg_co2_per_kwh", Bound::AtLeast(0.0))?,
        });
    }
    Ok(pools)
}

fn read_classes<'j>(
    fields: &Fields<'j, '_, '_>,
    region_index: &HashMap<&str, usize>,
    families: &mut Interner<'j>,
) -> Result<Vec<Class>, FormatError> {
    let (value, path) = fields.get("classes")?;
    let items = as_array(value, &path)?;
    check_len(items, &path, limits::CLASSES_MAX)?;
    let mut classes = Vec::with_capacity(items.len());
    let mut index = HashMap::with_capacity(items.len());
    // `region_seen[r] == position + 1` when class `position` lists region `r`:
    // finds duplicates in `allowed_regions` in linear time without clearing.
    let mut region_seen = vec![0usize; region_index.len()];
    for (position, item) in items.iter().enumerate() {
        let item_path = path.index(position);
        let class = Fields::new(item, &item_path, CLASS_FIELDS)?;
        let id = class.id("id")?;
        insert_unique(&mut index, id, position, &path)?;
        let tenant = class.id("tenant")?;
        let kind = class.kind("kind")?;
        let class_families = read_class_families(&class, families)?;
        let count = class.whole("count", 1, limits::COUNT_MAX)?;
        let units = class.whole("units", 1, limits::UNITS_MAX)?;
        let hours = class.number("hours", Bound::Above(0.0))?;
        let bid_yuan_per_unit_hour = class.number("bid_yuan_per_unit_hour", Bound::AtLeast(0.0))?;
        let origin = class.region("origin", region_index)?;
        let max_latency_ms = {
            let (value, latency_path) = class.get("max_latency_ms")?;
            match value {
                Json::Null => None,
                Json::Number(_) => Some(as_number(value, &latency_path, Bound::AtLeast(0.0))?),
                other => return Err(type_error(other, &latency_path, "null or a number")),
            }
        };
        let data_region = class.region("data_region", region_index)?;
        let data_gb = class.number("data_gb", Bound::AtLeast(0.0))?;
        let allowed_regions =
            read_allowed_regions(&class, region_index, &mut region_seen, position + 1)?;
        let gang = class.boolean("gang")?;
        // count <= 10^9 and units <= 10^6, so the product cannot overflow.
        let block = count * units;
        if block > limits::CAPACITY_MAX {
            return Err(item_path.error(format!(
                "count * units must be <= {}, found {block}",
                limits::CAPACITY_MAX
            )));
        }
        classes.push(Class {
            id: id.to_owned(),
            tenant: tenant.to_owned(),
            kind,
            families: class_families,
            count,
            units,
            hours,
            bid_yuan_per_unit_hour,
            origin,
            max_latency_ms,
            data_region,
            data_gb,
            allowed_regions,
            gang,
        });
    }
    Ok(classes)
}

/// Family indices, sorted and unique; names no pool has are interned too.
fn read_class_families<'j>(
    class: &Fields<'j, '_, '_>,
    families: &mut Interner<'j>,
) -> Result<Vec<usize>, FormatError> {
    let (value, path) = class.get("families")?;
    let items = as_array(value, &path)?;
    check_len(items, &path, limits::FAMILIES_PER_CLASS_MAX)?;
    let mut indices = Vec::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let item_path = path.index(position);
        let name = as_id(item, &item_path)?;
        let family = families.intern(name);
        // At most FAMILIES_PER_CLASS_MAX entries: a linear scan is cheapest.
        if indices.contains(&family) {
            return Err(item_path.error(format!("duplicate family {}", quote(name))));
        }
        indices.push(family);
    }
    indices.sort_unstable();
    Ok(indices)
}

fn read_allowed_regions(
    class: &Fields,
    region_index: &HashMap<&str, usize>,
    region_seen: &mut [usize],
    stamp: usize,
) -> Result<Option<Vec<usize>>, FormatError> {
    let (value, path) = class.get("allowed_regions")?;
    let items = match value {
        Json::Null => return Ok(None),
        Json::Array(items) => items,
        other => return Err(type_error(other, &path, "null or an array")),
    };
    let mut regions = Vec::with_capacity(items.len().min(region_seen.len()));
    for (position, item) in items.iter().enumerate() {
        let item_path = path.index(position);
        let id = as_str(item, &item_path)?;
        let region = lookup_region(region_index, id, &item_path)?;
        match region_seen.get_mut(region) {
            Some(seen) if *seen == stamp => {
                return Err(item_path.error(format!("duplicate region id {}", quote(id))));
            }
            Some(seen) => *seen = stamp,
            None => return Err(item_path.error("region index out of range")),
        }
        regions.push(region);
    }
    regions.sort_unstable();
    Ok(Some(regions))
}

/// Family names in first-seen order.
#[derive(Default)]
struct Interner<'j> {
    index: HashMap<&'j str, usize>,
    names: Vec<String>,
}

impl<'j> Interner<'j> {
    fn intern(&mut self, name: &'j str) -> usize {
        let names = &mut self.names;
        *self.index.entry(name).or_insert_with(|| {
            names.push(name.to_owned());
            names.len() - 1
        })
    }
}

fn insert_unique<'j>(
    index: &mut HashMap<&'j str, usize>,
    id: &'j str,
    position: usize,
    table: &Path,
) -> Result<(), FormatError> {
    match index.entry(id) {
        Entry::Occupied(first) => {
            let first_path = table.index(*first.get());
            let first_id = first_path.field("id");
            let here = table.index(position);
            Err(here.field("id").error(format!(
                "duplicate id {} (first at {})",
                quote(id),
                first_id.render()
            )))
        }
        Entry::Vacant(slot) => {
            slot.insert(position);
            Ok(())
        }
    }
}

fn lookup_region(
    region_index: &HashMap<&str, usize>,
    id: &str,
    path: &Path,
) -> Result<usize, FormatError> {
    region_index
        .get(id)
        .copied()
        .ok_or_else(|| path.error(format!("unknown region id {}", quote(id))))
}

fn check_len(items: &[Json], path: &Path, max: usize) -> Result<(), FormatError> {
    if items.len() > max {
        return Err(path.error(format!(
            "must have at most {max} entries, found {}",
            items.len()
        )));
    }
    Ok(())
}

/// Checks `format` before anything else, so that a file of another version
/// is reported as such instead of as a pile of unknown fields.
fn check_format(root: &Json, path: &Path, expected: &str) -> Result<(), FormatError> {
    let Json::Object(entries) = root else {
        return Err(type_error(root, path, "an object"));
    };
    let format_path = path.field("format");
    let Some((_, value)) = entries.iter().find(|(key, _)| key == "format") else {
        return Err(format_path.error(format!("missing field (expected {})", quote(expected))));
    };
    let found = as_str(value, &format_path)?;
    if found != expected {
        return Err(format_path.error(format!(
            "unsupported format {}, expected {}",
            quote(found),
            quote(expected)
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading a solution
// ---------------------------------------------------------------------------

/// Reads a `suanwang.placement-solution/v1` solution of `problem`: resolves
/// ids, rejects duplicate (class, pool) pairs, zero counts and bad prices, and
/// sorts the assignments by (class, pool). Pools missing from `prices` get
/// price 0. Capacity and feasibility are not checked here (see `check`).
pub fn read_solution(json: &str, problem: &Problem) -> Result<Solution, FormatError> {
    let root = parse(json)?;
    let path = Path::Root;
    check_format(&root, &path, SOLUTION_FORMAT)?;
    let fields = Fields::new(&root, &path, SOLUTION_FIELDS)?;

    let class_index: HashMap<&str, usize> = problem
        .classes
        .iter()
        .enumerate()
        .map(|(position, class)| (class.id.as_str(), position))
        .collect();
    let pool_index: HashMap<&str, usize> = problem
        .pools
        .iter()
        .enumerate()
        .map(|(position, pool)| (pool.id.as_str(), position))
        .collect();

    let (value, assignments_path) = fields.get("assignments")?;
    let items = as_array(value, &assignments_path)?;
    let mut assignments = Vec::with_capacity(items.len());
    let mut first_at: HashMap<(usize, usize), usize> = HashMap::with_capacity(items.len());
    for (position, item) in items.iter().enumerate() {
        let item_path = assignments_path.index(position);
        let entry = Fields::new(item, &item_path, ASSIGNMENT_FIELDS)?;
        let (class_value, class_path) = entry.get("class")?;
        let class_id = as_str(class_value, &class_path)?;
        let class = class_index
            .get(class_id)
            .copied()
            .ok_or_else(|| class_path.error(format!("unknown class id {}", quote(class_id))))?;
        let (pool_value, pool_path) = entry.get("pool")?;
        let pool_id = as_str(pool_value, &pool_path)?;
        let pool = pool_index
            .get(pool_id)
            .copied()
            .ok_or_else(|| pool_path.error(format!("unknown pool id {}", quote(pool_id))))?;
        let count = entry.whole("count", 1, limits::COUNT_MAX)?;
        match first_at.entry((class, pool)) {
            Entry::Occupied(first) => {
                return Err(item_path.error(format!(
                    "duplicate assignment of class {} to pool {} (first at {})",
                    quote(class_id),
                    quote(pool_id),
                    assignments_path.index(*first.get()).render()
                )));
            }
            Entry::Vacant(slot) => {
                slot.insert(position);
            }
        }
        assignments.push(Assignment { class, pool, count });
    }
    // Pairs are unique, so this orders by (class, pool) alone.
    assignments.sort_unstable();

    let (value, prices_path) = fields.get("prices")?;
    let entries = as_object(value, &prices_path)?;
    let mut prices = vec![0.0; problem.pools.len()];
    let mut priced = vec![false; problem.pools.len()];
    for (key, price) in entries {
        let price_path = prices_path.field(key);
        let pool = pool_index
            .get(key.as_ref())
            .copied()
            .ok_or_else(|| price_path.error(format!("unknown pool id {}", quote(key))))?;
        match priced.get_mut(pool) {
            Some(seen) if *seen => {
                return Err(price_path.error(format!("duplicate pool id {}", quote(key))));
            }
            Some(seen) => *seen = true,
            None => return Err(price_path.error("pool index out of range")),
        }
        let price = as_number(price, &price_path, Bound::AtLeast(0.0))?;
        if let Some(slot) = prices.get_mut(pool) {
            *slot = price;
        }
    }

    Ok(Solution {
        assignments,
        prices_yuan_per_unit_hour: prices,
    })
}

// ---------------------------------------------------------------------------
// Walking the tree
// ---------------------------------------------------------------------------

/// The fields of one JSON object with a fixed set of allowed names.
struct Fields<'j, 'a, 'p> {
    names: &'static [&'static str],
    values: [Option<&'j Json<'a>>; FIELDS_MAX],
    path: &'p Path<'p>,
}

/// The most fields of any object in the formats (a class has 14).
const FIELDS_MAX: usize = 16;

impl<'j, 'a, 'p> Fields<'j, 'a, 'p> {
    /// Rejects unknown and repeated keys, in document order.
    fn new(
        value: &'j Json<'a>,
        path: &'p Path<'p>,
        names: &'static [&'static str],
    ) -> Result<Self, FormatError> {
        debug_assert!(names.len() <= FIELDS_MAX);
        let entries = as_object(value, path)?;
        let mut values = [None; FIELDS_MAX];
        for (key, value) in entries {
            let slot = names
                .iter()
                .position(|name| *name == key.as_ref())
                .and_then(|position| values.get_mut(position));
            match slot {
                None => return Err(path.field(key).error("unknown field")),
                Some(Some(_)) => return Err(path.field(key).error("duplicate field")),
                Some(slot) => *slot = Some(value),
            }
        }
        Ok(Fields {
            names,
            values,
            path,
        })
    }

    fn get(&self, name: &'static str) -> Result<(&'j Json<'a>, Path<'p>), FormatError> {
        let path = Path::Field(self.path, name);
        let value = self
            .names
            .iter()
            .position(|known| *known == name)
            .and_then(|position| self.values.get(position))
            .copied()
            .flatten();
        match value {
            Some(value) => Ok((value, path)),
            None => Err(path.error("missing field")),
        }
    }

    fn str(&self, name: &'static str) -> Result<&'j str, FormatError> {
        let (value, path) = self.get(name)?;
        as_str(value, &path)
    }

    fn id(&self, name: &'static str) -> Result<&'j str, FormatError> {
        let (value, path) = self.get(name)?;
        as_id(value, &path)
    }

    fn whole(&self, name: &'static str, min: u64, max: u64) -> Result<u64, FormatError> {
        let (value, path) = self.get(name)?;
        as_whole(value, &path, min, max)
    }

    fn number(&self, name: &'static str, bound: Bound) -> Result<f64, FormatError> {
        let (value, path) = self.get(name)?;
        as_number(value, &path, bound)
    }

    fn boolean(&self, name: &'static str) -> Result<bool, FormatError> {
        let (value, path) = self.get(name)?;
        match value {
            Json::Bool(flag) => Ok(*flag),
            other => Err(type_error(other, &path, "a boolean")),
        }
    }

    fn kind(&self, name: &'static str) -> Result<Kind, FormatError> {
        let (value, path) = self.get(name)?;
        let text = as_str(value, &path)?;
        Kind::parse(text).ok_or_else(|| {
            path.error(format!(
                "unknown kind {}, expected cpu, gpu or hpc",
                quote(text)
            ))
        })
    }

    fn region(
        &self,
        name: &'static str,
        region_index: &HashMap<&str, usize>,
    ) -> Result<usize, FormatError> {
        let (value, path) = self.get(name)?;
        let id = as_str(value, &path)?;
        lookup_region(region_index, id, &path)
    }
}

fn type_error(value: &Json, path: &Path, expected: &str) -> FormatError {
    path.error(format!("expected {expected}, found {}", value.kind_name()))
}

fn as_object<'j, 'a>(
    value: &'j Json<'a>,
    path: &Path,
) -> Result<&'j [(Cow<'a, str>, Json<'a>)], FormatError> {
    match value {
        Json::Object(entries) => Ok(entries),
        other => Err(type_error(other, path, "an object")),
    }
}

fn as_array<'j, 'a>(value: &'j Json<'a>, path: &Path) -> Result<&'j [Json<'a>], FormatError> {
    match value {
        Json::Array(items) => Ok(items),
        other => Err(type_error(other, path, "an array")),
    }
}

fn as_str<'j>(value: &'j Json, path: &Path) -> Result<&'j str, FormatError> {
    match value {
        Json::String(text) => Ok(text),
        other => Err(type_error(other, path, "a string")),
    }
}

/// A name used as a key: non-empty and at most `ID_BYTES_MAX` bytes.
fn as_id<'j>(value: &'j Json, path: &Path) -> Result<&'j str, FormatError> {
    let text = as_str(value, path)?;
    if text.is_empty() {
        return Err(path.error("must not be empty"));
    }
    if text.len() > limits::ID_BYTES_MAX {
        return Err(path.error(format!(
            "must be at most {} bytes, found {}",
            limits::ID_BYTES_MAX,
            text.len()
        )));
    }
    Ok(text)
}

fn as_whole(value: &Json, path: &Path, min: u64, max: u64) -> Result<u64, FormatError> {
    let Json::Number(raw) = value else {
        return Err(type_error(value, path, "a whole number"));
    };
    match parse_whole(raw) {
        Whole::Fraction => Err(path.error("must be a whole number")),
        Whole::Negative => Err(path.error(format!("must be >= {min}"))),
        Whole::TooLarge => Err(path.error(format!("must be <= {max}"))),
        Whole::Value(whole) if whole < min => Err(path.error(format!("must be >= {min}"))),
        Whole::Value(whole) if whole > max => Err(path.error(format!("must be <= {max}"))),
        Whole::Value(whole) => Ok(whole),
    }
}

/// The range a finite number must lie in.
#[derive(Clone, Copy)]
enum Bound {
    AtLeast(f64),
    Above(f64),
    Between(f64, f64),
}

fn as_number(value: &Json, path: &Path, bound: Bound) -> Result<f64, FormatError> {
    let Json::Number(raw) = value else {
        return Err(type_error(value, path, "a number"));
    };
    let Ok(number) = raw.parse::<f64>() else {
        return Err(path.error("expected a number"));
    };
    if !number.is_finite() {
        return Err(path.error("must be a finite number"));
    }
    let ok = match bound {
        Bound::AtLeast(min) => number >= min,
        Bound::Above(min) => number > min,
        Bound::Between(min, max) => (min..=max).contains(&number),
    };
    if !ok {
        return Err(path.error(match bound {
            Bound::AtLeast(min) => format!("must be >= {min}"),
            Bound::Above(min) => format!("must be > {min}"),
            Bound::Between(min, max) => format!("must be between {min} and {max}"),
        }));
    }
    // Adding +0.0 turns -0.0 into +0.0, so equal files give equal output.
    Ok(number + 0.0)
}

#[derive(Debug, PartialEq, Eq)]
enum Whole {
    Value(u64),
    Negative,
    Fraction,
    TooLarge,
}

/// Reads the text of a JSON number (already checked against the grammar) as
/// an exact whole number: `16`, `16.0` and `1.6e1` are 16, `16.5` and
/// `1e-400` are fractions. Exact on the decimal digits, so no rounding can
/// turn a fraction into a whole number.
fn parse_whole(raw: &str) -> Whole {
    let (negative, unsigned) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw),
    };
    let (mantissa, exponent_text) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));

    if exponent_text.is_none() && fraction.is_empty() {
        let is_zero = integer.bytes().all(|digit| digit == b'0');
        return match integer.parse::<u64>() {
            _ if is_zero => Whole::Value(0),
            _ if negative => Whole::Negative,
            Ok(value) => Whole::Value(value),
            Err(_) => Whole::TooLarge,
        };
    }

    let exponent = exponent_text.map_or(0, parse_exponent);
    let digits: Vec<u8> = integer.bytes().chain(fraction.bytes()).collect();
    let Some(first) = digits.iter().position(|&digit| digit != b'0') else {
        return Whole::Value(0);
    };
    let last = digits
        .iter()
        .rposition(|&digit| digit != b'0')
        .unwrap_or(first);
    let trailing_zeros = digits.len() - 1 - last;
    // value = significant * 10^scale
    let scale = exponent
        .saturating_sub(i64::try_from(fraction.len()).unwrap_or(i64::MAX))
        .saturating_add(i64::try_from(trailing_zeros).unwrap_or(i64::MAX));
    if scale < 0 {
        return Whole::Fraction;
    }
    if negative {
        return Whole::Negative;
    }
    let significant = digits.get(first..=last).unwrap_or(&[]);
    // u64::MAX has 20 digits.
    if i64::try_from(significant.len()).map_or(true, |len| len.saturating_add(scale) > 20) {
        return Whole::TooLarge;
    }
    let mut value: u64 = 0;
    for &digit in significant {
        match value
            .checked_mul(10)
            .and_then(|value| value.checked_add(u64::from(digit.saturating_sub(b'0'))))
        {
            Some(next) => value = next,
            None => return Whole::TooLarge,
        }
    }
    for _ in 0..scale {
        match value.checked_mul(10) {
            Some(next) => value = next,
            None => return Whole::TooLarge,
        }
    }
    Whole::Value(value)
}

/// The exponent of a JSON number, saturating far beyond any useful range.
fn parse_exponent(text: &str) -> i64 {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, text.get(1..).unwrap_or("")),
        Some(b'+') => (false, text.get(1..).unwrap_or("")),
        _ => (false, text),
    };
    let magnitude = digits.bytes().fold(0i64, |value, digit| {
        value
            .saturating_mul(10)
            .saturating_add(i64::from(digit.saturating_sub(b'0')))
    });
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

/// Quotes user text for an error message: escaped, and cut if long.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4 * QUOTE_CHARS_MAX) + 2);
    out.push('\'');
    for (count, ch) in text.chars().enumerate() {
        if count == QUOTE_CHARS_MAX {
            out.push('…');
            break;
        }
        out.extend(ch.escape_debug());
    }
    out.push('\'');
    out
}

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

/// Where a value sits in the document, built on the stack as the walk
/// descends and rendered only for an error.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Field(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    fn field(&'p self, name: &'p str) -> Path<'p> {
        Path::Field(self, name)
    }

    fn index(&'p self, position: usize) -> Path<'p> {
        Path::Index(self, position)
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out);
        out
    }

    fn render_into(&self, out: &mut String) {
        match self {
            Path::Root => out.push('$'),
            Path::Field(parent, name) => {
                parent.render_into(out);
                let plain = name.len() <= QUOTE_CHARS_MAX
                    && name.bytes().enumerate().all(|(i, byte)| {
                        byte == b'_'
                            || byte.is_ascii_alphabetic()
                            || (i > 0 && byte.is_ascii_digit())
                    })
                    && !name.is_empty();
                if plain {
                    out.push('.');
                    out.push_str(name);
                } else {
                    out.push('[');
                    push_json_string(out, name);
                    out.push(']');
                }
            }
            Path::Index(parent, position) => {
                parent.render_into(out);
                let _ = write!(out, "[{position}]");
            }
        }
    }

    fn error(&self, rule: impl Into<String>) -> FormatError {
        FormatError {
            path: self.render(),
            rule: rule.into(),
        }
    }
}

/// A JSON string literal of `text`, cut to `QUOTE_CHARS_MAX` characters.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for (count, ch) in text.chars().enumerate() {
        if count == QUOTE_CHARS_MAX {
            out.push('…');
            break;
        }
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ch if u32::from(ch) < 0x20 || ch == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(ch));
            }
            ch => out.push(ch),
        }
    }
    out.push('"');
}

// ---------------------------------------------------------------------------
// The JSON parser
// ---------------------------------------------------------------------------

/// A parsed JSON value borrowing from the text. Numbers keep their text, so
/// each field converts them exactly as its rule needs; strings borrow unless
/// they contain escapes; objects keep their entries in document order,
/// repeated keys included (the walk rejects them).
#[derive(Debug)]
enum Json<'a> {
    Null,
    Bool(bool),
    Number(&'a str),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl Json<'_> {
    fn kind_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }
}

/// Parses strict JSON (RFC 8259; a leading byte order mark is skipped).
fn parse(text: &str) -> Result<Json<'_>, FormatError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    parser.skip_whitespace();
    let value = parser.value()?;
    parser.skip_whitespace();
    if parser.pos < parser.bytes.len() {
        return Err(parser.error("trailing characters after the JSON value"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// A syntax error at the current position, with line and column
    /// (1-based, the column in characters).
    fn error(&self, message: &str) -> FormatError {
        let mut end = self.pos.min(self.text.len());
        while !self.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = self.text.get(..end).unwrap_or("");
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let line = before.bytes().filter(|&byte| byte == b'\n').count() + 1;
        let column = before.get(line_start..).unwrap_or("").chars().count() + 1;
        FormatError {
            path: String::from("$"),
            rule: format!("invalid JSON at line {line} column {column}: {message}"),
        }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn slice(&self, start: usize, end: usize) -> Result<&'a str, FormatError> {
        self.text
            .get(start..end)
            .ok_or_else(|| self.error("invalid UTF-8 boundary"))
    }

    fn value(&mut self) -> Result<Json<'a>, FormatError> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("expected a value")),
            None => Err(self.error("unexpected end of input, expected a value")),
        }
    }

    fn literal(&mut self, word: &str, value: Json<'a>) -> Result<Json<'a>, FormatError> {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn enter(&mut self) -> Result<(), FormatError> {
        self.depth += 1;
        if self.depth > DEPTH_MAX {
            return Err(self.error(&format!("nested deeper than {DEPTH_MAX} levels")));
        }
        self.pos += 1;
        Ok(())
    }

    fn array(&mut self) -> Result<Json<'a>, FormatError> {
        self.enter()?;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value()?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => return Err(self.error("expected ',' or ']'")),
                None => return Err(self.error("unexpected end of input, expected ',' or ']'")),
            }
        }
        self.depth -= 1;
        Ok(Json::Array(items))
    }

    fn object(&mut self) -> Result<Json<'a>, FormatError> {
        self.enter()?;
        let mut entries = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.skip_whitespace();
            match self.peek() {
                Some(b'"') => {}
                Some(_) => return Err(self.error("expected a string key")),
                None => return Err(self.error("unexpected end of input, expected a string key")),
            }
            let key = self.string()?;
            self.skip_whitespace();
            match self.peek() {
                Some(b':') => self.pos += 1,
                Some(_) => return Err(self.error("expected ':'")),
                None => return Err(self.error("unexpected end of input, expected ':'")),
            }
            self.skip_whitespace();
            let value = self.value()?;
            entries.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    break;
                }
                Some(_) => return Err(self.error("expected ',' or '}'")),
                None => return Err(self.error("unexpected end of input, expected ',' or '}'")),
            }
        }
        self.depth -= 1;
        Ok(Json::Object(entries))
    }

    /// A string starting at the opening quote. Borrows unless it has escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, FormatError> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                Some(b'"') => {
                    let text = self.slice(start, self.pos)?;
                    self.pos += 1;
                    return Ok(Cow::Borrowed(text));
                }
                Some(b'\\') => break,
                Some(0x00..=0x1f) => return Err(self.error("control character in a string")),
                Some(_) => self.pos += 1,
                None => return Err(self.error("unexpected end of input in a string")),
            }
        }
        let mut owned = String::from(self.slice(start, self.pos)?);
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(owned));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    self.escape(&mut owned)?;
                }
                Some(0x00..=0x1f) => return Err(self.error("control character in a string")),
                Some(_) => {
                    let run = self.pos;
                    while let Some(byte) = self.peek() {
                        if byte == b'"' || byte == b'\\' || byte < 0x20 {
                            break;
                        }
                        self.pos += 1;
                    }
                    owned.push_str(self.slice(run, self.pos)?);
                }
                None => return Err(self.error("unexpected end of input in a string")),
            }
        }
    }

    /// One escape, just after its backslash.
    fn escape(&mut self, out: &mut String) -> Result<(), FormatError> {
        let ch = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                out.push(self.unicode_escape()?);
                return Ok(());
            }
            Some(_) => return Err(self.error("invalid escape")),
            None => return Err(self.error("unexpected end of input in a string")),
        };
        self.pos += 1;
        out.push(ch);
        Ok(())
    }

    /// `\uXXXX`, just after the `u`; a surrogate pair must come whole.
    fn unicode_escape(&mut self) -> Result<char, FormatError> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u".as_slice()) {
                    return Err(self.error("unpaired surrogate in \\u escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(self.error("unpaired surrogate in \\u escape"));
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(self.error("unpaired surrogate in \\u escape")),
            _ => first,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, FormatError> {
        let mut code = 0;
        for _ in 0..4 {
            let digit = self.peek().and_then(|byte| char::from(byte).to_digit(16));
            let Some(digit) = digit else {
                return Err(self.error("invalid \\u escape, expected 4 hex digits"));
            };
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    fn digits(&mut self) -> bool {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        self.pos > start
    }

    fn number(&mut self) -> Result<Json<'a>, FormatError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number, expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.digits() {
                return Err(self.error("invalid number, expected a digit after '.'"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.digits() {
                return Err(self.error("invalid number, expected a digit in the exponent"));
            }
        }
        Ok(Json::Number(self.slice(start, self.pos)?))
    }
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// Writes `problem` as compact one-line JSON with a trailing newline, fields
/// in `FORMAT.md` order. `read_problem(&write_problem(p)) == Ok(p)` for every
/// valid problem.
///
/// # Panics
///
/// If `problem` breaks its invariants (an index out of range).
pub fn write_problem(problem: &Problem) -> String {
    let n = problem.regions.len();
    finish(serde_json::to_string(&ProblemOut {
        format: PROBLEM_FORMAT,
        regions: RegionsOut(&problem.regions),
        latency_ms: MatrixOut {
            values: &problem.latency_ms,
            n,
        },
        transfer_yuan_per_gb: MatrixOut {
            values: &problem.transfer_yuan_per_gb,
            n,
        },
        carbon_yuan_per_kg: problem.carbon_yuan_per_kg,
        pools: PoolsOut(problem),
        classes: ClassesOut(problem),
    }))
}

/// Writes `solution` of `problem` as compact one-line JSON with a trailing
/// newline: assignments in the given order, then the price of every pool in
/// pool order (pools beyond the solution's price list get 0).
///
/// # Panics
///
/// If an assignment names a class or pool index that `problem` lacks.
pub fn write_solution(solution: &Solution, problem: &Problem) -> String {
    finish(serde_json::to_string(&SolutionOut {
        format: SOLUTION_FORMAT,
        assignments: AssignmentsOut { solution, problem },
        prices: PricesOut { solution, problem },
    }))
}

fn finish(result: serde_json::Result<String>) -> String {
    // The twins below only hold strings, numbers and sequences, and every map
    // key is a string: serialising them cannot fail.
    let mut text = result.expect("serialising the placement format cannot fail");
    text.push('\n');
    text
}

#[derive(Serialize)]
struct ProblemOut<'a> {
    format: &'static str,
    regions: RegionsOut<'a>,
    latency_ms: MatrixOut<'a>,
    transfer_yuan_per_gb: MatrixOut<'a>,
    carbon_yuan_per_kg: f64,
    pools: PoolsOut<'a>,
    classes: ClassesOut<'a>,
}

#[derive(Serialize)]
struct RegionOut<'a> {
    id: &'a str,
    name: &'a str,
    lat: f64,
    lon: f64,
}

struct RegionsOut<'a>(&'a [Region]);

impl Serialize for RegionsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|region| RegionOut {
            id: &region.id,
            name: &region.name,
            lat: region.lat_deg,
            lon: region.lon_deg,
        }))
    }
}

/// A row-major `n x n` matrix as an array of rows.
struct MatrixOut<'a> {
    values: &'a [f64],
    n: usize,
}

impl Serialize for MatrixOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.n == 0 {
            return serializer.collect_seq(std::iter::empty::<&[f64]>());
        }
        serializer.collect_seq(self.values.chunks(self.n))
    }
}

#[derive(Serialize)]
struct PoolOut<'a> {
    id: &'a str,
    site: &'a str,
    region: &'a str,
    kind: &'static str,
    family: &'a str,
    capacity: u64,
    price_yuan_per_unit_hour: f64,
    power_kw_per_unit: f64,
    pue: f64,
    grid_kg_co2_per_kwh: f64,
}

struct PoolsOut<'a>(&'a Problem);

impl Serialize for PoolsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let problem = self.0;
        serializer.collect_seq(problem.pools.iter().map(|pool| PoolOut {
            id: &pool.id,
            site: &pool.site,
            region: &problem.regions[pool.region].id,
            kind: pool.kind.as_str(),
            family: &problem.families[pool.family],
            capacity: pool.capacity,
            price_yuan_per_unit_hour: pool.price_yuan_per_unit_hour,
            power_kw_per_unit: pool.power_kw_per_unit,
            pue: pool.pue,
            grid_kg_co2_per_kwh: pool.grid_kg_co2_per_kwh,
        }))
    }
}

#[derive(Serialize)]
struct ClassOut<'a> {
    id: &'a str,
    tenant: &'a str,
    kind: &'static str,
    families: NamesOut<'a>,
    count: u64,
    units: u64,
    hours: f64,
    bid_yuan_per_unit_hour: f64,
    origin: &'a str,
    max_latency_ms: Option<f64>,
    data_region: &'a str,
    data_gb: f64,
    allowed_regions: Option<RegionIdsOut<'a>>,
    gang: bool,
}

struct ClassesOut<'a>(&'a Problem);

impl Serialize for ClassesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let problem = self.0;
        serializer.collect_seq(problem.classes.iter().map(|class| {
            ClassOut {
                id: &class.id,
                tenant: &class.tenant,
                kind: class.kind.as_str(),
                families: NamesOut {
                    names: &problem.families,
                    indices: &class.families,
                },
                count: class.count,
                units: class.units,
                hours: class.hours,
                bid_yuan_per_unit_hour: class.bid_yuan_per_unit_hour,
                origin: &problem.regions[class.origin].id,
                max_latency_ms: class.max_latency_ms,
                data_region: &problem.regions[class.data_region].id,
                data_gb: class.data_gb,
                allowed_regions: class
                    .allowed_regions
                    .as_deref()
                    .map(|indices| RegionIdsOut {
                        regions: &problem.regions,
                        indices,
                    }),
                gang: class.gang,
            }
        }))
    }
}

struct NamesOut<'a> {
    names: &'a [String],
    indices: &'a [usize],
}

impl Serialize for NamesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.indices.iter().map(|&index| &self.names[index]))
    }
}

struct RegionIdsOut<'a> {
    regions: &'a [Region],
    indices: &'a [usize],
}

impl Serialize for RegionIdsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.indices.iter().map(|&index| &self.regions[index].id))
    }
}

#[derive(Serialize)]
struct SolutionOut<'a> {
    format: &'static str,
    assignments: AssignmentsOut<'a>,
    prices: PricesOut<'a>,
}

#[derive(Serialize)]
struct AssignmentOut<'a> {
    class: &'a str,
    pool: &'a str,
    count: u64,
}

struct AssignmentsOut<'a> {
    solution: &'a Solution,
    problem: &'a Problem,
}

impl Serialize for AssignmentsOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let problem = self.problem;
        serializer.collect_seq(
            self.solution
                .assignments
                .iter()
                .map(|assignment| AssignmentOut {
                    class: &problem.classes[assignment.class].id,
                    pool: &problem.pools[assignment.pool].id,
                    count: assignment.count,
                }),
        )
    }
}

/// Every pool's price, in pool order (a map serialised by hand, because
/// serde_json's own maps would sort the keys).
struct PricesOut<'a> {
    solution: &'a Solution,
    problem: &'a Problem,
}

impl Serialize for PricesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let prices = &self.solution.prices_yuan_per_unit_hour;
        let mut map = serializer.serialize_map(Some(self.problem.pools.len()))?;
        for (position, pool) in self.problem.pools.iter().enumerate() {
            map.serialize_entry(&pool.id, &prices.get(position).copied().unwrap_or(0.0))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    fn base() -> Value {
        json!({
            "format": "suanwang.placement/v1",
            "regions": [
                {"id": "guian", "name": "Gui'an (Guizhou)", "lat": 26.45, "lon": 106.45},
                {"id": "shanghai", "name": "Shanghai", "lat": 31.23, "lon": 121.47}
            ],
            "latency_ms": [[0.3, 25.0], [25.0, 0.3]],
            "transfer_yuan_per_gb": [[0.0, 0.2], [0.2, 0.0]],
            "carbon_yuan_per_kg": 0.1,
            "pools": [
                {
                    "id": "guian-01/gpu-ascend", "site": "guian-01", "region": "guian",
                    "kind": "gpu", "family": "ascend", "capacity": 512,
                    "price_yuan_per_unit_hour": 5.1, "power_kw_per_unit": 0.4,
                    "pue": 1.2, "grid_kg_co2_per_kwh": 0.35
                },
                {
                    "id": "shanghai-01/cpu-x86", "site": "shanghai-01", "region": "shanghai",
                    "kind": "cpu", "family": "x86", "capacity": 0,
                    "price_yuan_per_unit_hour": 0.08, "power_kw_per_unit": 0.01,
                    "pue": 1.5, "grid_kg_co2_per_kwh": 0.6
                }
            ],
            "classes": [
                {
                    "id": "c17", "tenant": "t3", "kind": "gpu", "families": ["nvidia", "ascend"],
                    "count": 16, "units": 8, "hours": 72.0, "bid_yuan_per_unit_hour": 14.0,
                    "origin": "shanghai", "max_latency_ms": null,
                    "data_region": "shanghai", "data_gb": 120.0,
                    "allowed_regions": null, "gang": true
                },
                {
                    "id": "c18", "tenant": "t4", "kind": "cpu", "families": [],
                    "count": 100, "units": 1, "hours": 2.5, "bid_yuan_per_unit_hour": 0.2,
                    "origin": "guian", "max_latency_ms": 30.0,
                    "data_region": "guian", "data_gb": 0.5,
                    "allowed_regions": ["shanghai", "guian"], "gang": false
                }
            ]
        })
    }

    fn base_text() -> String {
        base().to_string()
    }

    /// The base problem with the value at a JSON pointer set (or added).
    fn with(pointer: &str, value: Value) -> String {
        let mut doc = base();
        let (parent, last) = pointer.rsplit_once('/').expect("pointer has a '/'");
        match doc.pointer_mut(parent).expect("parent exists") {
            Value::Object(map) => {
                map.insert(last.to_owned(), value);
            }
            Value::Array(items) => {
                items[last.parse::<usize>().expect("index")] = value;
            }
            other => panic!("cannot set {pointer} in {other}"),
        }
        doc.to_string()
    }

    /// The base problem with the value at a JSON pointer removed.
    fn without(pointer: &str) -> String {
        let mut doc = base();
        let (parent, last) = pointer.rsplit_once('/').expect("pointer has a '/'");
        match doc.pointer_mut(parent).expect("parent exists") {
            Value::Object(map) => {
                map.remove(last).expect("field exists");
            }
            other => panic!("cannot remove {pointer} from {other}"),
        }
        doc.to_string()
    }

    fn check_err(json: &str, expected: &str) {
        match read_problem(json) {
            Ok(_) => panic!("accepted, expected `{expected}`:\n{json}"),
            Err(error) => assert_eq!(error.to_string(), expected, "input:\n{json}"),
        }
    }

    #[test]
    fn rejects_bad_problems_with_path_and_rule() {
        let text = base_text();
        let cases: Vec<(String, &str)> = vec![
            (
                with("/pools/1/region", json!("mars")),
                "$.pools[1].region: unknown region id 'mars'",
            ),
            (
                with("/classes/0/origin", json!("贵安")),
                "$.classes[0].origin: unknown region id '贵安'",
            ),
            (
                with("/latency_ms", json!([[0.3, 25.0]])),
                "$.latency_ms: matrix must be 2 x 2 (one row per region), found 1 rows",
            ),
            (
                with("/transfer_yuan_per_gb/1", json!([0.2])),
                "$.transfer_yuan_per_gb[1]: row must have 2 entries (one per region), found 1",
            ),
            (
                with("/latency_ms/1/0", json!(-0.5)),
                "$.latency_ms[1][0]: must be >= 0",
            ),
            (
                with("/latency_ms/1", json!(7)),
                "$.latency_ms[1]: expected an array, found a number",
            ),
            (
                with("/classes/1/id", json!("c17")),
                "$.classes[1].id: duplicate id 'c17' (first at $.classes[0].id)",
            ),
            (
                with("/regions/1/id", json!("guian")),
                "$.regions[1].id: duplicate id 'guian' (first at $.regions[0].id)",
            ),
            (
                with("/pools/0/price_yuan_per_unit_hour", json!(-1.0)),
                "$.pools[0].price_yuan_per_unit_hour: must be >= 0",
            ),
            (with("/classes/0/count", json!(0)), "$.classes[0].count: must be >= 1"),
            (with("/classes/0/count", json!(-3)), "$.classes[0].count: must be >= 1"),
            (with("/classes/1/units", json!(0)), "$.classes[1].units: must be >= 1"),
            (
                with("/classes/0/count", json!(16.5)),
                "$.classes[0].count: must be a whole number",
            ),
            (
                with("/classes/1/units", json!(1_000_001)),
                "$.classes[1].units: must be <= 1000000",
            ),
            (
                with("/pools/0/capacity", json!(1e13)),
                "$.pools[0].capacity: must be <= 1000000000000",
            ),
            (
                with("/pools/0/capacity", json!("512")),
                "$.pools[0].capacity: expected a whole number, found a string",
            ),
            (
                with("/pools/0/colour", json!("red")),
                "$.pools[0].colour: unknown field",
            ),
            (
                with("/colour", json!("red")),
                "$.colour: unknown field",
            ),
            (
                with("/classes/0/max latency", json!(1)),
                "$.classes[0][\"max latency\"]: unknown field",
            ),
            (
                without("/pools/0/capacity"),
                "$.pools[0].capacity: missing field",
            ),
            (
                without("/classes"),
                "$.classes: missing field",
            ),
            (
                with("/format", json!("suanwang.placement/v2")),
                "$.format: unsupported format 'suanwang.placement/v2', expected 'suanwang.placement/v1'",
            ),
            (
                without("/format"),
                "$.format: missing field (expected 'suanwang.placement/v1')",
            ),
            (
                with("/format", json!(1)),
                "$.format: expected a string, found a number",
            ),
            (
                with("/classes/0/kind", json!("tpu")),
                "$.classes[0].kind: unknown kind 'tpu', expected cpu, gpu or hpc",
            ),
            (with("/pools/1/pue", json!(0.9)), "$.pools[1].pue: must be >= 1"),
            (with("/classes/0/hours", json!(0)), "$.classes[0].hours: must be > 0"),
            (
                with("/regions/0/lat", json!(91)),
                "$.regions[0].lat: must be between -90 and 90",
            ),
            (
                with("/regions/1/lon", json!(-180.5)),
                "$.regions[1].lon: must be between -180 and 180",
            ),
            (
                with("/regions/0/name", Value::Null),
                "$.regions[0].name: expected a string, found null",
            ),
            (with("/pools/0/id", json!("")), "$.pools[0].id: must not be empty"),
            (
                with("/pools/0/family", json!("x".repeat(257))),
                "$.pools[0].family: must be at most 256 bytes, found 257",
            ),
            (
                with("/classes/0/families", json!(["ascend", "ascend"])),
                "$.classes[0].families[1]: duplicate family 'ascend'",
            ),
            (
                with("/classes/0/families", json!("ascend")),
                "$.classes[0].families: expected an array, found a string",
            ),
            (
                with("/classes/0/families", json!(vec!["f"; 65])),
                "$.classes[0].families: must have at most 64 entries, found 65",
            ),
            (
                with("/classes/1/allowed_regions", json!(["guian", "guian"])),
                "$.classes[1].allowed_regions[1]: duplicate region id 'guian'",
            ),
            (
                with("/classes/1/allowed_regions", json!(["mars"])),
                "$.classes[1].allowed_regions[0]: unknown region id 'mars'",
            ),
            (
                with("/classes/1/allowed_regions", json!("guian")),
                "$.classes[1].allowed_regions: expected null or an array, found a string",
            ),
            (
                with("/classes/0/max_latency_ms", json!("fast")),
                "$.classes[0].max_latency_ms: expected null or a number, found a string",
            ),
            (
                with("/classes/0/max_latency_ms", json!(-1)),
                "$.classes[0].max_latency_ms: must be >= 0",
            ),
            (
                with("/classes/0/gang", json!(1)),
                "$.classes[0].gang: expected a boolean, found a number",
            ),
            (
                with("/classes/0/count", json!(1_000_000_000)).replace("\"units\":8", "\"units\":1000000"),
                "$.classes[0]: count * units must be <= 1000000000000, found 1000000000000000",
            ),
            (
                with("/pools", json!({})),
                "$.pools: expected an array, found an object",
            ),
            (
                text.replace("\"carbon_yuan_per_kg\":0.1", "\"carbon_yuan_per_kg\":1e400"),
                "$.carbon_yuan_per_kg: must be a finite number",
            ),
            (
                text.replace("\"gang\":true", "\"gang\":true,\"gang\":false"),
                "$.classes[0].gang: duplicate field",
            ),
            (String::from("[]"), "$: expected an object, found an array"),
            (
                String::new(),
                "$: invalid JSON at line 1 column 1: unexpected end of input, expected a value",
            ),
            (
                String::from(r#"{"format": "suanwang.placement/v1",}"#),
                "$: invalid JSON at line 1 column 36: expected a string key",
            ),
            (
                String::from("{\n  \"format\": tru\n}"),
                "$: invalid JSON at line 2 column 13: expected a value",
            ),
            (
                String::from("{\"format\": \"贵安\" 1}"),
                "$: invalid JSON at line 1 column 17: expected ',' or '}'",
            ),
            (
                String::from("{}\n  x"),
                "$: invalid JSON at line 2 column 3: trailing characters after the JSON value",
            ),
            (
                String::from("{\"format\": \"a\nb\"}"),
                "$: invalid JSON at line 1 column 14: control character in a string",
            ),
            (
                String::from(r#"{"format": "\ud800"}"#),
                "$: invalid JSON at line 1 column 19: unpaired surrogate in \\u escape",
            ),
            (
                String::from(r#"{"format": "\x"}"#),
                "$: invalid JSON at line 1 column 14: invalid escape",
            ),
            (
                String::from(r#"{"format": 01}"#),
                "$: invalid JSON at line 1 column 13: expected ',' or '}'",
            ),
            (
                String::from(r#"{"format": 1.}"#),
                "$: invalid JSON at line 1 column 14: invalid number, expected a digit after '.'",
            ),
            (
                String::from(r#"{"format": NaN}"#),
                "$: invalid JSON at line 1 column 12: expected a value",
            ),
            (
                "[".repeat(100),
                "$: invalid JSON at line 1 column 65: nested deeper than 64 levels",
            ),
        ];
        for (json, expected) in &cases {
            check_err(json, expected);
        }
    }

    #[test]
    fn reads_the_base_problem() {
        let problem = read_problem(&base_text()).expect("valid");
        assert_eq!(problem.regions.len(), 2);
        assert_eq!(problem.latency_ms, vec![0.3, 25.0, 25.0, 0.3]);
        // Pools first, in file order, then class families.
        assert_eq!(problem.families, vec!["ascend", "x86", "nvidia"]);
        let gang = &problem.classes[0];
        assert_eq!(gang.families, vec![0, 2]);
        assert_eq!(gang.kind, Kind::Gpu);
        assert_eq!(gang.max_latency_ms, None);
        assert_eq!(gang.origin, 1);
        assert_eq!(problem.classes[1].allowed_regions, Some(vec![0, 1]));
        assert_eq!(problem.classes[1].max_latency_ms, Some(30.0));
        assert_eq!(problem.pools[1].capacity, 0);
        // A gang larger than every pool is valid input: it is just unplaceable.
        let huge = read_problem(&with("/classes/0/count", json!(1000))).expect("valid");
        assert!(huge
            .pools
            .iter()
            .all(|pool| !huge.feasible(&huge.classes[0], pool)));
    }

    #[test]
    fn whole_numbers_may_be_written_as_exact_decimals() {
        for text in ["16", "16.0", "1.6e1", "160e-1", "0.16E+2", "16.000"] {
            let json = base_text().replace("\"count\":16", &format!("\"count\":{text}"));
            let problem = read_problem(&json).expect(text);
            assert_eq!(problem.classes[0].count, 16, "{text}");
        }
        let cases = [
            ("0", Whole::Value(0)),
            ("-0", Whole::Value(0)),
            ("-0.0e5", Whole::Value(0)),
            ("0e-400", Whole::Value(0)),
            ("18446744073709551615", Whole::Value(u64::MAX)),
            ("18446744073709551616", Whole::TooLarge),
            ("1e19", Whole::Value(10_000_000_000_000_000_000)),
            ("1e20", Whole::TooLarge),
            ("1e999999999999999999999", Whole::TooLarge),
            ("1e-999999999999999999999", Whole::Fraction),
            ("1000000000000.0000001", Whole::Fraction),
            ("-1", Whole::Negative),
            ("-1.5", Whole::Fraction),
            ("2.55e1", Whole::Fraction),
            ("2.50e2", Whole::Value(250)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_whole(text), expected, "{text}");
        }
    }

    #[test]
    fn round_trips_the_base_problem() {
        let problem = read_problem(&base_text()).expect("valid");
        let written = write_problem(&problem);
        assert!(written.ends_with("}\n") && written.lines().count() == 1);
        assert_eq!(read_problem(&written).expect("valid"), problem);
        assert_eq!(
            write_problem(&read_problem(&written).expect("valid")),
            written
        );
        // Fields in FORMAT.md order.
        assert!(written.starts_with(
            "{\"format\":\"suanwang.placement/v1\",\"regions\":[{\"id\":\"guian\",\"name\":"
        ));
        assert!(written.contains(
            "{\"id\":\"c17\",\"tenant\":\"t3\",\"kind\":\"gpu\",\"families\":[\"ascend\",\"nvidia\"],\
             \"count\":16,\"units\":8,\"hours\":72.0,\"bid_yuan_per_unit_hour\":14.0,\
             \"origin\":\"shanghai\",\"max_latency_ms\":null,\"data_region\":\"shanghai\",\
             \"data_gb\":120.0,\"allowed_regions\":null,\"gang\":true}"
        ));
    }

    #[test]
    fn round_trips_floats_exactly() {
        let tricky = [
            0.300_000_000_000_000_04,
            5e-324,
            2.225_073_858_507_201e-308,
            1.797_693_134_862_315_7e308,
            0.1 + 0.2,
            1.0 / 3.0,
            9_007_199_254_740_993.0,
            123_456_789.123_456_79,
        ];
        let mut problem = read_problem(&base_text()).expect("valid");
        for value in tricky {
            problem.pools[0].price_yuan_per_unit_hour = value;
            problem.classes[1].data_gb = value;
            problem.latency_ms[1] = value;
            let written = write_problem(&problem);
            assert_eq!(read_problem(&written).expect("valid"), problem, "{value:e}");
        }
    }

    #[test]
    fn unicode_ids_work() {
        let json = base_text()
            .replace("guian-01/gpu-ascend", "贵安-01/gpu")
            .replace("\"guian\"", "\"贵安\"")
            .replace("\"c18\"", "\"渲染-任务\"");
        let problem = read_problem(&json).expect("valid");
        assert_eq!(problem.pools[0].id, "贵安-01/gpu");
        assert_eq!(problem.regions[0].id, "贵安");
        assert_eq!(
            read_problem(&write_problem(&problem)).expect("valid"),
            problem
        );
        // Escaped forms of the same text read the same.
        let escaped = json.replace("贵安-01/gpu", "\\u8d35\\u5b89-01\\/gpu");
        assert_eq!(read_problem(&escaped).expect("valid"), problem);
        let solution = read_solution(
            r#"{"format":"suanwang.placement-solution/v1",
                "assignments":[{"class":"渲染-任务","pool":"贵安-01/gpu","count":1}],
                "prices":{"贵安-01/gpu":0.5}}"#,
            &problem,
        )
        .expect("valid");
        assert_eq!(
            solution.assignments,
            vec![Assignment {
                class: 1,
                pool: 0,
                count: 1
            }]
        );
        let error = read_solution(
            r#"{"format":"suanwang.placement-solution/v1","assignments":[],
                "prices":{"贵安-02/gpu":0.5}}"#,
            &problem,
        )
        .expect_err("unknown pool");
        assert_eq!(
            error.to_string(),
            "$.prices[\"贵安-02/gpu\"]: unknown pool id '贵安-02/gpu'"
        );
    }

    fn example(name: &str) -> String {
        let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
    }

    #[test]
    fn reads_and_round_trips_the_examples() {
        for (name, pools, classes) in [("national-s.json", 60, 300), ("national-m.json", 500, 5000)]
        {
            let problem =
                read_problem(&example(name)).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(problem.pools.len(), pools, "{name}");
            assert_eq!(problem.classes.len(), classes, "{name}");
            assert_eq!(problem.regions.len(), 40, "{name}");
            let written = write_problem(&problem);
            let again = read_problem(&written).expect("written problem reads back");
            assert_eq!(again, problem, "{name}");
            assert_eq!(write_problem(&again), written, "{name}");
        }
        let s = read_problem(&example("national-s.json")).expect("valid");
        assert_eq!(s.task_count(), 8_343);
    }

    fn check_solution_err(json: &str, expected: &str) {
        let problem = read_problem(&base_text()).expect("valid");
        match read_solution(json, &problem) {
            Ok(_) => panic!("accepted, expected `{expected}`:\n{json}"),
            Err(error) => assert_eq!(error.to_string(), expected, "input:\n{json}"),
        }
    }

    fn solution_with(assignments: &str, prices: &str) -> String {
        format!(
            "{{\"format\":\"suanwang.placement-solution/v1\",\"assignments\":[{assignments}],\"prices\":{{{prices}}}}}"
        )
    }

    #[test]
    fn reads_and_round_trips_a_solution() {
        let problem = read_problem(&base_text()).expect("valid");
        let json = solution_with(
            r#"{"class":"c18","pool":"shanghai-01/cpu-x86","count":3},
               {"class":"c17","pool":"guian-01/gpu-ascend","count":16},
               {"class":"c18","pool":"guian-01/gpu-ascend","count":1.0}"#,
            r#""shanghai-01/cpu-x86":0.75"#,
        );
        let solution = read_solution(&json, &problem).expect("valid");
        assert_eq!(
            solution.assignments,
            vec![
                Assignment {
                    class: 0,
                    pool: 0,
                    count: 16
                },
                Assignment {
                    class: 1,
                    pool: 0,
                    count: 1
                },
                Assignment {
                    class: 1,
                    pool: 1,
                    count: 3
                },
            ]
        );
        // The missing pool counts as 0.
        assert_eq!(solution.prices_yuan_per_unit_hour, vec![0.0, 0.75]);
        let written = write_solution(&solution, &problem);
        assert_eq!(
            written,
            "{\"format\":\"suanwang.placement-solution/v1\",\"assignments\":[\
             {\"class\":\"c17\",\"pool\":\"guian-01/gpu-ascend\",\"count\":16},\
             {\"class\":\"c18\",\"pool\":\"guian-01/gpu-ascend\",\"count\":1},\
             {\"class\":\"c18\",\"pool\":\"shanghai-01/cpu-x86\",\"count\":3}],\
             \"prices\":{\"guian-01/gpu-ascend\":0.0,\"shanghai-01/cpu-x86\":0.75}}\n"
        );
        assert_eq!(read_solution(&written, &problem).expect("valid"), solution);
        let empty = Solution::empty(&problem);
        assert_eq!(
            read_solution(&write_solution(&empty, &problem), &problem).expect("valid"),
            empty
        );
    }

    #[test]
    fn rejects_bad_solutions_with_path_and_rule() {
        let gpu = r#"{"class":"c17","pool":"guian-01/gpu-ascend","count":16}"#;
        let cases = [
            (
                solution_with(r#"{"class":"c99","pool":"guian-01/gpu-ascend","count":1}"#, ""),
                "$.assignments[0].class: unknown class id 'c99'",
            ),
            (
                solution_with(r#"{"class":"c17","pool":"nowhere","count":1}"#, ""),
                "$.assignments[0].pool: unknown pool id 'nowhere'",
            ),
            (
                solution_with(r#"{"class":"c17","pool":"guian-01/gpu-ascend","count":0}"#, ""),
                "$.assignments[0].count: must be >= 1",
            ),
            (
                solution_with(r#"{"class":"c17","pool":"guian-01/gpu-ascend","count":2.5}"#, ""),
                "$.assignments[0].count: must be a whole number",
            ),
            (
                solution_with(&format!("{gpu},{gpu}"), ""),
                "$.assignments[1]: duplicate assignment of class 'c17' to pool 'guian-01/gpu-ascend' (first at $.assignments[0])",
            ),
            (
                solution_with(r#"{"class":"c17","pool":"guian-01/gpu-ascend"}"#, ""),
                "$.assignments[0].count: missing field",
            ),
            (
                solution_with(r#"{"class":"c17","pool":"guian-01/gpu-ascend","count":1,"why":"x"}"#, ""),
                "$.assignments[0].why: unknown field",
            ),
            (
                solution_with(gpu, r#""guian-01/gpu-ascend":-0.5"#),
                "$.prices[\"guian-01/gpu-ascend\"]: must be >= 0",
            ),
            (
                solution_with(gpu, r#""guian-01/gpu-ascend":null"#),
                "$.prices[\"guian-01/gpu-ascend\"]: expected a number, found null",
            ),
            (
                solution_with(gpu, r#""nowhere":1"#),
                "$.prices.nowhere: unknown pool id 'nowhere'",
            ),
            (
                solution_with(gpu, r#""guian-01/gpu-ascend":1,"guian-01/gpu-ascend":2"#),
                "$.prices[\"guian-01/gpu-ascend\"]: duplicate pool id 'guian-01/gpu-ascend'",
            ),
            (
                String::from(r#"{"format":"suanwang.placement/v1","assignments":[],"prices":{}}"#),
                "$.format: unsupported format 'suanwang.placement/v1', expected 'suanwang.placement-solution/v1'",
            ),
            (
                String::from(r#"{"format":"suanwang.placement-solution/v1","assignments":[]}"#),
                "$.prices: missing field",
            ),
            (
                String::from(r#"{"format":"suanwang.placement-solution/v1","assignments":{},"prices":{}}"#),
                "$.assignments: expected an array, found an object",
            ),
        ];
        for (json, expected) in &cases {
            check_solution_err(json, expected);
        }
    }

    #[test]
    fn error_messages_cut_long_user_text() {
        let long = "x".repeat(1000);
        let error = read_problem(&with("/pools/1/region", json!(long))).expect_err("unknown");
        assert_eq!(
            error.to_string(),
            format!("$.pools[1].region: unknown region id '{}…'", "x".repeat(64))
        );
        let error = read_problem(&with(&format!("/{long}"), json!(1))).expect_err("unknown");
        assert_eq!(error.path, format!("$[\"{}…\"]", "x".repeat(64)));
    }

    /// Writes random finite numbers into every float field of the base
    /// problem; the written text must read back to exactly the same problem.
    fn arbitrary_problem() -> impl Strategy<Value = Problem> {
        let finite = any::<f64>().prop_filter("finite", |value| value.is_finite());
        proptest::collection::vec(finite, 16).prop_map(|values| {
            let mut problem = read_problem(&base_text()).expect("valid");
            let mut next = values.into_iter().map(f64::abs);
            let mut take = move || next.next().unwrap_or(1.0);
            problem.regions[0].lat_deg = take() % 90.0;
            problem.regions[1].lon_deg = -(take() % 180.0);
            problem.latency_ms[1] = take();
            problem.transfer_yuan_per_gb[2] = take();
            problem.carbon_yuan_per_kg = take();
            problem.pools[0].price_yuan_per_unit_hour = take();
            problem.pools[0].power_kw_per_unit = take();
            problem.pools[1].pue = 1.0 + take() % 1e300;
            problem.pools[1].grid_kg_co2_per_kwh = take();
            let hours = take();
            problem.classes[0].hours = if hours > 0.0 { hours } else { 1.0 };
            problem.classes[0].bid_yuan_per_unit_hour = take();
            problem.classes[0].max_latency_ms = Some(take());
            problem.classes[1].data_gb = take();
            problem
        })
    }

    proptest! {
        #[test]
        fn written_problems_read_back_identically(problem in arbitrary_problem()) {
            let written = write_problem(&problem);
            prop_assert_eq!(read_problem(&written).expect("valid"), problem);
        }

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let problem = read_problem(&base_text()).expect("valid");
            let _ = read_problem(&text);
            let _ = read_solution(&text, &problem);
        }

        #[test]
        fn mutated_json_never_panics(
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), 0..3u8, prop::sample::select(vec![
                    "{", "}", "[", "]", ",", ":", "\"", "\\", "-", "0", "1e999", "null",
                    "\"guian\"", "\"c17\"", " ", "\\u", "é", "贵", "\n", "\u{0}",
                ])),
                1..6,
            )
        ) {
            let mut text = base_text();
            for (index, op, piece) in edits {
                let boundaries: Vec<usize> =
                    (0..=text.len()).filter(|&at| text.is_char_boundary(at)).collect();
                let at = boundaries[index.index(boundaries.len())];
                let next = boundaries.iter().copied().find(|&b| b > at).unwrap_or(at);
                match op {
                    0 => text.insert_str(at, piece),
                    1 => text.replace_range(at..next, ""),
                    _ => text.replace_range(at..next, piece),
                }
            }
            if let Ok(problem) = read_problem(&text) {
                let written = write_problem(&problem);
                prop_assert_eq!(read_problem(&written).expect("valid"), problem);
            }
        }
    }
}

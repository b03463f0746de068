//! Metering in standard compute units (SCU, 标准算力). Pure: no IO, no clock.
//!
//! Bills are made from raw quantities (core-, device- and node-milliseconds
//! by device model). SCU are a derived view for comparing and aggregating
//! across a mixed CPU / AI / HPC market. `docs/metering.md` defines them:
//!
//! **1 SCU = 1 TFLOPS of FP32-equivalent peak throughput; 1 SCU-hour is one
//! hour of it.** FP64 counts double, FP16/BF16 (dense, matrix engine) half.
//! A CPU core or accelerator counts its best FP32-equivalent rating; an HPC
//! node counts its FP64 rating only.
//!
//! The catalogue of device models is versioned and effective-dated; it ships
//! as data (`crates/core/data/catalogue-*.toml`), is parsed and validated on
//! first use ([`shipped`]), and every factor is an exact fraction. Rating is
//! integer arithmetic end to end: the result is in micro-SCU-hours, rounded
//! to nearest (ties up) once per record.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::Deserialize;
use suanwang_place::Kind;

/// The catalogues this build ships, oldest first. Never edit a released one:
/// add a new file with a later `effective_from`.
const SHIPPED: &[&str] = &[include_str!("../data/catalogue-2026-11.toml")];

pub const SCHEMA: &str = "suanwang.catalogue/v1";
/// Ratings are held in millionths of a TFLOPS (= MFLOPS).
pub const MICRO: u64 = 1_000_000;
/// No rating above this (TFLOPS): a typo, not a chip.
pub const TFLOPS_MAX: u64 = 1_000_000;
/// Numerators and denominators of SCU factors stay below this.
pub const FRACTION_PART_MAX: u64 = 1_000_000_000_000;
/// SCU-milliseconds to micro-SCU-hours: 10^6 / 3,600,000 = 5/18.
const MICRO_HOURS_NUM: u128 = 5;
const RATING_RULE: &str =
    "must be a decimal string > 0 and <= 1000000 (TFLOPS), at most 6 decimals";
const MICRO_HOURS_DEN: u128 = 18;

/// An exact non-negative fraction, kept in lowest terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fraction {
    pub num: u64,
    pub den: u64,
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Fraction {
    pub const ZERO: Fraction = Fraction { num: 0, den: 1 };

    /// `num / den` in lowest terms; `None` if `den` is 0 or a part does not
    /// fit a `u64` after reduction.
    pub fn new(num: u128, den: u128) -> Option<Fraction> {
        if den == 0 {
            return None;
        }
        let g = gcd(num, den).max(1);
        Some(Fraction {
            num: u64::try_from(num / g).ok()?,
            den: u64::try_from(den / g).ok()?,
        })
    }

    /// Parses `"a/b"` or `"a"` (decimal integers).
    pub fn parse(text: &str) -> Option<Fraction> {
        let (num, den) = match text.split_once('/') {
            Some((n, d)) => (n.trim(), d.trim()),
            None => (text.trim(), "1"),
        };
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(num) || !digits(den) {
            return None;
        }
        Fraction::new(
            u128::from(num.parse::<u64>().ok()?),
            u128::from(den.parse::<u64>().ok()?),
        )
    }

    /// Exact comparison by cross-multiplication.
    pub fn same(self, other: Fraction) -> bool {
        u128::from(self.num) * u128::from(other.den) == u128::from(other.num) * u128::from(self.den)
    }

    /// The value with `places` decimals, rounded half up; trailing zeros cut.
    pub fn decimal(self, places: u32) -> String {
        let scale = 10u128.pow(places);
        let (num, den) = (u128::from(self.num), u128::from(self.den));
        let scaled = (num * scale * 2 + den) / (den * 2);
        let (int, frac) = (scaled / scale, scaled % scale);
        if places == 0 || frac == 0 {
            return int.to_string();
        }
        let frac = format!("{frac:0width$}", width = places as usize);
        format!("{int}.{}", frac.trim_end_matches('0'))
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// A peak rating in millionths of a TFLOPS, exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tflops(pub u64);

impl Tflops {
    /// Parses a decimal string with at most six decimals, e.g. `"989.5"`.
    pub fn parse(text: &str) -> Option<Tflops> {
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || int.len() > 7 || frac.len() > 6 || !digits(int) || !digits(frac) {
            return None;
        }
        if text.ends_with('.') {
            return None;
        }
        let int: u64 = int.parse().ok()?;
        let frac: u64 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<6}").parse().ok()?
        };
        Some(Tflops(int * MICRO + frac))
    }
}

impl fmt::Display for Tflops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int, frac) = (self.0 / MICRO, self.0 % MICRO);
        if frac == 0 {
            write!(f, "{int}")
        } else {
            let frac = format!("{frac:06}");
            write!(f, "{int}.{}", frac.trim_end_matches('0'))
        }
    }
}

/// The unit a kind is metered in.
pub fn unit_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Cpu => "core",
        Kind::Gpu => "device",
        Kind::Hpc => "node",
    }
}

/// The rule (docs/metering.md): SCU per unit is the unit's FP32-equivalent
/// peak in TFLOPS, FP64 counting 2 and FP16/BF16 (dense tensor) 1/2. CPU
/// cores and accelerators take the best of their ratings; HPC nodes count
/// FP64 only. `None` if the counted rating is missing.
pub fn scu_per_unit(
    kind: Kind,
    fp64: Option<Tflops>,
    fp32: Option<Tflops>,
    fp16: Option<Tflops>,
) -> Option<Fraction> {
    // In units of 1/2 millionth TFLOPS of FP32-equivalent.
    let fp64 = fp64.map(|r| u128::from(r.0) * 4);
    let best = match kind {
        Kind::Hpc => fp64?,
        Kind::Cpu | Kind::Gpu => [
            fp64,
            fp32.map(|r| u128::from(r.0) * 2),
            fp16.map(|r| u128::from(r.0)),
        ]
        .into_iter()
        .flatten()
        .max()?,
    };
    Fraction::new(best, u128::from(MICRO) * 2)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// Canonical id, e.g. `nvidia-h100-sxm`.
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub kind: Kind,
    pub aliases: Vec<String>,
    pub fp64: Option<Tflops>,
    pub fp32: Option<Tflops>,
    /// FP16/BF16 dense matrix-engine peak (never the sparsity figure).
    pub fp16: Option<Tflops>,
    /// SCU per unit (core, device or node).
    pub scu: Fraction,
    pub source: String,
}

#[derive(Clone, Debug)]
pub struct Catalogue {
    pub version: String,
    /// `YYYY-MM-DD`, UTC.
    pub effective_from: String,
    pub effective_from_ms: i64,
    pub models: Vec<Model>,
    /// Normalised id or alias → index into `models`.
    index: HashMap<String, usize>,
}

/// A catalogue file that does not hold: the field path and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("catalogue {field}: {message}")]
pub struct CatalogueError {
    pub field: String,
    pub message: String,
}

fn bad(field: impl Into<String>, message: impl Into<String>) -> CatalogueError {
    CatalogueError {
        field: field.into(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    schema: String,
    version: String,
    effective_from: String,
    model: Vec<RawModel>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    id: String,
    name: String,
    vendor: String,
    kind: String,
    #[serde(default)]
    aliases: Vec<String>,
    fp64_tflops: Option<String>,
    fp32_tflops: Option<String>,
    fp16_tflops: Option<String>,
    scu: String,
    source: String,
}

/// How device-model strings are matched: case, spaces, `-`, `_` and `.` do
/// not matter (`"H100 SXM"` = `"h100-sxm"`); everything else does (`8480+`).
pub fn normalise(model: &str) -> String {
    model
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// `YYYY-MM-DD` → milliseconds since the epoch at 00:00 UTC. The shape is
/// checked here (jiff's ISO 8601 reader would also take `20261101` or a
/// whole date-time); the calendar, through jiff.
pub fn date_ms(text: &str) -> Option<i64> {
    let shaped = text.len() == 10
        && text.bytes().enumerate().all(|(i, c)| match i {
            4 | 7 => c == b'-',
            _ => c.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    let date: jiff::civil::Date = text.parse().ok()?;
    let midnight = jiff::tz::Offset::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    Some(midnight.as_millisecond())
}

fn check_text(field: &str, text: &str, max: usize) -> Result<(), CatalogueError> {
    if text.trim().is_empty() || text.len() > max || text.chars().any(char::is_control) {
        return Err(bad(
            field,
            format!("must be 1 to {max} bytes of printable text"),
        ));
    }
    Ok(())
}

impl Catalogue {
    /// Parses and validates a catalogue file. Every error names its field.
    pub fn parse(text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue =
            toml::from_str(text).map_err(|e| bad("file", e.message().to_owned()))?;
        if raw.schema != SCHEMA {
            return Err(bad("schema", format!("must be {SCHEMA:?}")));
        }
        let version_ok = !raw.version.is_empty()
            && raw.version.len() <= 32
            && raw
                .version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
        if !version_ok {
            return Err(bad("version", "must be 1 to 32 of [A-Za-z0-9.-]"));
        }
        let effective_from_ms = date_ms(&raw.effective_from)
            .ok_or_else(|| bad("effective_from", "must be a date YYYY-MM-DD"))?;
        if raw.model.is_empty() {
            return Err(bad("model", "must list at least one model"));
        }
        let mut models = Vec::with_capacity(raw.model.len());
        let mut index = HashMap::new();
        for (i, m) in raw.model.into_iter().enumerate() {
            let field = |name: &str| format!("model[{i}].{name}");
            let id_ok = !m.id.is_empty()
                && m.id.len() <= 64
                && m.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !id_ok {
                return Err(bad(field("id"), "must be 1 to 64 of [a-z0-9-]"));
            }
            check_text(&field("name"), &m.name, 128)?;
            check_text(&field("vendor"), &m.vendor, 64)?;
            check_text(&field("source"), &m.source, 1024)?;
            let kind = Kind::parse(&m.kind)
                .ok_or_else(|| bad(field("kind"), "must be cpu, gpu or hpc"))?;
            let rating = |name: &str, value: &Option<String>| match value.as_deref() {
                None => Ok(None),
                Some(text) => match Tflops::parse(text) {
                    Some(r) if r.0 > 0 && r.0 <= TFLOPS_MAX * MICRO => Ok(Some(r)),
                    _ => Err(bad(field(name), RATING_RULE)),
                },
            };
            let fp64 = rating("fp64_tflops", &m.fp64_tflops)?;
            let fp32 = rating("fp32_tflops", &m.fp32_tflops)?;
            let fp16 = rating("fp16_tflops", &m.fp16_tflops)?;
            let scu = Fraction::parse(&m.scu)
                .filter(|f| f.num > 0 && f.num < FRACTION_PART_MAX && f.den < FRACTION_PART_MAX)
                .ok_or_else(|| {
                    bad(
                        field("scu"),
                        "must be a fraction \"a/b\" with 0 < a, 0 < b, both < 10^12",
                    )
                })?;
            let rule = scu_per_unit(kind, fp64, fp32, fp16).ok_or_else(|| {
                bad(
                    field("scu"),
                    match kind {
                        Kind::Hpc => "an hpc node needs fp64_tflops",
                        _ => "needs at least one of fp64_tflops, fp32_tflops, fp16_tflops",
                    },
                )
            })?;
            if !scu.same(rule) {
                return Err(bad(
                    field("scu"),
                    format!("is {scu}, but the rule in docs/metering.md gives {rule}"),
                ));
            }
            for (j, name) in std::iter::once(&m.id).chain(&m.aliases).enumerate() {
                let key = normalise(name);
                let at = if j == 0 {
                    field("id")
                } else {
                    field(&format!("aliases[{}]", j - 1))
                };
                if key.is_empty() || name.len() > 128 {
                    return Err(bad(at, "must be 1 to 128 bytes, not only separators"));
                }
                match index.insert(key, i) {
                    Some(other) if other != i => {
                        return Err(bad(at, format!("{name:?} already names model[{other}]")));
                    }
                    _ => {}
                }
            }
            models.push(Model {
                id: m.id,
                name: m.name,
                vendor: m.vendor,
                kind,
                aliases: m.aliases,
                fp64,
                fp32,
                fp16,
                scu,
                source: m.source,
            });
        }
        Ok(Catalogue {
            version: raw.version,
            effective_from: raw.effective_from,
            effective_from_ms,
            models,
            index,
        })
    }

    /// The model a pool's `device_model` names (by id or alias), if any.
    pub fn lookup(&self, device_model: &str) -> Option<&Model> {
        self.index
            .get(&normalise(device_model))
            .map(|&i| &self.models[i])
    }

    /// Rates `units` held for `wall_ms` on a pool of `kind` whose device
    /// model is `device_model`. A model the catalogue does not know, or one
    /// of another kind than the pool (its units would mean something else),
    /// rates at factor 0 and says so; nothing is guessed.
    pub fn rate(
        &self,
        device_model: &str,
        kind: Kind,
        units: u64,
        wall_ms: u64,
    ) -> Result<Rated, RateError> {
        let (model, factor, unrated) = match self.lookup(device_model) {
            None => (
                device_model.to_owned(),
                Fraction::ZERO,
                Some(Unrated::UnknownModel),
            ),
            Some(m) if m.kind != kind => (
                m.id.clone(),
                Fraction::ZERO,
                Some(Unrated::KindMismatch {
                    model: m.kind,
                    pool: kind,
                }),
            ),
            Some(m) => (m.id.clone(), m.scu, None),
        };
        Ok(Rated {
            device_model: model,
            factor,
            micro_scu_hours: micro_scu_hours(units, wall_ms, factor)?,
            catalogue_version: self.version.clone(),
            unrated,
        })
    }
}

/// Why a record rated at factor 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unrated {
    /// The catalogue does not know the device model (or the pool names none).
    UnknownModel,
    /// The model is of another kind than the pool it was declared on.
    KindMismatch { model: Kind, pool: Kind },
}

impl fmt::Display for Unrated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unrated::UnknownModel => write!(f, "device model not in the catalogue"),
            Unrated::KindMismatch { model, pool } => write!(
                f,
                "device model is a {} model but the pool is {}",
                model.as_str(),
                pool.as_str()
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rated {
    /// The catalogue id when the model is known; else the declared string.
    pub device_model: String,
    /// SCU per unit that was applied (0 when unrated).
    pub factor: Fraction,
    pub micro_scu_hours: u64,
    pub catalogue_version: String,
    pub unrated: Option<Unrated>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    #[error("usage too large to rate: units x wall_ms x factor overflows")]
    Overflow,
}

/// `units × wall_ms × factor` SCU-milliseconds in micro-SCU-hours
/// (1 µSCU·h = 3.6 SCU·ms), rounded to nearest with ties up. Exact: u128
/// intermediates; fails rather than wraps if the result exceeds `i64::MAX`
/// (what a database column holds).
pub fn micro_scu_hours(units: u64, wall_ms: u64, factor: Fraction) -> Result<u64, RateError> {
    let unit_ms = u128::from(units) * u128::from(wall_ms);
    let num = unit_ms
        .checked_mul(u128::from(factor.num) * MICRO_HOURS_NUM)
        .ok_or(RateError::Overflow)?;
    let den = u128::from(factor.den.max(1)) * MICRO_HOURS_DEN;
    let (q, r) = (num / den, num % den);
    let rounded = if r * 2 >= den { q + 1 } else { q };
    u64::try_from(rounded)
        .ok()
        .filter(|&v| v <= i64::MAX as u64)
        .ok_or(RateError::Overflow)
}

/// The catalogues, oldest first.
#[derive(Clone, Debug)]
pub struct Catalogues {
    list: Vec<Catalogue>,
}

impl Catalogues {
    /// Validates each file, then the set: distinct versions, strictly
    /// increasing effective dates.
    pub fn parse(files: &[&str]) -> Result<Catalogues, CatalogueError> {
        let mut list = Vec::with_capacity(files.len());
        for (i, text) in files.iter().enumerate() {
            let catalogue =
                Catalogue::parse(text).map_err(|e| bad(format!("[{i}] {}", e.field), e.message))?;
            if let Some(prev) = list.last() {
                let prev: &Catalogue = prev;
                if catalogue.effective_from_ms <= prev.effective_from_ms {
                    return Err(bad(
                        format!("[{i}] effective_from"),
                        "must be later than the previous catalogue's",
                    ));
                }
            }
            if list
                .iter()
                .any(|c: &Catalogue| c.version == catalogue.version)
            {
                return Err(bad(format!("[{i}] version"), "already used"));
            }
            list.push(catalogue);
        }
        if list.is_empty() {
            return Err(bad("files", "at least one catalogue"));
        }
        Ok(Catalogues { list })
    }

    /// The catalogue in effect at `at_ms`: the latest whose effective date
    /// is not after it. Before the first date, the first one (a clock set
    /// before the network opened must not leave usage unrated).
    pub fn at(&self, at_ms: i64) -> &Catalogue {
        self.list
            .iter()
            .rev()
            .find(|c| c.effective_from_ms <= at_ms)
            .unwrap_or(&self.list[0])
    }

    pub fn latest(&self) -> &Catalogue {
        &self.list[self.list.len() - 1]
    }

    pub fn version(&self, version: &str) -> Option<&Catalogue> {
        self.list.iter().find(|c| c.version == version)
    }

    pub fn all(&self) -> &[Catalogue] {
        &self.list
    }
}

/// The catalogues shipped in this build, parsed and validated on first use.
/// The shipped files are tested valid (`shipped_catalogue_is_valid`).
pub fn shipped() -> &'static Catalogues {
    static SHIPPED_CATALOGUES: OnceLock<Catalogues> = OnceLock::new();
    SHIPPED_CATALOGUES.get_or_init(|| match Catalogues::parse(SHIPPED) {
        Ok(catalogues) => catalogues,
        Err(error) => panic!("the shipped device catalogue is invalid: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frac(num: u64, den: u64) -> Fraction {
        Fraction::new(u128::from(num), u128::from(den)).unwrap()
    }

    #[test]
    fn shipped_catalogue_is_valid() {
        let catalogues = Catalogues::parse(SHIPPED).unwrap();
        let latest = catalogues.latest();
        assert_eq!(latest.version, "2026-11");
        assert_eq!(latest.effective_from_ms, date_ms("2026-11-01").unwrap());
        assert!(latest.models.len() >= 25);
        for kind in Kind::ALL {
            assert!(
                latest.models.iter().any(|m| m.kind == kind),
                "no {kind:?} model"
            );
        }
        // The issue's list is covered.
        for name in [
            "Xeon Platinum 8480+",
            "EPYC 9654",
            "Kunpeng 920",
            "Hygon C86 7285",
            "Phytium S2500",
            "A100",
            "H100",
            "H800",
            "H20",
            "L40S",
            "V100",
            "Ascend 910B",
            "DCU Z100",
            "MLU370",
            "MLU590",
            "2S EPYC 9654",
        ] {
            assert!(latest.lookup(name).is_some(), "{name} missing");
        }
        shipped();
    }

    #[test]
    fn known_factors_are_exact() {
        let c = shipped().latest();
        // H100 SXM: 989.5 TFLOPS FP16 dense / 2 = 494.75 SCU.
        assert_eq!(c.lookup("H100").unwrap().scu, frac(1979, 4));
        // EPYC 9654 core: 2 x 38.4 GFLOPS FP64 = 0.0768 SCU.
        assert_eq!(c.lookup("amd-epyc-9654").unwrap().scu, frac(48, 625));
        // H800 keeps H100's tensor rate though its FP64 is cut to 1 TFLOPS.
        assert_eq!(
            c.lookup("h800").unwrap().scu,
            c.lookup("H100 SXM").unwrap().scu
        );
        // An HPC node counts FP64 only: 192 x 38.4 GFLOPS x 2.
        assert_eq!(c.lookup("2x EPYC 9654").unwrap().scu, frac(9216, 625));
        // FP16 tensor is far more than 2 x FP32: the A100 counts 312/2, not 2 x 19.5.
        let a100 = c.lookup("NVIDIA A100").unwrap();
        assert_eq!(a100.fp16, Some(Tflops(312 * MICRO)));
        assert_eq!(a100.scu, frac(156, 1));
    }

    #[test]
    fn rating_one_scu_hour() {
        let one = frac(1, 1);
        assert_eq!(micro_scu_hours(1, 3_600_000, one), Ok(1_000_000));
        assert_eq!(micro_scu_hours(4, 900_000, one), Ok(1_000_000));
        assert_eq!(micro_scu_hours(0, 3_600_000, one), Ok(0));
        assert_eq!(micro_scu_hours(5, 0, one), Ok(0));
    }

    #[test]
    fn rating_rounds_half_up_once() {
        let one = frac(1, 1);
        // 1 ms of 1 SCU = 5/18 µSCU·h = 0.277… → 0.
        assert_eq!(micro_scu_hours(1, 1, one), Ok(0));
        // 2 ms → 0.555… → 1.
        assert_eq!(micro_scu_hours(1, 2, one), Ok(1));
        // 9 ms → 2.5 exactly → 3 (ties up).
        assert_eq!(micro_scu_hours(1, 9, one), Ok(3));
        // 1.8 ms equivalent via units: 9 unit-ms at 1/5 SCU → 0.5 → 1.
        assert_eq!(micro_scu_hours(3, 3, frac(1, 5)), Ok(1));
        // Rounded once per record, not per unit: 1000 units x 1 ms = 277.7… → 278.
        assert_eq!(micro_scu_hours(1000, 1, one), Ok(278));
    }

    #[test]
    fn rating_with_catalogue_factors() {
        let c = shipped().latest();
        // 4 EPYC 9654 cores for 12.345 s: 49.38 core-s x 0.0768 SCU
        // = 3.792384 SCU-s = 1053.44 µSCU·h → 1053.
        let r = c.rate("EPYC 9654", Kind::Cpu, 4, 12_345).unwrap();
        assert_eq!(r.micro_scu_hours, 1053);
        assert_eq!(r.device_model, "amd-epyc-9654");
        assert_eq!(r.catalogue_version, "2026-11");
        assert_eq!(r.unrated, None);
        // 8 H100 for one hour = 8 x 494.75 SCU-h.
        let r = c.rate("h100-sxm", Kind::Gpu, 8, 3_600_000).unwrap();
        assert_eq!(r.micro_scu_hours, 3_958_000_000);
        // Exactness: 3 x 1979/4 x 7 ms x 5/18 = 207795/72 = 2886.04… → 2886.
        assert_eq!(
            c.rate("H100", Kind::Gpu, 3, 7).unwrap().micro_scu_hours,
            2886
        );
    }

    #[test]
    fn unknown_model_is_unrated_not_guessed() {
        let c = shipped().latest();
        let r = c
            .rate("Quantum Abacus 9000", Kind::Gpu, 8, 3_600_000)
            .unwrap();
        assert_eq!(r.micro_scu_hours, 0);
        assert_eq!(r.factor, Fraction::ZERO);
        assert_eq!(r.unrated, Some(Unrated::UnknownModel));
        assert_eq!(r.device_model, "Quantum Abacus 9000");
        assert_eq!(r.catalogue_version, "2026-11");
        let r = c.rate("", Kind::Cpu, 1, 1000).unwrap();
        assert_eq!(r.unrated, Some(Unrated::UnknownModel));
        // An accelerator declared on a cpu pool: its units would be cores.
        let r = c.rate("H100", Kind::Cpu, 8, 3_600_000).unwrap();
        assert_eq!(r.micro_scu_hours, 0);
        assert_eq!(
            r.unrated,
            Some(Unrated::KindMismatch {
                model: Kind::Gpu,
                pool: Kind::Cpu
            })
        );
    }

    #[test]
    fn overflow_is_an_error_not_a_wrap() {
        let big = frac(FRACTION_PART_MAX - 1, 1);
        assert_eq!(
            micro_scu_hours(u64::MAX, u64::MAX, big),
            Err(RateError::Overflow)
        );
        assert_eq!(
            micro_scu_hours(u64::MAX, 3_600_000, frac(1, 1)),
            Err(RateError::Overflow)
        );
        // The largest that fits is fine.
        assert!(micro_scu_hours(1_000_000, 86_400_000 * 365, frac(1979, 4)).is_ok());
    }

    #[test]
    fn fractions_and_decimals() {
        assert_eq!(Fraction::parse("96/1250"), Some(frac(48, 625)));
        assert_eq!(Fraction::parse("156"), Some(frac(156, 1)));
        assert_eq!(Fraction::parse("1/0"), None);
        assert_eq!(Fraction::parse("-1/2"), None);
        assert_eq!(Fraction::parse("1.5"), None);
        assert_eq!(frac(1979, 4).decimal(6), "494.75");
        assert_eq!(frac(48, 625).decimal(6), "0.0768");
        assert_eq!(frac(1, 3).decimal(6), "0.333333");
        assert_eq!(frac(2, 3).decimal(6), "0.666667");
        assert_eq!(frac(7241, 40).to_string(), "7241/40");
        assert_eq!(Tflops::parse("989.5"), Some(Tflops(989_500_000)));
        assert_eq!(Tflops::parse("0.0384"), Some(Tflops(38_400)));
        assert_eq!(Tflops::parse("1.0000001"), None);
        assert_eq!(Tflops::parse("1."), None);
        assert_eq!(Tflops::parse(".5"), None);
        assert_eq!(Tflops::parse("1e3"), None);
        assert_eq!(Tflops(38_400).to_string(), "0.0384");
    }

    #[test]
    fn lookup_ignores_case_and_separators_only() {
        let c = shipped().latest();
        assert_eq!(c.lookup("nvidia_h100 SXM").unwrap().id, "nvidia-h100-sxm");
        assert_eq!(c.lookup("A10").unwrap().id, "nvidia-a10");
        assert_eq!(c.lookup("A100").unwrap().id, "nvidia-a100-sxm");
        assert_eq!(c.lookup("8480+").unwrap().id, "intel-xeon-8480p");
        assert!(c.lookup("8480").is_none());
    }

    const MINIMAL: &str = r#"
schema = "suanwang.catalogue/v1"
version = "t1"
effective_from = "2026-01-01"

[[model]]
id = "x"
name = "X"
vendor = "V"
kind = "gpu"
fp32_tflops = "10"
fp16_tflops = "100"
scu = "50"
source = "test"
"#;

    #[test]
    fn invalid_catalogues_are_rejected_with_their_field() {
        assert!(Catalogue::parse(MINIMAL).is_ok());
        let check = |from: &str, to: &str, field: &str| {
            let text = MINIMAL.replacen(from, to, 1);
            let error = Catalogue::parse(&text).unwrap_err();
            assert!(error.field.contains(field), "{from} -> {to}: {error}");
        };
        check(r#"scu = "50""#, r#"scu = "51""#, "model[0].scu");
        check(r#"scu = "50""#, r#"scu = "50/0""#, "model[0].scu");
        check(
            r#"fp16_tflops = "100""#,
            r#"fp16_tflops = "0""#,
            "model[0].fp16_tflops",
        );
        check(
            r#"fp32_tflops = "10""#,
            r#"fp32_tflops = "-10""#,
            "model[0].fp32_tflops",
        );
        check(r#"kind = "gpu""#, r#"kind = "tpu""#, "model[0].kind");
        check(r#"kind = "gpu""#, r#"kind = "hpc""#, "model[0].scu");
        check("2026-01-01", "2026-02-30", "effective_from");
        check("suanwang.catalogue/v1", "v0", "schema");
        check(
            r#"source = "test""#,
            r#"source = "test"
extra = 1"#,
            "file",
        );
        let dup = format!("{MINIMAL}\n[[model]]\nid = \"y\"\nname = \"Y\"\nvendor = \"V\"\nkind = \"cpu\"\naliases = [\"X\"]\nfp64_tflops = \"1\"\nscu = \"2\"\nsource = \"t\"\n");
        let error = Catalogue::parse(&dup).unwrap_err();
        assert_eq!(error.field, "model[1].aliases[0]", "{error}");
    }

    #[test]
    fn effective_dating() {
        let second = MINIMAL
            .replace("t1", "t2")
            .replace("2026-01-01", "2026-06-01")
            .replace("\"50\"", "\"50/1\"");
        let set = Catalogues::parse(&[MINIMAL, &second]).unwrap();
        let june = date_ms("2026-06-01").unwrap();
        assert_eq!(set.at(june - 1).version, "t1");
        assert_eq!(set.at(june).version, "t2");
        assert_eq!(set.at(0).version, "t1");
        assert_eq!(set.version("t2").unwrap().version, "t2");
        assert!(Catalogues::parse(&[&second, MINIMAL]).is_err());
        assert!(Catalogues::parse(&[MINIMAL, MINIMAL]).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(date_ms("1970-01-01"), Some(0));
        assert_eq!(date_ms("2026-11-01"), Some(1_793_491_200_000));
        assert_eq!(date_ms("2024-02-29"), Some(1_709_164_800_000));
        assert_eq!(date_ms("2023-02-29"), None);
        assert_eq!(date_ms("2026-1-01"), None);
    }
}

//! Regions and the latency and transfer-price matrices between them.

use std::collections::BTreeMap;

use suanwang_api::{RegionSpec, TopologySpec};
use suanwang_place::gen::{generate, GenParams};

use crate::FieldError;

pub const REGIONS_MAX: usize = suanwang_place::model::limits::REGIONS_MAX;

/// A validated topology: ids unique, matrices square in region order, every
/// number finite and non-negative.
#[derive(Clone, Debug, PartialEq)]
pub struct Topology {
    pub regions: Vec<RegionSpec>,
    /// Row-major `n x n`.
    pub latency_ms: Vec<f64>,
    /// Row-major `n x n`.
    pub transfer_yuan_per_gb: Vec<f64>,
    pub carbon_yuan_per_kg: f64,
    index: BTreeMap<String, usize>,
}

impl Topology {
    pub fn validate(spec: &TopologySpec) -> Result<Topology, FieldError> {
        let n = spec.regions.len();
        if n == 0 {
            return Err(FieldError::new("regions", "at least one region"));
        }
        if n > REGIONS_MAX {
            return Err(FieldError::new("regions", format!("at most {REGIONS_MAX}")));
        }
        let mut index = BTreeMap::new();
        for (i, region) in spec.regions.iter().enumerate() {
            let field = format!("regions[{i}]");
            check_id(&format!("{field}.id"), &region.id)?;
            if !(-90.0..=90.0).contains(&region.lat_deg) {
                return Err(FieldError::new(
                    format!("{field}.lat_deg"),
                    "must be in [-90, 90]",
                ));
            }
            if !(-180.0..=180.0).contains(&region.lon_deg) {
                return Err(FieldError::new(
                    format!("{field}.lon_deg"),
                    "must be in [-180, 180]",
                ));
            }
            if index.insert(region.id.clone(), i).is_some() {
                return Err(FieldError::new(
                    format!("{field}.id"),
                    "duplicate region id",
                ));
            }
        }
        let latency_ms = square("latency_ms", &spec.latency_ms, n)?;
        let transfer_yuan_per_gb = square("transfer_yuan_per_gb", &spec.transfer_yuan_per_gb, n)?;
        if !spec.carbon_yuan_per_kg.is_finite() || spec.carbon_yuan_per_kg < 0.0 {
            return Err(FieldError::new(
                "carbon_yuan_per_kg",
                "must be a finite number >= 0",
            ));
        }
        Ok(Topology {
            regions: spec.regions.clone(),
            latency_ms,
            transfer_yuan_per_gb,
            carbon_yuan_per_kg: spec.carbon_yuan_per_kg,
            index,
        })
    }

    /// The built-in national topology: the hub and demand-city regions of the
    /// placement generator (real hub coordinates, modelled latency and
    /// transfer prices; see docs/generator.md).
    pub fn national() -> Topology {
        let problem = generate(&GenParams {
            pools: 0,
            classes: 0,
            seed: 0,
        });
        let spec = TopologySpec {
            regions: problem
                .regions
                .iter()
                .map(|region| RegionSpec {
                    id: region.id.clone(),
                    name: region.name.clone(),
                    lat_deg: region.lat_deg,
                    lon_deg: region.lon_deg,
                })
                .collect(),
            latency_ms: rows(&problem.latency_ms, problem.regions.len()),
            transfer_yuan_per_gb: rows(&problem.transfer_yuan_per_gb, problem.regions.len()),
            carbon_yuan_per_kg: problem.carbon_yuan_per_kg,
        };
        Topology::validate(&spec).expect("the built-in topology is valid")
    }

    pub fn spec(&self) -> TopologySpec {
        let n = self.regions.len();
        TopologySpec {
            regions: self.regions.clone(),
            latency_ms: rows(&self.latency_ms, n),
            transfer_yuan_per_gb: rows(&self.transfer_yuan_per_gb, n),
            carbon_yuan_per_kg: self.carbon_yuan_per_kg,
        }
    }

    pub fn region(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub fn require_region(&self, field: &str, id: &str) -> Result<usize, FieldError> {
        self.region(id)
            .ok_or_else(|| FieldError::new(field, format!("unknown region {id:?}")))
    }
}

fn rows(flat: &[f64], n: usize) -> Vec<Vec<f64>> {
    flat.chunks(n.max(1)).map(<[f64]>::to_vec).collect()
}

fn square(field: &str, matrix: &[Vec<f64>], n: usize) -> Result<Vec<f64>, FieldError> {
    if matrix.len() != n {
        return Err(FieldError::new(
            field,
            format!("must have {n} rows, one per region"),
        ));
    }
    let mut flat = Vec::with_capacity(n * n);
    for (i, row) in matrix.iter().enumerate() {
        if row.len() != n {
            return Err(FieldError::new(
                format!("{field}[{i}]"),
                format!("must have {n} columns"),
            ));
        }
        for (j, &value) in row.iter().enumerate() {
            if !value.is_finite() || value < 0.0 {
                return Err(FieldError::new(
                    format!("{field}[{i}][{j}]"),
                    "must be a finite number >= 0",
                ));
            }
            flat.push(value);
        }
    }
    Ok(flat)
}

/// Ids are short names: 1 to 128 ASCII letters, digits, `-`, `_`, `.`
/// (`suanwang_api::ID_PATTERN`).
pub fn check_id(field: &str, id: &str) -> Result<(), FieldError> {
    if id.is_empty() || id.len() > 128 {
        return Err(FieldError::new(field, "must be 1 to 128 bytes"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(FieldError::new(
            field,
            "only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_round_trips() {
        let national = Topology::national();
        assert!(national.regions.len() >= 30);
        assert!(national.region("guian").is_some());
        assert!(national.region("shanghai").is_some());
        let again = Topology::validate(&national.spec()).unwrap();
        assert_eq!(again, national);
    }

    #[test]
    fn bad_matrices_name_the_field() {
        let mut spec = Topology::national().spec();
        spec.latency_ms[3].pop();
        assert_eq!(
            Topology::validate(&spec).unwrap_err().field,
            "latency_ms[3]"
        );
        let mut spec = Topology::national().spec();
        spec.transfer_yuan_per_gb[1][2] = f64::NAN;
        assert_eq!(
            Topology::validate(&spec).unwrap_err().field,
            "transfer_yuan_per_gb[1][2]"
        );
        let mut spec = Topology::national().spec();
        spec.regions[1].id = spec.regions[0].id.clone();
        assert_eq!(
            Topology::validate(&spec).unwrap_err().field,
            "regions[1].id"
        );
    }
}

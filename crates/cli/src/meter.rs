//! `suanwang meter`: the device catalogue (offline) and a job's usage in raw
//! quantities and standard compute units (SCU). The rules are in
//! `suanwang_core::metering` and docs/metering.md; this module only prints.

use std::collections::BTreeMap;

use clap::Subcommand;
use serde::Serialize;
use suanwang_api::UsageView;
use suanwang_core::metering::{self, Catalogue, Model, Tflops};

use crate::exit;
use crate::out::{print_json, say};
use crate::remote::{self, Output};

/// What one SCU is, in one line (docs/metering.md says why).
pub const SCU_DEFINITION: &str = "1 SCU = 1 TFLOPS of FP32-equivalent peak throughput \
(FP64 counts 2, FP16/BF16 dense tensor counts 1/2); 1 SCU-hour = one hour of it";

#[derive(Debug, Subcommand)]
pub enum MeterCommand {
    /// The device catalogue this build ships: ratings and factors to SCU.
    Catalogue,
    /// A job's usage: raw quantities per record, SCU, totals per device model.
    Usage {
        /// The job's id.
        #[arg(long)]
        job: String,
    },
}

pub fn run(command: MeterCommand, output: Output) -> anyhow::Result<u8> {
    match command {
        MeterCommand::Catalogue => catalogue(output),
        MeterCommand::Usage { job } => crate::block_on(usage(job, output)),
    }
}

#[derive(Debug, Serialize)]
struct CatalogueJson {
    version: String,
    effective_from: String,
    scu_definition: &'static str,
    models: Vec<ModelJson>,
}

#[derive(Debug, Serialize)]
struct ModelJson {
    id: String,
    name: String,
    vendor: String,
    kind: &'static str,
    /// What one unit is: core, device or node.
    unit: &'static str,
    aliases: Vec<String>,
    fp64_tflops: Option<String>,
    fp32_tflops: Option<String>,
    /// FP16/BF16, dense tensor (matrix engine) peak.
    fp16_tflops: Option<String>,
    /// SCU per unit, exact.
    scu_per_unit: String,
    scu_num: u64,
    scu_den: u64,
    /// The same, as a decimal (rounded to 6 places).
    scu_per_unit_decimal: String,
    source: String,
}

fn model_json(m: &Model) -> ModelJson {
    let text = |r: Option<Tflops>| r.map(|r| r.to_string());
    ModelJson {
        id: m.id.clone(),
        name: m.name.clone(),
        vendor: m.vendor.clone(),
        kind: m.kind.as_str(),
        unit: metering::unit_name(m.kind),
        aliases: m.aliases.clone(),
        fp64_tflops: text(m.fp64),
        fp32_tflops: text(m.fp32),
        fp16_tflops: text(m.fp16),
        scu_per_unit: m.scu.to_string(),
        scu_num: m.scu.num,
        scu_den: m.scu.den,
        scu_per_unit_decimal: m.scu.decimal(6),
        source: m.source.clone(),
    }
}

/// `meter catalogue`: offline, from the catalogue compiled in.
pub fn catalogue(output: Output) -> anyhow::Result<u8> {
    let catalogue = metering::shipped().latest();
    match output {
        Output::Json => print_json(&CatalogueJson {
            version: catalogue.version.clone(),
            effective_from: catalogue.effective_from.clone(),
            scu_definition: SCU_DEFINITION,
            models: catalogue.models.iter().map(model_json).collect(),
        })?,
        Output::Text => {
            say(format!(
                "device catalogue {}, effective from {} (UTC)",
                catalogue.version, catalogue.effective_from
            ));
            say(format!("{SCU_DEFINITION}."));
            say("ratings: vendor peak TFLOPS per unit; FP16 = FP16/BF16 dense tensor; - = not published");
            say("");
            let rows: Vec<[String; 8]> = catalogue
                .models
                .iter()
                .map(|m| {
                    let r = |r: Option<Tflops>| r.map_or_else(|| "-".to_owned(), |r| r.to_string());
                    [
                        m.id.clone(),
                        m.kind.as_str().to_owned(),
                        metering::unit_name(m.kind).to_owned(),
                        r(m.fp64),
                        r(m.fp32),
                        r(m.fp16),
                        m.scu.to_string(),
                        m.scu.decimal(6),
                    ]
                })
                .collect();
            let header = [
                "MODEL", "KIND", "UNIT", "FP64", "FP32", "FP16", "SCU/UNIT", "DECIMAL",
            ]
            .map(str::to_owned);
            let mut widths = header.clone().map(|h| h.len());
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            for row in std::iter::once(&header).chain(&rows) {
                let line: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .enumerate()
                    .map(|(i, (cell, w))| {
                        if i < 3 {
                            format!("{cell:<w$}")
                        } else {
                            format!("{cell:>w$}")
                        }
                    })
                    .collect();
                say(line.join("  ").trim_end());
            }
        }
    }
    Ok(exit::OK)
}

/// Milliseconds as seconds, exact, trailing zeros cut: 49380 → "49.38".
fn seconds(ms: u128) -> String {
    let (s, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        s.to_string()
    } else {
        format!("{s}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// Micro-SCU-hours as SCU-hours with six decimals.
fn scu_hours(micro: u128) -> String {
    format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
}

/// The unit a stored device model is metered in, from the catalogue the
/// record was rated with; "unit" when the model is unknown.
fn unit_of(catalogue: Option<&Catalogue>, model: &str) -> &'static str {
    catalogue
        .and_then(|c| c.lookup(model))
        .map_or("unit", |m| metering::unit_name(m.kind))
}

#[derive(Debug, Default, Serialize)]
struct ModelTotal {
    device_model: String,
    unit: &'static str,
    records: u64,
    /// Raw quantity: units × wall milliseconds.
    unit_ms: u128,
    scu_micro_hours: u128,
    /// Records of this model rated at 0 because it is not in the catalogue.
    unrated_records: u64,
}

#[derive(Debug, Serialize)]
struct UsageJson {
    job: String,
    records: Vec<UsageView>,
    by_device_model: Vec<ModelTotal>,
    total_scu_micro_hours: u128,
    unrated_records: u64,
    catalogue_versions: Vec<String>,
}

/// `meter usage --job ID`: GET /v1/jobs/{id}/usage, raw and standard.
pub async fn usage(job: String, output: Output) -> anyhow::Result<u8> {
    let client = remote::client()?;
    let records = client
        .get_all::<suanwang_api::UsagePage>(&format!("/v1/jobs/{job}/usage"))
        .await?;
    let catalogues = metering::shipped();
    let mut totals: BTreeMap<String, ModelTotal> = BTreeMap::new();
    let mut versions: Vec<String> = Vec::new();
    let mut lines = Vec::with_capacity(records.len());
    for u in &records {
        let unit = unit_of(catalogues.version(&u.catalogue_version), &u.device_model);
        let unit_ms = u128::from(u.units) * u128::from(u.wall_ms);
        let total = totals.entry(u.device_model.clone()).or_default();
        total.device_model.clone_from(&u.device_model);
        total.unit = unit;
        total.records += 1;
        total.unit_ms += unit_ms;
        total.scu_micro_hours += u128::from(u.scu_micro_hours);
        if !u.scu_rated {
            total.unrated_records += 1;
        }
        if !versions.contains(&u.catalogue_version) {
            versions.push(u.catalogue_version.clone());
        }
        let scu = if u.scu_rated {
            format!("{} SCU-h", scu_hours(u128::from(u.scu_micro_hours)))
        } else {
            format!("unrated (not in catalogue {})", u.catalogue_version)
        };
        lines.push(format!(
            "task {} attempt {} #{}  {}  {}  {} {unit} x {} s = {} {unit}-s  {scu}",
            u.task,
            u.attempt,
            u.seq,
            remote::where_ran(
                &u.site,
                u.site_name.as_deref(),
                u.site_region.as_deref(),
                &u.pool,
                u.pool_name.as_deref(),
            ),
            u.device_model,
            u.units,
            seconds(u128::from(u.wall_ms)),
            seconds(unit_ms),
        ));
    }
    versions.sort();
    let total_scu: u128 = totals.values().map(|t| t.scu_micro_hours).sum();
    let unrated: u64 = totals.values().map(|t| t.unrated_records).sum();
    match output {
        Output::Json => print_json(&UsageJson {
            job,
            records,
            by_device_model: totals.into_values().collect(),
            total_scu_micro_hours: total_scu,
            unrated_records: unrated,
            catalogue_versions: versions,
        })?,
        Output::Text => {
            for line in &lines {
                say(line);
            }
            if !lines.is_empty() {
                say("");
            }
            for t in totals.values() {
                let unrated = if t.unrated_records > 0 {
                    format!(" ({} unrated)", t.unrated_records)
                } else {
                    String::new()
                };
                say(format!(
                    "{}: {} records, {} {}-s, {} SCU-h{unrated}",
                    t.device_model,
                    t.records,
                    seconds(t.unit_ms),
                    t.unit,
                    scu_hours(t.scu_micro_hours)
                ));
            }
            let catalogue = if versions.is_empty() {
                String::new()
            } else {
                format!(", catalogue {}", versions.join(", "))
            };
            say(format!(
                "total: {} records, {} SCU-h{catalogue}{}",
                records.len(),
                scu_hours(total_scu),
                if unrated > 0 {
                    format!(", {unrated} records unrated")
                } else {
                    String::new()
                }
            ));
        }
    }
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_formatting() {
        assert_eq!(seconds(12_345), "12.345");
        assert_eq!(seconds(4 * 12_345), "49.38");
        assert_eq!(seconds(60_000), "60");
        assert_eq!(scu_hours(1_053), "0.001053");
        assert_eq!(scu_hours(3_958_000_000), "3958.000000");
    }
}

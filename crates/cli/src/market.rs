//! `suanwang market`: the network's pools with their prices and free
//! capacity, for anyone signed in. The server computes every figure
//! (`GET /v1/market`); this module pages through it and prints.

use clap::Args;
use suanwang_api::{MarketPool, ResourceKind};

use crate::exit;
use crate::out::{print_json, say};
use crate::remote::{client, Output};

#[derive(Debug, Args)]
pub struct MarketArgs {
    /// Only pools of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    /// Only pools of this chip family (e.g. x86, nvidia, ascend).
    #[arg(long)]
    pub family: Option<String>,
    /// Only pools of sites in this region (a topology region id, e.g. guian).
    #[arg(long)]
    pub region: Option<String>,
    /// Output format: text for people, json (the API's own) for scripts.
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum KindArg {
    Cpu,
    Gpu,
    Hpc,
}

impl From<KindArg> for ResourceKind {
    fn from(kind: KindArg) -> ResourceKind {
        match kind {
            KindArg::Cpu => ResourceKind::Cpu,
            KindArg::Gpu => ResourceKind::Gpu,
            KindArg::Hpc => ResourceKind::Hpc,
        }
    }
}

pub use suanwang_core::money::yuan_text as yuan;

pub async fn run(args: MarketArgs) -> anyhow::Result<u8> {
    let client = client()?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(kind) = args.kind {
        query.append_pair("kind", ResourceKind::from(kind).as_str());
    }
    if let Some(family) = &args.family {
        query.append_pair("family", family);
    }
    if let Some(region) = &args.region {
        query.append_pair("region", region);
    }
    let query = query.finish();
    let path = if query.is_empty() {
        "/v1/market".to_owned()
    } else {
        format!("/v1/market?{query}")
    };
    let pools: Vec<MarketPool> = client.get_all::<suanwang_api::MarketPage>(&path).await?;
    match args.output {
        Output::Json => print_json(&pools)?,
        Output::Text => {
            for line in table(&pools) {
                say(line);
            }
        }
    }
    Ok(exit::OK)
}

/// The market as aligned columns, prices in yuan per unit-hour.
fn table(pools: &[MarketPool]) -> Vec<String> {
    let header = [
        "SITE/POOL",
        "REGION",
        "KIND",
        "FAMILY",
        "MODEL",
        "FREE/TOTAL",
        "LIST",
        "CLEARING",
        "MARKET",
        "SCU/UNIT",
        "YUAN/SCU-H",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| (*h).to_owned()).collect()];
    for pool in pools {
        rows.push(vec![
            format!(
                "{}/{}{}",
                pool.site_name,
                pool.pool_name,
                if pool.healthy { "" } else { " (down)" }
            ),
            pool.region.clone(),
            pool.kind.as_str().to_owned(),
            pool.family.clone(),
            pool.device_model.clone(),
            format!("{}/{}", pool.free_units, pool.capacity_units),
            yuan(pool.list_micro_yuan_per_unit_hour),
            pool.clearing_micro_yuan_per_unit_hour
                .map_or_else(|| "-".to_owned(), yuan),
            yuan(pool.market_micro_yuan_per_unit_hour),
            pool.scu_per_unit.clone().unwrap_or_else(|| "-".to_owned()),
            pool.market_micro_yuan_per_scu_hour
                .map_or_else(|| "-".to_owned(), yuan),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut lines: Vec<String> = rows
        .iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, &width)| format!("{cell:<width$}"))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect();
    lines.push(format!(
        "{} pools; prices in yuan per unit-hour (MARKET = LIST + CLEARING, what a task placed now pays)",
        pools.len()
    ));
    lines
}

//! `suanwang bill show`: a tenant's bill lines with raw and standard
//! quantities, the price and its source, transfer charges, energy and
//! carbon, and the totals; as text, JSON or CSV. The server rates; this
//! module pages and prints.

use clap::{Args, Subcommand, ValueEnum};
use suanwang_api::{BillLine, BillPage, BillTotals};
use suanwang_core::money::yuan_text as yuan;

use crate::exit;
use crate::out::{print_json, say};
use crate::remote::client;

#[derive(Debug, Subcommand)]
pub enum BillCommand {
    /// Your bill lines and totals: for one job, one month, or everything.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Only this job's lines.
    #[arg(long)]
    pub job: Option<String>,
    /// Only lines rated in this UTC month (YYYY-MM).
    #[arg(long)]
    pub period: Option<String>,
    /// Output: text for people, json ({lines, totals}), or csv (one row per line).
    #[arg(long, value_enum, default_value = "text")]
    pub output: BillOutput,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BillOutput {
    Text,
    Json,
    Csv,
}

#[derive(Debug, serde::Serialize)]
struct Bill {
    lines: Vec<BillLine>,
    totals: BillTotals,
}

pub async fn run(command: BillCommand) -> anyhow::Result<u8> {
    let BillCommand::Show(args) = command;
    let client = client()?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(job) = &args.job {
        query.append_pair("job", job);
    }
    if let Some(period) = &args.period {
        query.append_pair("period", period);
    }
    let base = query.finish();
    let mut lines = Vec::new();
    let mut after: Option<String> = None;
    let totals = loop {
        let mut path = format!("/v1/bills?{base}");
        if let Some(after) = &after {
            path.push_str(&format!(
                "&after={}",
                form_urlencoded::byte_serialize(after.as_bytes()).collect::<String>()
            ));
        }
        let page: BillPage = client.get(&path).await?;
        lines.extend(page.lines);
        match page.next {
            Some(next) => after = Some(next),
            None => break page.totals,
        }
    };
    match args.output {
        BillOutput::Json => print_json(&Bill { lines, totals })?,
        BillOutput::Csv => print_csv(&lines)?,
        BillOutput::Text => {
            for line in &lines {
                say(format!(
                    "{} task {} attempt {} #{}  {} units × {} ms at {} yuan/unit-hour (round {} on {})  = {} yuan{}  {} Wh {} g CO2e",
                    line.job,
                    line.task,
                    line.attempt,
                    line.seq,
                    line.units,
                    line.wall_ms,
                    yuan(line.price_micro_yuan_per_unit_hour),
                    line.placed_at_ms,
                    line.pool,
                    yuan(line.compute_micro_yuan),
                    if line.transfer_micro_yuan > 0 {
                        format!(" + transfer {} yuan", yuan(line.transfer_micro_yuan))
                    } else {
                        String::new()
                    },
                    line.energy_wh,
                    line.co2_g,
                ));
            }
            say(format!(
                "{} lines: compute {} yuan + transfer {} yuan = {} yuan; {} SCU-h; {} kWh; {} kg CO2e",
                totals.lines,
                yuan(totals.compute_micro_yuan),
                yuan(totals.transfer_micro_yuan),
                yuan(totals.total_micro_yuan),
                yuan(i64::try_from(totals.scu_micro_hours).unwrap_or(i64::MAX)),
                thousandths(totals.energy_wh),
                thousandths(totals.co2_g),
            ));
        }
    }
    Ok(exit::OK)
}

/// Whole Wh as kWh (or g as kg), exact.
fn thousandths(value: u64) -> String {
    let text = format!("{}.{:03}", value / 1_000, value % 1_000);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn print_csv(lines: &[BillLine]) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for line in lines {
        writer.serialize(line)?;
    }
    if lines.is_empty() {
        writer.write_record([
            "site",
            "job",
            "task",
            "attempt",
            "seq",
            "pool",
            "units",
            "wall_ms",
            "scu_micro_hours",
            "catalogue_version",
            "placed_at_ms",
            "price_micro_yuan_per_unit_hour",
            "compute_micro_yuan",
            "data_mb",
            "transfer_micro_yuan_per_gb",
            "transfer_micro_yuan",
            "energy_wh",
            "co2_g",
            "rated_at_ms",
        ])?;
    }
    let text = String::from_utf8(writer.into_inner()?)?;
    say(text.trim_end());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousandths_are_exact() {
        assert_eq!(super::thousandths(1_680), "1.68");
        assert_eq!(super::thousandths(5), "0.005");
        assert_eq!(super::thousandths(2_000), "2");
    }
}

#[derive(Debug, Subcommand)]
pub enum EarningsCommand {
    /// What your sites' pools earned (provider), per pool, less the platform's fee.
    Show {
        /// Only lines rated in this UTC month (YYYY-MM).
        #[arg(long)]
        period: Option<String>,
        /// Output format: text for people, json (the API's own) for scripts.
        #[arg(long, value_enum, default_value = "text")]
        output: crate::remote::Output,
    },
}

pub async fn earnings(command: EarningsCommand) -> anyhow::Result<u8> {
    let EarningsCommand::Show { period, output } = command;
    let client = client()?;
    let mut pools = Vec::new();
    let mut after: Option<String> = None;
    let last = loop {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(period) = &period {
            query.append_pair("period", period);
        }
        if let Some(after) = &after {
            query.append_pair("after", after);
        }
        let page: suanwang_api::EarningsPage = client
            .get(&format!("/v1/earnings?{}", query.finish()))
            .await?;
        pools.extend(page.pools.iter().cloned());
        match &page.next {
            Some(next) => after = Some(next.clone()),
            None => break page,
        }
    };
    let earned: i64 = pools.iter().map(|p| p.earned_micro_yuan).sum();
    match output {
        crate::remote::Output::Json => print_json(&suanwang_api::EarningsPage {
            pools,
            earned_micro_yuan: earned,
            next: None,
            ..last
        })?,
        crate::remote::Output::Text => {
            for pool in &pools {
                say(format!(
                    "{} on {}: {} lines, compute {} yuan, fee {} yuan, earned {} yuan",
                    pool.pool,
                    pool.site,
                    pool.lines,
                    yuan(pool.compute_micro_yuan),
                    yuan(pool.fee_micro_yuan),
                    yuan(pool.earned_micro_yuan),
                ));
            }
            say(format!(
                "earned {} yuan (platform fee {} bps); paid into your earnings account so far: {} yuan",
                yuan(earned),
                last.fee_bps,
                yuan(last.settled_micro_yuan)
            ));
        }
    }
    Ok(exit::OK)
}

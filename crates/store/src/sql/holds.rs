//! Holds (`core::bill::HoldRef`): what a round's placements reserve on
//! the tenant's wallet, what is rated against them, and their settlement
//! when their last attempt ends. Every amount and every decision is the
//! core's (`core::bill`): this module loads rows, calls it, and writes what
//! it decided, in the caller's transaction.
//!
//! *Locks.* The `holds` and `hold_sites` rows of a job are written only by
//! transactions that hold the job's lock (rounds, reports, lease lapses,
//! cancels, deadlines all lock their jobs first); ledger accounts are
//! locked last, in id order, by the ledger's own functions.

use std::collections::{BTreeMap, BTreeSet};

use suanwang_core::bill::{self, settle, HoldRef, MoneyConfig};
use suanwang_core::machine::{Changes, View};
use suanwang_ledger::{AccountId, Applied, Transfer};

use crate::conn::{Arg, Conn};
use crate::sql::ledger::{self, LedgerTx};
use crate::sql::{int, placeholders, values, Named, INSERT_ROWS_MAX};
use crate::{Result, RoundHold, StoreError};

/// In a round's transaction, after its other writes: one row per hold,
/// and the ledger's pending transfer of each that reserves something. A
/// hold the wallet can no longer cover (it shrank since the round read
/// it) fails the round whole; the next round reads the wallets again.
pub(crate) async fn write_in(
    tx: &mut impl LedgerTx,
    holds: &[RoundHold],
    at_ms: i64,
) -> Result<()> {
    for chunk in holds.chunks(INSERT_ROWS_MAX / 8) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 6);
        for hold in chunk {
            assert!(
                hold.attempts > 0 && hold.amount_micro >= 0,
                "a hold places something"
            );
            args.extend([
                hold.job.as_str().into(),
                at_ms.into(),
                hold.tenant.as_str().into(),
                hold.data_region.as_str().into(),
                hold.amount_micro.into(),
                hold.attempts.into(),
            ]);
        }
        tx.execute(
            &format!(
                "INSERT INTO holds (job, round_at_ms, tenant, data_region, amount_micro, attempts) VALUES {}",
                values(chunk.len(), 6)
            ),
            &args,
        )
        .await?;
    }
    let transfers: Vec<(&RoundHold, Transfer)> = holds
        .iter()
        .filter(|hold| hold.amount_micro > 0)
        .map(|hold| {
            let of = HoldRef {
                job: hold.job.clone(),
                round_at_ms: at_ms,
            };
            let transfer = bill::hold(
                &of,
                &hold.tenant,
                hold.amount_micro,
                at_ms.saturating_add(bill::HOLD_OPEN_MS_MAX),
            );
            (hold, transfer)
        })
        .collect();
    for chunk in transfers.chunks(suanwang_ledger::book::BATCH_TRANSFERS_MAX) {
        let batch: Vec<Transfer> = chunk.iter().map(|(_, t)| t.clone()).collect();
        let results = ledger::create_transfers_in(tx, &batch, at_ms).await?;
        for ((hold, _), result) in chunk.iter().zip(results) {
            match result {
                Ok(Applied::Created) => {}
                other => {
                    return Err(StoreError::Conflict(format!(
                        "the hold of job {} on the wallet of tenant {} ({} micro-yuan): {other:?}; \
                         the round is not written, and the next one reads the wallets again",
                        hold.job, hold.tenant, hold.amount_micro
                    )))
                }
            }
        }
    }
    Ok(())
}

/// A bill line's share of its hold: rated against (job, round, site).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rated<'a> {
    pub job: &'a str,
    pub round_at_ms: i64,
    pub site: &'a str,
    pub compute_micro: i64,
    pub transfer_micro: i64,
}

/// (job, round, site): a hold's share at one site.
type SiteKey<'a> = (&'a str, i64, &'a str);

#[derive(Debug, sqlx::FromRow)]
struct HoldSiteSelect {
    job: String,
    round_at_ms: i64,
    site: String,
    rated_compute_micro: i64,
    rated_transfer_micro: i64,
    charged_compute_micro: i64,
    charged_transfer_micro: i64,
}

/// Adds what `lines` rated to their holds' per-site totals; returns the
/// holds they belong to. The sums are made here, not in SQL, checked.
pub(crate) async fn rated_in(tx: &mut impl Conn, lines: &[Rated<'_>]) -> Result<BTreeSet<HoldRef>> {
    let mut added: BTreeMap<SiteKey<'_>, (i64, i64)> = BTreeMap::new();
    for line in lines {
        let entry = added
            .entry((line.job, line.round_at_ms, line.site))
            .or_default();
        entry.0 = entry
            .0
            .checked_add(line.compute_micro)
            .expect("bounded amounts");
        entry.1 = entry
            .1
            .checked_add(line.transfer_micro)
            .expect("bounded amounts");
    }
    let keys: Vec<SiteKey<'_>> = added.keys().copied().collect();
    let mut totals: BTreeMap<(String, i64, String), (i64, i64)> = BTreeMap::new();
    for chunk in keys.chunks(INSERT_ROWS_MAX / 3) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 3);
        for &(job, round, site) in chunk {
            args.extend([job.into(), round.into(), site.into()]);
        }
        let rows: Vec<HoldSiteSelect> = tx
            .fetch_all(
                &format!(
                    "SELECT job, round_at_ms, site, rated_compute_micro, rated_transfer_micro, \
                     charged_compute_micro, charged_transfer_micro FROM hold_sites \
                     WHERE (job, round_at_ms, site) IN (VALUES {})",
                    values(chunk.len(), 3)
                ),
                &args,
            )
            .await?;
        for row in rows {
            totals.insert(
                (row.job, row.round_at_ms, row.site),
                (row.rated_compute_micro, row.rated_transfer_micro),
            );
        }
    }
    let rows: Vec<(SiteKey<'_>, (i64, i64))> = added
        .iter()
        .map(|(&key, &(compute, transfer))| {
            let before = totals
                .get(&(key.0.to_owned(), key.1, key.2.to_owned()))
                .copied()
                .unwrap_or((0, 0));
            let after = (
                before.0.checked_add(compute).expect("bounded amounts"),
                before.1.checked_add(transfer).expect("bounded amounts"),
            );
            (key, after)
        })
        .collect();
    for chunk in rows.chunks(INSERT_ROWS_MAX / 5) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 5);
        for &((job, round, site), (compute, transfer)) in chunk {
            args.extend([
                job.into(),
                round.into(),
                site.into(),
                compute.into(),
                transfer.into(),
            ]);
        }
        tx.execute(
            &format!(
                "INSERT INTO hold_sites (job, round_at_ms, site, rated_compute_micro, rated_transfer_micro) \
                 VALUES {} ON CONFLICT (job, round_at_ms, site) DO UPDATE SET \
                 rated_compute_micro = excluded.rated_compute_micro, \
                 rated_transfer_micro = excluded.rated_transfer_micro",
                values(chunk.len(), 5)
            ),
            &args,
        )
        .await?;
    }
    Ok(added
        .keys()
        .map(|&(job, round_at_ms, _)| HoldRef {
            job: job.to_owned(),
            round_at_ms,
        })
        .collect())
}

#[derive(Debug, sqlx::FromRow)]
struct HoldSelect {
    job: String,
    round_at_ms: i64,
    tenant: String,
    data_region: String,
    amount_micro: i64,
    attempts: i64,
    ended: i64,
    charges: i64,
}

#[derive(Debug, sqlx::FromRow)]
struct SiteOf {
    id: String,
    provider: String,
    region: String,
}

#[derive(Debug, sqlx::FromRow)]
struct OpenPending {
    id: String,
}

/// After a transaction's task changes (`changes`, decided on `view`) and
/// its rating (`rated`: the holds lines were rated against): counts the
/// attempts that ended against their holds, and settles every hold
/// `core::bill::settles` says is due — one linked chain each
/// (`core::bill::settle`), the wallets read under their locks.
pub(crate) async fn settle_in(
    tx: &mut impl LedgerTx,
    view: &View,
    changes: &Changes,
    rated: &BTreeSet<HoldRef>,
    config: &MoneyConfig,
    now_ms: i64,
) -> Result<()> {
    let mut ended: BTreeMap<HoldRef, u64> = BTreeMap::new();
    for (job, index) in bill::ended_attempts(view, changes) {
        let task = view
            .task(&job, index)
            .expect("an ended attempt's task is in the view");
        // Placed before prices (and so holds) were kept: nothing to settle.
        let Some(round_at_ms) = task.placed_at_ms else {
            continue;
        };
        *ended.entry(HoldRef { job, round_at_ms }).or_default() += 1;
    }
    let keys: BTreeSet<&HoldRef> = ended.keys().chain(rated).collect();
    if keys.is_empty() {
        return Ok(());
    }
    let holds = load_holds(tx, &keys).await?;
    // Which holds settle now, and the new counts of every hold touched.
    let mut settling: Vec<(HoldRef, HoldSelect)> = Vec::new();
    let mut counts: Vec<(HoldRef, u64, u32)> = Vec::new();
    for (of, row) in holds {
        let named = Named("hold", &row.job);
        let attempts: u64 = int("holds.attempts", named, row.attempts)?;
        let before: u64 = int("holds.ended", named, row.ended)?;
        let charges: u32 = int("holds.charges", named, row.charges)?;
        let now_ended = before + ended.get(&of).copied().unwrap_or(0);
        if now_ended > attempts {
            return Err(StoreError::Corrupt(format!(
                "hold {of}: {now_ended} of its {attempts} attempts ended"
            )));
        }
        if bill::settles(attempts, now_ended, charges, rated.contains(&of)) {
            counts.push((of.clone(), now_ended, charges + 1));
            settling.push((of, row));
        } else if now_ended != before {
            counts.push((of, now_ended, charges));
        }
    }
    if !settling.is_empty() {
        settle_holds(tx, &settling, config, now_ms).await?;
    }
    for (of, ended, charges) in counts {
        tx.execute(
            "UPDATE holds SET ended = ?, charges = ? WHERE job = ? AND round_at_ms = ?",
            &[
                ended.into(),
                charges.into(),
                of.job.as_str().into(),
                of.round_at_ms.into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// The `holds` rows of `keys` that exist (a hold of a round before holds
/// were kept has none).
async fn load_holds(
    tx: &mut impl Conn,
    keys: &BTreeSet<&HoldRef>,
) -> Result<Vec<(HoldRef, HoldSelect)>> {
    let keys: Vec<&&HoldRef> = keys.iter().collect();
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(INSERT_ROWS_MAX / 2) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 2);
        for of in chunk {
            args.extend([of.job.as_str().into(), of.round_at_ms.into()]);
        }
        let rows: Vec<HoldSelect> = tx
            .fetch_all(
                &format!(
                    "SELECT job, round_at_ms, tenant, data_region, amount_micro, attempts, ended, charges \
                     FROM holds WHERE (job, round_at_ms) IN (VALUES {}) ORDER BY job, round_at_ms",
                    values(chunk.len(), 2)
                ),
                &args,
            )
            .await?;
        for row in rows {
            let of = HoldRef {
                job: row.job.clone(),
                round_at_ms: row.round_at_ms,
            };
            out.push((of, row));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

async fn settle_holds(
    tx: &mut impl LedgerTx,
    settling: &[(HoldRef, HoldSelect)],
    config: &MoneyConfig,
    now_ms: i64,
) -> Result<()> {
    // Per hold, its sites' rated and charged totals.
    let mut per_hold: BTreeMap<HoldRef, Vec<HoldSiteSelect>> = BTreeMap::new();
    for chunk in settling.chunks(INSERT_ROWS_MAX / 2) {
        let mut args: Vec<Arg<'_>> = Vec::with_capacity(chunk.len() * 2);
        for (of, _) in chunk {
            args.extend([of.job.as_str().into(), of.round_at_ms.into()]);
        }
        let rows: Vec<HoldSiteSelect> = tx
            .fetch_all(
                &format!(
                    "SELECT job, round_at_ms, site, rated_compute_micro, rated_transfer_micro, \
                     charged_compute_micro, charged_transfer_micro FROM hold_sites \
                     WHERE (job, round_at_ms) IN (VALUES {}) ORDER BY job, round_at_ms, site",
                    values(chunk.len(), 2)
                ),
                &args,
            )
            .await?;
        for row in rows {
            let of = HoldRef {
                job: row.job.clone(),
                round_at_ms: row.round_at_ms,
            };
            per_hold.entry(of).or_default().push(row);
        }
    }
    // The sites' providers and regions.
    let site_ids: BTreeSet<&str> = per_hold
        .values()
        .flatten()
        .map(|row| row.site.as_str())
        .collect();
    let site_ids: Vec<&str> = site_ids.into_iter().collect();
    let mut sites: BTreeMap<String, SiteOf> = BTreeMap::new();
    for chunk in site_ids.chunks(INSERT_ROWS_MAX) {
        let args: Vec<Arg<'_>> = chunk.iter().map(|&id| id.into()).collect();
        let rows: Vec<SiteOf> = tx
            .fetch_all(
                &format!(
                    "SELECT id, provider, region FROM sites WHERE id IN ({})",
                    placeholders(chunk.len())
                ),
                &args,
            )
            .await?;
        for row in rows {
            sites.insert(row.id.clone(), row);
        }
    }
    // Which holds are still open in the ledger (one may have expired).
    let hold_ids: Vec<String> = settling
        .iter()
        .filter(|(_, row)| row.amount_micro > 0 && row.charges == 0)
        .map(|(of, _)| of.transfer_id().as_str().to_owned())
        .collect();
    let mut open: BTreeSet<String> = BTreeSet::new();
    for chunk in hold_ids.chunks(INSERT_ROWS_MAX) {
        let args: Vec<Arg<'_>> = chunk.iter().map(|id| id.as_str().into()).collect();
        let rows: Vec<OpenPending> = tx
            .fetch_all(
                &format!(
                    "SELECT id FROM ledger_open_pendings WHERE id IN ({})",
                    placeholders(chunk.len())
                ),
                &args,
            )
            .await?;
        open.extend(rows.into_iter().map(|row| row.id));
    }
    let mut dues: Vec<settle::Due> = Vec::with_capacity(settling.len());
    for (of, row) in settling {
        let charges: u32 = int("holds.charges", Named("hold", &row.job), row.charges)?;
        let id = of.transfer_id();
        let hold = open.contains(id.as_str()).then_some((id, row.amount_micro));
        let mut due_sites = Vec::new();
        for site in per_hold.get(of).map(Vec::as_slice).unwrap_or_default() {
            let compute = site.rated_compute_micro - site.charged_compute_micro;
            let transfer = site.rated_transfer_micro - site.charged_transfer_micro;
            if compute < 0 || transfer < 0 {
                return Err(StoreError::Corrupt(format!(
                    "hold {of} at site {}: more charged than rated",
                    site.site
                )));
            }
            if compute == 0 && transfer == 0 {
                continue;
            }
            let Some(at) = sites.get(&site.site) else {
                return Err(StoreError::Corrupt(format!(
                    "hold {of}: its site {} does not exist",
                    site.site
                )));
            };
            due_sites.push(settle::SiteDue {
                provider: at.provider.clone(),
                link: (row.data_region.clone(), at.region.clone()),
                compute_micro: compute,
                transfer_micro: transfer,
            });
        }
        dues.push(settle::Due {
            of: of.clone(),
            tenant: row.tenant.clone(),
            hold,
            sites: due_sites,
            wallet_spare_micro: 0,
            seq: charges,
        });
    }
    // Every account the chains may move, created on first use and locked
    // (id order) before the wallets are read.
    let mut accounts: Vec<suanwang_ledger::NewAccount> =
        dues.iter().flat_map(settle::accounts).collect();
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    accounts.dedup_by(|a, b| a.id == b.id);
    for chunk in accounts.chunks(suanwang_ledger::book::BATCH_ACCOUNTS_MAX) {
        for result in ledger::create_accounts_in(tx, chunk, now_ms).await? {
            if let Err(error) = result {
                return Err(StoreError::Corrupt(format!(
                    "a settlement's account cannot be made: {error}"
                )));
            }
        }
    }
    let wallets: BTreeSet<AccountId> = dues
        .iter()
        .map(|due| bill::chart::wallet(&due.tenant))
        .collect();
    let wallets: Vec<AccountId> = wallets.into_iter().collect();
    let mut spare: BTreeMap<String, i64> = BTreeMap::new();
    for account in ledger::accounts_locked_in(tx, &wallets).await? {
        let tenant = account
            .id
            .as_str()
            .strip_prefix("wallet:")
            .expect("a wallet's id")
            .to_owned();
        spare.insert(tenant, bill::spare_micro(Some(&account)));
    }
    let mut chains: Vec<Vec<Transfer>> = Vec::with_capacity(dues.len());
    for mut due in dues {
        due.wallet_spare_micro = spare.get(&due.tenant).copied().unwrap_or(0);
        let settlement = settle::settle(&due, config);
        if let Some(left) = spare.get_mut(&due.tenant) {
            *left -= settlement.from_wallet_micro;
        }
        if !settlement.transfers.is_empty() {
            chains.push(settlement.transfers);
        }
    }
    // Whole chains per batch: a linked chain is applied whole or not at all.
    let mut batch: Vec<Transfer> = Vec::new();
    for chain in chains {
        if batch.len() + chain.len() > suanwang_ledger::book::BATCH_TRANSFERS_MAX {
            post(tx, &batch, now_ms).await?;
            batch.clear();
        }
        batch.extend(chain);
    }
    post(tx, &batch, now_ms).await?;
    // Everything rated so far is charged.
    for (of, _) in settling {
        tx.execute(
            "UPDATE hold_sites SET charged_compute_micro = rated_compute_micro, \
             charged_transfer_micro = rated_transfer_micro WHERE job = ? AND round_at_ms = ?",
            &[of.job.as_str().into(), of.round_at_ms.into()],
        )
        .await?;
    }
    Ok(())
}

async fn post(tx: &mut impl LedgerTx, batch: &[Transfer], now_ms: i64) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let results = ledger::create_transfers_in(tx, batch, now_ms).await?;
    for (transfer, result) in batch.iter().zip(results) {
        if !matches!(result, Ok(Applied::Created)) {
            // Each chain's ids are its hold's and charge number's: one
            // that exists, or does not apply, is a broken count.
            return Err(StoreError::Corrupt(format!(
                "settlement transfer {} ({}): {result:?}",
                transfer.id, transfer.reference
            )));
        }
    }
    Ok(())
}

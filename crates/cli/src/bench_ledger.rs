//! `suanwang bench ledger`: transfers per second through the ledger's core
//! in memory, then durably through the store, with every invariant
//! checked (the core's postconditions on every batch, and a full
//! `ledger_check` replay of the stored history at the end).
//!
//! The workload is a day of metering: many tenant wallets paying many
//! providers. Of each batch, about half are posted charges (a tenth of them
//! linked with the platform's fee), a quarter holds (pending, an hour),
//! and the rest posts for less and voids of earlier holds. Wallets are
//! funded up front, so every transfer is created; the run says so. At the
//! end of the durable run the histories of three accounts (the platform's
//! fees, the cash account, the first wallet) are paged through
//! `LedgerStore::transfers` and held to what the run sent them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use clap::Args;
use suanwang_store::ledger::{
    codes, AccountId, Applied, Kind, Ledger, NewAccount, Side, Transfer, TransferId,
    BATCH_ACCOUNTS_MAX, BATCH_TRANSFERS_MAX,
};
use suanwang_store::prelude::*;
use suanwang_store::{PgStore, SqliteStore};

use crate::exit;

#[derive(Debug, Args)]
pub struct LedgerArgs {
    /// sqlite (a fresh file under --work-dir) or a postgres:// URL.
    #[arg(long, default_value = "sqlite")]
    db: String,
    /// How long each of the two runs (in memory, durable) lasts.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Transfers per batch (one durable transaction each).
    #[arg(long, default_value_t = 8_000)]
    batch: usize,
    /// Tenant wallets paying.
    #[arg(long, default_value_t = 10_000)]
    wallets: usize,
    /// Providers paid.
    #[arg(long, default_value_t = 1_000)]
    providers: usize,
    /// At most this many transfers in memory (bounds the memory held).
    #[arg(long, default_value_t = 5_000_000)]
    memory_max: usize,
    /// Skip the final `ledger_check` replay of the stored history.
    #[arg(long)]
    no_check: bool,
    /// Where the SQLite database is written.
    #[arg(long, default_value = "bench-out")]
    work_dir: PathBuf,
}

/// A small, fast, seeded generator: the workload is the same every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Makes the batches: realistic ids and references, and holds resolved
/// in later batches.
struct Workload {
    tag: String,
    wallets: Vec<AccountId>,
    providers: Vec<AccountId>,
    fee: AccountId,
    cash: AccountId,
    rng: XorShift,
    n: u64,
    /// Holds created in earlier batches: (id, wallet, provider, amount).
    holds: VecDeque<(TransferId, usize, usize, i64)>,
}

/// About an hour of work on one card, in micro-yuan.
const CHARGE_MICRO_MAX: i64 = 6_000_000;
const HOLD_MS: i64 = 3_600_000;
/// Each wallet's top-up: more than a run can spend.
const TOPUP_MICRO: i64 = 100_000_000_000_000;

impl Workload {
    fn new(tag: &str, wallets: usize, providers: usize) -> Workload {
        let id = |text: String| AccountId::new(&text).expect("a bench id");
        Workload {
            tag: tag.to_owned(),
            wallets: (0..wallets).map(|i| id(format!("{tag}:w:{i}"))).collect(),
            providers: (0..providers).map(|i| id(format!("{tag}:e:{i}"))).collect(),
            fee: id(format!("{tag}:fee")),
            cash: id(format!("{tag}:cash")),
            rng: XorShift(0x9e37_79b9_7f4a_7c15),
            n: 0,
            holds: VecDeque::new(),
        }
    }

    fn accounts(&self) -> Vec<NewAccount> {
        let mut accounts = vec![
            NewAccount::new(self.cash.clone(), Side::Debit),
            NewAccount::new(self.fee.clone(), Side::Credit),
        ];
        accounts.extend(
            self.wallets
                .iter()
                .map(|w| NewAccount::new(w.clone(), Side::Credit).floor(0)),
        );
        accounts.extend(
            self.providers
                .iter()
                .map(|p| NewAccount::new(p.clone(), Side::Credit)),
        );
        accounts
    }

    fn topups(&self) -> Vec<Transfer> {
        self.wallets
            .iter()
            .map(|w| {
                let id = TransferId::new(&format!("{}:top:{w}", self.tag)).expect("an id");
                Transfer::new(id, self.cash.clone(), w.clone(), TOPUP_MICRO, codes::TOPUP)
            })
            .collect()
    }

    fn id(&mut self, kind: &str) -> TransferId {
        self.n += 1;
        TransferId::new(&format!("{}:{kind}:{}", self.tag, self.n)).expect("an id")
    }

    fn batch(&mut self, size: usize, now_ms: i64) -> Vec<Transfer> {
        let mut batch = Vec::with_capacity(size);
        let mut made_holds = Vec::new();
        while batch.len() < size {
            let roll = self.rng.below(100);
            let (w, p) = (
                self.rng.below(self.wallets.len()),
                self.rng.below(self.providers.len()),
            );
            let amount = 1 + (self.rng.next() % CHARGE_MICRO_MAX as u64) as i64;
            let reference = format!("usage:site-{p}/job-{}/{}/1/0", self.n, w % 64);
            if roll < 45 || (roll >= 70 && self.holds.is_empty()) {
                let id = self.id("c");
                let charge = Transfer::new(
                    id,
                    self.wallets[w].clone(),
                    self.providers[p].clone(),
                    amount,
                    codes::CHARGE,
                )
                .reference(reference.clone());
                if roll < 5 && batch.len() + 2 <= size {
                    let fee = Transfer::new(
                        self.id("f"),
                        self.wallets[w].clone(),
                        self.fee.clone(),
                        amount / 20 + 1,
                        codes::FEE,
                    )
                    .reference(reference);
                    batch.push(charge.linked());
                    batch.push(fee);
                } else {
                    batch.push(charge);
                }
            } else if roll < 70 {
                let id = self.id("h");
                made_holds.push((id.clone(), w, p, amount));
                batch.push(
                    Transfer::new(
                        id,
                        self.wallets[w].clone(),
                        self.providers[p].clone(),
                        amount,
                        codes::HOLD,
                    )
                    .kind(Kind::Pending {
                        expires_at_ms: now_ms + HOLD_MS,
                    })
                    .reference(reference),
                );
            } else {
                let (pending, w, p, held) = self.holds.pop_front().expect("a hold");
                let (debit, credit) = (self.wallets[w].clone(), self.providers[p].clone());
                let transfer = if roll < 95 {
                    let used = 1 + (self.rng.next() % held as u64) as i64;
                    Transfer::new(self.id("p"), debit, credit, used, codes::CHARGE)
                        .kind(Kind::Post { pending })
                } else {
                    Transfer::new(self.id("v"), debit, credit, held, codes::HOLD)
                        .kind(Kind::Void { pending })
                };
                batch.push(transfer.reference(reference));
            }
        }
        self.holds.extend(made_holds);
        batch
    }
}

/// This thread's CPU time so far, in seconds (Linux's
/// `/proc/thread-self/stat`, in clock ticks of 1/100 s); `None` elsewhere.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// What the in-memory run measured.
struct Memory {
    transfers: usize,
    /// Transfers over the wall time spent in `create_transfers`.
    per_s: f64,
    /// Transfers over this thread's CPU time: what one core does when the
    /// machine is shared.
    per_cpu_s: Option<f64>,
}

/// Transfers per second through the in-memory core. The batches are made
/// on another thread, so this one's CPU time is the core's.
fn in_memory(args: &LedgerArgs) -> anyhow::Result<Memory> {
    let mut work = Workload::new("m", args.wallets, args.providers);
    let mut ledger = Ledger::with_capacity(args.wallets + args.providers + 2, args.memory_max);
    let now_ms = 1_800_000_000_000;
    for chunk in work.accounts().chunks(BATCH_ACCOUNTS_MAX) {
        let created = ledger.create_accounts(chunk, now_ms);
        ensure!(created.iter().all(|r| *r == Ok(Applied::Created)));
    }
    for chunk in work.topups().chunks(BATCH_TRANSFERS_MAX) {
        let done = ledger.create_transfers(chunk, now_ms);
        ensure!(done.iter().all(|r| *r == Ok(Applied::Created)));
    }
    let (batches, to_apply) = std::sync::mpsc::sync_channel::<(i64, Vec<Transfer>)>(4);
    let (size, max) = (args.batch, args.memory_max);
    let maker = std::thread::spawn(move || {
        let mut made = 0;
        let mut step = 0;
        while made < max {
            step += 1;
            let batch = work.batch(size, now_ms + step);
            made += batch.len();
            if batches.send((now_ms + step, batch)).is_err() {
                return;
            }
        }
    });
    let deadline = Duration::from_secs(args.seconds);
    let (mut spent, mut transfers) = (Duration::ZERO, 0usize);
    let cpu_before = thread_cpu_s();
    while spent < deadline {
        let Ok((at_ms, batch)) = to_apply.recv() else {
            break;
        };
        let started = Instant::now();
        let results = ledger.create_transfers(&batch, at_ms);
        spent += started.elapsed();
        let created = results
            .iter()
            .filter(|r| **r == Ok(Applied::Created))
            .count();
        ensure!(
            created == batch.len(),
            "in memory: {} of {} created: {:?}",
            created,
            batch.len(),
            results.iter().find(|r| r.is_err())
        );
        transfers += batch.len();
    }
    let cpu_s = thread_cpu_s()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    drop(to_apply);
    maker
        .join()
        .map_err(|_| anyhow::anyhow!("the batch maker failed"))?;
    let started = Instant::now();
    ledger
        .check()
        .map_err(|e| anyhow::anyhow!("ledger check: {e}"))?;
    let checked = started.elapsed().as_secs_f64();
    crate::out::warn(format!(
        "in memory: {transfers} transfers, replayed and checked in {checked:.2} s"
    ));
    Ok(Memory {
        transfers,
        per_s: transfers as f64 / spent.as_secs_f64(),
        per_cpu_s: cpu_s.filter(|s| *s > 0.0).map(|s| transfers as f64 / s),
    })
}

/// Transfers per second through the store: each batch one committed
/// transaction.
async fn durable(args: &LedgerArgs) -> anyhow::Result<serde_json::Value> {
    let (store, backend): (Arc<dyn Store>, &str) = if args.db == "sqlite" {
        std::fs::create_dir_all(&args.work_dir)?;
        let path = args
            .work_dir
            .join(format!("ledger-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        let store = SqliteStore::open(&path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        (Arc::new(store), "sqlite")
    } else {
        let store = PgStore::open(&args.db)
            .await
            .context("opening PostgreSQL")?;
        (Arc::new(store), "postgres")
    };
    // Ids of their own, so that a database used before does not answer
    // `Exists`.
    let tag = format!("d{}", suanwang_server::now_ms());
    let mut work = Workload::new(&tag, args.wallets, args.providers);
    let mut now_ms = suanwang_server::now_ms();
    for chunk in work.accounts().chunks(BATCH_ACCOUNTS_MAX) {
        let created = store.create_accounts(chunk, now_ms).await?;
        ensure!(created.iter().all(|r| *r == Ok(Applied::Created)));
    }
    let mut watched = Watched::new([work.fee.clone(), work.cash.clone(), work.wallets[0].clone()]);
    for chunk in work.topups().chunks(BATCH_TRANSFERS_MAX) {
        let done = store.create_transfers(chunk, now_ms).await?;
        ensure!(done.iter().all(|r| *r == Ok(Applied::Created)));
        watched.saw(chunk);
    }
    let deadline = Duration::from_secs(args.seconds);
    let (mut spent, mut transfers, mut batches) = (Duration::ZERO, 0usize, 0usize);
    let mut slowest = Duration::ZERO;
    while spent < deadline {
        now_ms += 1;
        let batch = work.batch(args.batch, now_ms);
        let started = Instant::now();
        let results = store.create_transfers(&batch, now_ms).await?;
        let took = started.elapsed();
        spent += took;
        slowest = slowest.max(took);
        let created = results
            .iter()
            .filter(|r| **r == Ok(Applied::Created))
            .count();
        ensure!(
            created == batch.len(),
            "durable: {} of {} created: {:?}",
            created,
            batch.len(),
            results.iter().find(|r| r.is_err())
        );
        transfers += batch.len();
        batches += 1;
        watched.saw(&batch);
    }
    let history = watched.check(&*store).await?;
    let check = if args.no_check {
        serde_json::Value::Null
    } else {
        let started = Instant::now();
        let check = store.ledger_check().await.context("ledger_check")?;
        serde_json::json!({
            "accounts": check.accounts,
            "transfers": check.transfers,
            "open_pendings": check.open_pendings,
            "seconds": started.elapsed().as_secs_f64(),
        })
    };
    Ok(serde_json::json!({
        "backend": backend,
        "transfers": transfers,
        "batches": batches,
        "transfers_per_s": (transfers as f64 / spent.as_secs_f64()).round(),
        "batch_ms_mean": spent.as_secs_f64() * 1e3 / batches.max(1) as f64,
        "batch_ms_max": slowest.as_secs_f64() * 1e3,
        "check": check,
        "history": history,
    }))
}

/// Accounts whose stored history the durable run checks, with the ids of
/// the transfers sent to them, in order.
struct Watched {
    accounts: Vec<(AccountId, Vec<TransferId>)>,
}

impl Watched {
    fn new(accounts: [AccountId; 3]) -> Watched {
        Watched {
            accounts: accounts.into_iter().map(|a| (a, Vec::new())).collect(),
        }
    }

    /// Notes the transfers of a batch, all created.
    fn saw(&mut self, batch: &[Transfer]) {
        for t in batch {
            for (account, ids) in &mut self.accounts {
                if t.debit == *account || t.credit == *account {
                    ids.push(t.id.clone());
                }
            }
        }
    }

    /// Pages through each account's stored history and holds it to what
    /// was sent.
    async fn check(&self, store: &dyn Store) -> anyhow::Result<serde_json::Value> {
        let started = Instant::now();
        let (mut pages, mut rows) = (0usize, 0usize);
        for (account, sent) in &self.accounts {
            let mut stored: Vec<TransferId> = Vec::with_capacity(sent.len());
            let mut after = 0;
            loop {
                let page = store.transfers(account, after, 1_000).await?;
                pages += 1;
                let Some(last) = page.last() else { break };
                ensure!(last.seq > after, "history pages move on");
                after = last.seq;
                stored.extend(page.into_iter().map(|row| row.record.transfer.id));
            }
            rows += stored.len();
            ensure!(
                stored == *sent,
                "the stored history of {account} ({} transfers) is not the {} sent",
                stored.len(),
                sent.len()
            );
        }
        Ok(serde_json::json!({
            "accounts": self.accounts.len(),
            "transfers": rows,
            "pages": pages,
            "seconds": started.elapsed().as_secs_f64(),
        }))
    }
}

pub async fn run(args: LedgerArgs) -> anyhow::Result<u8> {
    ensure!(
        (1..=BATCH_TRANSFERS_MAX).contains(&args.batch),
        "--batch: 1 to {BATCH_TRANSFERS_MAX}"
    );
    ensure!(
        args.wallets >= 1 && args.providers >= 1,
        "--wallets, --providers: at least 1"
    );
    let memory = in_memory(&args)?;
    let durable = durable(&args).await?;
    let line = serde_json::json!({
        "batch": args.batch,
        "wallets": args.wallets,
        "providers": args.providers,
        "memory": {
            "transfers": memory.transfers,
            "transfers_per_s": memory.per_s.round(),
            "transfers_per_cpu_s": memory.per_cpu_s.map(f64::round),
        },
        "durable": durable,
    });
    crate::out::say(line.to_string());
    Ok(exit::OK)
}

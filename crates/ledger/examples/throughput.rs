//! Profiling aid: the in-memory workload of `suanwang bench ledger`
//! (crates/cli/src/bench_ledger.rs) through the core alone.
#![allow(clippy::print_stdout)]
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use suanwang_ledger::*;

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let max: usize = args.get(1).map_or(5_000_000, |a| a.parse().unwrap());
    let size = 8_000;
    let mut work = Workload::new("m", 10_000, 1_000);
    let mut ledger = Ledger::with_capacity(11_002, max);
    let now_ms = 1_800_000_000_000;
    for chunk in work.accounts().chunks(BATCH_ACCOUNTS_MAX) {
        ledger.create_accounts(chunk, now_ms);
    }
    for chunk in work.topups().chunks(BATCH_TRANSFERS_MAX) {
        ledger.create_transfers(chunk, now_ms);
    }
    let cpu = || {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let f: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
    };
    let cpu0 = cpu();
    let mut spent = Duration::ZERO;
    let mut n = 0;
    let mut gen = 0.0;
    let mut step = 0;
    while n < max {
        step += 1;
        let g0 = cpu();
        let batch = work.batch(size, now_ms + step);
        gen += cpu() - g0;
        let at = &(now_ms + step);
        let started = Instant::now();
        let results = ledger.create_transfers(&batch, *at);
        spent += started.elapsed();
        assert!(results.iter().all(|r| *r == Ok(Applied::Created)));
        n += batch.len();
    }
    let cpu0 = cpu0 + gen;
    let c = cpu() - cpu0;
    println!(
        "{n} transfers, {:.0}/s, {:.0}/cpu-s",
        n as f64 / spent.as_secs_f64(),
        n as f64 / c
    );
}

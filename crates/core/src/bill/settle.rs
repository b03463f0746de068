//! Settling a hold's charges: the hold posted for what was rated, any
//! excess charged directly, and escrow paying the providers, the platform
//! and the carriers — one linked chain, applied whole or not at all.
//!
//! Rules:
//! - **The hold pays first.** It is posted for what is due, at most its
//!   amount (posting for less releases the rest to the wallet); with
//!   nothing due it is voided.
//! - **Beyond the hold** (usage past the estimate, or a record that came
//!   after the hold was settled): the wallet pays what it can spare
//!   above its floor, and the rest is arrears — owed by the tenant, never
//!   an overdraft of its wallet.
//! - **Who earns what:** per site, the platform's fee is `floor(compute ×
//!   fee_bps / 10,000)` and the site's provider earns the rest of its
//!   compute; the carrier of each link earns its transfer charges. The
//!   parts sum exactly to what came into escrow, so escrow's posted
//!   balance returns to zero.

use std::collections::BTreeMap;

use suanwang_ledger::{codes, Kind, Transfer, TransferId};

use super::{chart, HoldRef, MoneyConfig, BPS_PER_ONE};

/// Rated and not yet charged, of one site of a hold's placements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteDue {
    pub provider: String,
    /// The link its data crossed (data region, site region).
    pub link: (String, String),
    pub compute_micro: i64,
    pub transfer_micro: i64,
}

/// What is due for one hold now, and what can pay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Due {
    pub of: HoldRef,
    pub tenant: String,
    /// The hold's open pending transfer: its id and amount (`None` when
    /// nothing was held, or it was settled or expired).
    pub hold: Option<(TransferId, i64)>,
    pub sites: Vec<SiteDue>,
    /// What the wallet can pay beyond its holds and above its floor.
    pub wallet_spare_micro: i64,
    /// This hold's charge number: 0 when its last attempt ends, 1, 2, …
    /// for records that come after; part of every id, so each charge
    /// happens once.
    pub seq: u32,
}

/// The chain, and where the money came from and went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    pub transfers: Vec<Transfer>,
    pub compute_micro: i64,
    pub transfer_micro: i64,
    pub from_hold_micro: i64,
    pub from_wallet_micro: i64,
    pub to_arrears_micro: i64,
    pub fee_micro: i64,
    pub provider_micro: i64,
    pub carrier_micro: i64,
}

impl Settlement {
    pub fn charged_micro(&self) -> i64 {
        self.from_hold_micro + self.from_wallet_micro + self.to_arrears_micro
    }
}

pub fn settle(due: &Due, config: &MoneyConfig) -> Settlement {
    let mut out = Settlement::default();
    for site in &due.sites {
        assert!(
            site.compute_micro >= 0 && site.transfer_micro >= 0,
            "rated amounts are >= 0"
        );
        out.compute_micro = out
            .compute_micro
            .checked_add(site.compute_micro)
            .expect("bounded amounts");
        out.transfer_micro = out
            .transfer_micro
            .checked_add(site.transfer_micro)
            .expect("bounded amounts");
    }
    let owed = out
        .compute_micro
        .checked_add(out.transfer_micro)
        .expect("bounded amounts");
    let id = |part: &str| {
        TransferId::new(&format!("s:{}:{}:{part}", due.of, due.seq))
            .expect("settlement ids are plain and short")
    };
    let reference = format!("placement {}", due.of);
    let wallet = chart::wallet(&due.tenant);
    let mut chain = Vec::new();
    if let Some((hold, held)) = &due.hold {
        assert!(*held > 0, "a hold reserves something");
        if owed > 0 {
            out.from_hold_micro = owed.min(*held);
            chain.push(
                Transfer::new(
                    id("post"),
                    wallet.clone(),
                    chart::escrow(),
                    out.from_hold_micro,
                    codes::CHARGE,
                )
                .kind(Kind::Post {
                    pending: hold.clone(),
                }),
            );
        } else {
            chain.push(
                Transfer::new(
                    id("void"),
                    wallet.clone(),
                    chart::escrow(),
                    *held,
                    codes::HOLD,
                )
                .kind(Kind::Void {
                    pending: hold.clone(),
                }),
            );
        }
    }
    let beyond = owed - out.from_hold_micro;
    out.from_wallet_micro = beyond.min(due.wallet_spare_micro.max(0));
    out.to_arrears_micro = beyond - out.from_wallet_micro;
    if out.from_wallet_micro > 0 {
        chain.push(Transfer::new(
            id("wallet"),
            wallet.clone(),
            chart::escrow(),
            out.from_wallet_micro,
            codes::CHARGE,
        ));
    }
    if out.to_arrears_micro > 0 {
        chain.push(Transfer::new(
            id("arrears"),
            chart::arrears(&due.tenant),
            chart::escrow(),
            out.to_arrears_micro,
            codes::CHARGE,
        ));
    }
    // Escrow pays out exactly what came in: compute to the providers and
    // the platform, transfer to the carriers; one transfer per account.
    let mut providers: BTreeMap<&str, i64> = BTreeMap::new();
    let mut carriers: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for site in &due.sites {
        let fee = site.compute_micro * config.fee_bps / BPS_PER_ONE;
        out.fee_micro += fee;
        *providers.entry(site.provider.as_str()).or_default() += site.compute_micro - fee;
        if site.transfer_micro > 0 {
            *carriers
                .entry((site.link.0.as_str(), site.link.1.as_str()))
                .or_default() += site.transfer_micro;
        }
    }
    for (i, (provider, earned)) in providers.into_iter().enumerate() {
        out.provider_micro += earned;
        if earned > 0 {
            chain.push(Transfer::new(
                id(&format!("earn{i}")),
                chart::escrow(),
                chart::earnings(provider),
                earned,
                codes::PAYOUT,
            ));
        }
    }
    if out.fee_micro > 0 {
        chain.push(Transfer::new(
            id("fee"),
            chart::escrow(),
            chart::fees(),
            out.fee_micro,
            codes::FEE,
        ));
    }
    for (i, ((from, to), carried)) in carriers.into_iter().enumerate() {
        out.carrier_micro += carried;
        chain.push(Transfer::new(
            id(&format!("carry{i}")),
            chart::escrow(),
            chart::carrier(from, to),
            carried,
            codes::TRANSFER_CHARGE,
        ));
    }
    // Postconditions: what came in went out, to the micro-yuan.
    assert_eq!(out.charged_micro(), owed, "every micro-yuan due is charged");
    assert_eq!(
        out.fee_micro + out.provider_micro + out.carrier_micro,
        owed,
        "escrow pays out what it took"
    );
    let last = chain.len().saturating_sub(1);
    out.transfers = chain
        .into_iter()
        .enumerate()
        .map(|(i, transfer)| {
            let transfer = transfer.reference(reference.clone());
            if i < last {
                transfer.linked()
            } else {
                transfer
            }
        })
        .collect();
    out
}

/// The accounts a settlement of `due` may move, sorted: to create (they
/// are made on first use) and to lock before reading the wallet.
pub fn accounts(due: &Due) -> Vec<suanwang_ledger::NewAccount> {
    let mut accounts = chart::system_accounts();
    accounts.extend(chart::tenant_accounts(&due.tenant));
    for site in &due.sites {
        accounts.extend(chart::provider_accounts(&site.provider));
        accounts.push(chart::carrier_account(&site.link.0, &site.link.1));
    }
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    accounts.dedup_by(|a, b| a.id == b.id);
    accounts
}

#[cfg(test)]
mod tests {
    use suanwang_ledger::{Ledger, NewAccount};

    use super::*;
    use crate::bill::hold;

    fn of() -> HoldRef {
        HoldRef {
            job: "job_1".into(),
            round_at_ms: 1_796_083_200_000,
        }
    }

    fn due(hold: Option<i64>, compute: i64, transfer: i64, spare: i64) -> Due {
        Due {
            hold: hold.map(|amount| (of().transfer_id(), amount)),
            of: of(),
            tenant: "t".into(),
            sites: vec![SiteDue {
                provider: "p".into(),
                link: ("shanghai".into(), "guian".into()),
                compute_micro: compute,
                transfer_micro: transfer,
            }],
            wallet_spare_micro: spare,
            seq: 0,
        }
    }

    /// A ledger with the chart, a wallet topped up with `wallet`, and the
    /// attempt's hold of `held`.
    fn ledger(wallet: i64, held: Option<i64>) -> Ledger {
        let mut ledger = Ledger::default();
        let mut accounts: Vec<NewAccount> = chart::system_accounts();
        accounts.extend(chart::tenant_accounts("t"));
        accounts.extend(chart::provider_accounts("p"));
        accounts.push(chart::carrier_account("shanghai", "guian"));
        for result in ledger.create_accounts(&accounts, 0) {
            assert!(result.is_ok(), "{result:?}");
        }
        let topup = Transfer::new(
            TransferId::new("topup:1").unwrap(),
            chart::cash(),
            chart::wallet("t"),
            wallet,
            codes::TOPUP,
        );
        assert!(ledger.create_transfers(&[topup], 1)[0].is_ok());
        if let Some(held) = held {
            let hold = hold(&of(), "t", held, 1_000_000);
            let result = ledger.create_transfers(&[hold], 2);
            assert!(result[0].is_ok(), "{result:?}");
        }
        ledger
    }

    fn apply(ledger: &mut Ledger, settlement: &Settlement) {
        for result in ledger.create_transfers(&settlement.transfers, 3) {
            assert!(result.is_ok(), "{result:?}");
        }
        ledger.check().expect("balances replay from the history");
        let escrow = ledger.account(&chart::escrow()).unwrap();
        assert_eq!(
            escrow.totals.credits_posted_micro,
            escrow.totals.debits_posted_micro
        );
    }

    fn balance(ledger: &Ledger, id: suanwang_ledger::AccountId) -> i64 {
        ledger.account(&id).unwrap().balance_micro()
    }

    #[test]
    fn the_hold_pays_and_the_rest_is_released() {
        let mut ledger = ledger(10_000_000, Some(3_000_000));
        let config = MoneyConfig::new(500).unwrap();
        let settlement = settle(&due(Some(3_000_000), 1_000_000, 45_000, 0), &config);
        assert_eq!(settlement.from_hold_micro, 1_045_000);
        assert_eq!(settlement.fee_micro, 50_000);
        assert_eq!(settlement.provider_micro, 950_000);
        assert_eq!(settlement.carrier_micro, 45_000);
        apply(&mut ledger, &settlement);
        assert_eq!(balance(&ledger, chart::wallet("t")), 10_000_000 - 1_045_000);
        let wallet = ledger.account(&chart::wallet("t")).unwrap();
        assert_eq!(wallet.totals.debits_pending_micro, 0, "released");
        assert_eq!(balance(&ledger, chart::earnings("p")), 950_000);
        assert_eq!(balance(&ledger, chart::fees()), 50_000);
        assert_eq!(
            balance(&ledger, chart::carrier("shanghai", "guian")),
            45_000
        );
    }

    #[test]
    fn beyond_the_hold_the_wallet_pays_what_it_can_and_the_rest_is_owed() {
        // Held 1 yuan of a 3-yuan wallet; 5 yuan ran.
        let mut ledger = ledger(3_000_000, Some(1_000_000));
        let config = MoneyConfig::new(0).unwrap();
        let settlement = settle(&due(Some(1_000_000), 5_000_000, 0, 2_000_000), &config);
        assert_eq!(
            (
                settlement.from_hold_micro,
                settlement.from_wallet_micro,
                settlement.to_arrears_micro
            ),
            (1_000_000, 2_000_000, 2_000_000)
        );
        apply(&mut ledger, &settlement);
        assert_eq!(
            balance(&ledger, chart::wallet("t")),
            0,
            "never below its floor"
        );
        assert_eq!(balance(&ledger, chart::arrears("t")), 2_000_000);
        assert_eq!(balance(&ledger, chart::earnings("p")), 5_000_000);
    }

    #[test]
    fn nothing_due_voids_the_hold() {
        let mut ledger = ledger(3_000_000, Some(1_000_000));
        let settlement = settle(
            &due(Some(1_000_000), 0, 0, 0),
            &MoneyConfig::new(500).unwrap(),
        );
        assert_eq!(settlement.transfers.len(), 1);
        apply(&mut ledger, &settlement);
        let wallet = ledger.account(&chart::wallet("t")).unwrap();
        assert_eq!(wallet.available_micro(), 3_000_000);
        // Settling twice is one settlement: the ids are the hold's.
        let again = ledger.create_transfers(&settlement.transfers, 4);
        assert!(
            matches!(again[0], Ok(suanwang_ledger::Applied::Exists)),
            "{again:?}"
        );
    }

    #[test]
    fn a_late_record_is_charged_directly() {
        let mut ledger = ledger(3_000_000, None);
        let mut late = due(None, 400_000, 0, 3_000_000);
        late.seq = 1;
        let settlement = settle(&late, &MoneyConfig::new(1_000).unwrap());
        assert_eq!(settlement.from_wallet_micro, 400_000);
        assert_eq!(settlement.fee_micro, 40_000);
        apply(&mut ledger, &settlement);
        assert_eq!(balance(&ledger, chart::wallet("t")), 2_600_000);
    }

    #[test]
    fn each_provider_is_paid_its_sites_less_the_fee_per_site() {
        let mut ledger = ledger(10_000_000, Some(5_000_000));
        let mut accounts = chart::provider_accounts("q");
        accounts.push(chart::carrier_account("shanghai", "qingyang"));
        for result in ledger.create_accounts(&accounts, 0) {
            assert!(result.is_ok(), "{result:?}");
        }
        let mut due = due(Some(5_000_000), 999, 10, 0);
        due.sites.push(SiteDue {
            provider: "q".into(),
            link: ("shanghai".into(), "qingyang".into()),
            compute_micro: 1_999,
            transfer_micro: 7,
        });
        due.sites.push(SiteDue {
            provider: "p".into(),
            link: ("shanghai".into(), "guian".into()),
            compute_micro: 1_001,
            transfer_micro: 0,
        });
        let settlement = settle(&due, &MoneyConfig::new(1_000).unwrap());
        // Fees per site, floored: 99 + 199 + 100.
        assert_eq!(settlement.fee_micro, 398);
        assert_eq!(settlement.charged_micro(), 999 + 10 + 1_999 + 7 + 1_001);
        assert_eq!(
            settlement.transfers.len(),
            6,
            "post, two earnings, the fee, two carriers"
        );
        apply(&mut ledger, &settlement);
        assert_eq!(
            balance(&ledger, chart::earnings("p")),
            999 - 99 + 1_001 - 100
        );
        assert_eq!(balance(&ledger, chart::earnings("q")), 1_999 - 199);
        assert_eq!(balance(&ledger, chart::carrier("shanghai", "guian")), 10);
        assert_eq!(balance(&ledger, chart::carrier("shanghai", "qingyang")), 7);
    }
}

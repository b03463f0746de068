//! The account chart: which ledger accounts exist and what their ids are.
//! Ids are derived from what they belong to, so every caller names an
//! account the same way and creating one twice is harmless.
//!
//! | account | side | floor | what |
//! |---|---|---|---|
//! | `cash` | debit | none | the operator's bank: top-ups come from it |
//! | `escrow` | credit | none | holds and charges pass through it; its posted balance is zero after every settle |
//! | `fees` | credit | none | the platform's fee on compute |
//! | `imbalance` | credit | stays zero | must never move (a check that nothing is lost) |
//! | `wallet:{tenant}` | credit | −credit limit | what a tenant has; holds reserve from it |
//! | `arrears:{tenant}` | debit | none | what a tenant owes: usage beyond what its wallet could pay |
//! | `earnings:{provider}` | credit | none | a provider's share of what its sites ran |
//! | `carrier:{from}/{to}` | credit | none | the carrier of a link: data-transfer charges |
//!
//! Voucher grants, programme budgets and breakage come with vouchers.

use suanwang_ledger::{AccountId, NewAccount, Side};

fn id(text: &str) -> AccountId {
    AccountId::new(text).unwrap_or_else(|error| panic!("account id {text:?}: {error}"))
}

pub fn cash() -> AccountId {
    id("cash")
}

pub fn escrow() -> AccountId {
    id("escrow")
}

pub fn fees() -> AccountId {
    id("fees")
}

pub fn imbalance() -> AccountId {
    id("imbalance")
}

pub fn wallet(tenant: &str) -> AccountId {
    id(&format!("wallet:{tenant}"))
}

pub fn arrears(tenant: &str) -> AccountId {
    id(&format!("arrears:{tenant}"))
}

pub fn earnings(provider: &str) -> AccountId {
    id(&format!("earnings:{provider}"))
}

/// The carrier of the link from region `from` to region `to` (topology
/// region ids); one account per direction, as transfer is priced.
pub fn carrier(from: &str, to: &str) -> AccountId {
    id(&format!("carrier:{from}/{to}"))
}

/// The platform's own accounts, created once at start.
pub fn system_accounts() -> Vec<NewAccount> {
    vec![
        NewAccount::new(cash(), Side::Debit),
        NewAccount::new(escrow(), Side::Credit),
        NewAccount::new(fees(), Side::Credit),
        NewAccount::new(imbalance(), Side::Credit).must_stay_zero(),
    ]
}

/// A tenant's accounts: its wallet (no credit until the operator grants
/// some: floor 0) and its arrears.
pub fn tenant_accounts(tenant: &str) -> Vec<NewAccount> {
    vec![
        NewAccount::new(wallet(tenant), Side::Credit).floor(0),
        NewAccount::new(arrears(tenant), Side::Debit),
    ]
}

pub fn provider_accounts(provider: &str) -> Vec<NewAccount> {
    vec![NewAccount::new(earnings(provider), Side::Credit)]
}

pub fn carrier_account(from: &str, to: &str) -> NewAccount {
    NewAccount::new(carrier(from, to), Side::Credit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_derived_and_valid() {
        assert_eq!(wallet("ten_01abc").as_str(), "wallet:ten_01abc");
        assert_eq!(
            carrier("shanghai", "guian").as_str(),
            "carrier:shanghai/guian"
        );
        assert_eq!(system_accounts().len(), 4);
        assert!(system_accounts()[3].must_stay_zero);
        assert_eq!(tenant_accounts("t")[0].floor_micro, Some(0));
    }
}

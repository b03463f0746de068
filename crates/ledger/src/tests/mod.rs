//! The ledger's tests: one data-driven table per rule ([`rules`], through
//! [`check`]) and property tests over random histories ([`props`]).
//!
//! A state and an input are a few lines of text:
//!
//! - `account ID credit|debit [floor=N] [zero]`
//! - `posted ID DEBIT CREDIT AMOUNT`, `pending ID DEBIT CREDIT AMOUNT
//!   until=MS`, `post ID DEBIT CREDIT AMOUNT of=P`, `void ... of=P`, each
//!   with `[linked] [code=N] [ref=TEXT]`
//! - `expire` (input only: the ledger expires what is due)
//! - `floor ACCOUNT N|none` (input only)
//!
//! The expectation is one line per result (`ID created`, `ID exists`,
//! `ID error: ...`), then each account whose totals changed:
//! `ID debits POSTED+PENDING credits POSTED+PENDING available N`.

mod props;
mod rules;

use std::collections::BTreeMap;

use crate::*;

pub(crate) fn aid(text: &str) -> AccountId {
    AccountId::new(text).expect("an account id")
}

pub(crate) fn tid(text: &str) -> TransferId {
    TransferId::new(text).expect("a transfer id")
}

/// A transfer line.
fn transfer(words: &[&str]) -> Transfer {
    let opt = |key: &str| {
        words
            .iter()
            .find_map(|w| w.strip_prefix(&format!("{key}=")))
    };
    let amount = words[4].parse().expect("an amount");
    let mut t = Transfer::new(
        tid(words[1]),
        aid(words[2]),
        aid(words[3]),
        amount,
        opt("code").map_or(codes::CHARGE, |c| c.parse().expect("a code")),
    );
    let of = || tid(opt("of").expect("of=PENDING"));
    t.kind = match words[0] {
        "posted" => Kind::Posted,
        "pending" => Kind::Pending {
            expires_at_ms: opt("until").expect("until=MS").parse().expect("ms"),
        },
        "post" => Kind::Post { pending: of() },
        "void" => Kind::Void { pending: of() },
        "expire" => Kind::Expire { pending: of() },
        other => panic!("unknown transfer line {other:?}"),
    };
    if let Some(reference) = opt("ref") {
        t.reference = reference.to_owned();
    }
    t.linked = words.contains(&"linked");
    t
}

/// A ledger with the accounts and transfers of `state`, each transfer
/// applied at time 0 and created.
pub(crate) fn ledger(state: &str) -> Ledger {
    let mut ledger = Ledger::new();
    let mut batch = Vec::new();
    for line in lines(state) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "account" {
            let side = Side::parse(words[2]).expect("credit or debit");
            let mut new = NewAccount::new(aid(words[1]), side);
            for word in &words[3..] {
                if let Some(floor) = word.strip_prefix("floor=") {
                    new = new.floor(floor.parse().expect("a floor"));
                } else if *word == "zero" {
                    new = new.must_stay_zero();
                }
            }
            let results = ledger.create_accounts(&[new], 0);
            assert_eq!(results, [Ok(Applied::Created)], "{line}");
        } else {
            batch.push(transfer(&words));
        }
    }
    let results = ledger.create_transfers(&batch, 0);
    for (t, result) in batch.iter().zip(&results) {
        assert_eq!(*result, Ok(Applied::Created), "state transfer {}", t.id);
    }
    ledger
}

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

pub(crate) fn render_account(account: &Account) -> String {
    let t = &account.totals;
    format!(
        "{} debits {}+{} credits {}+{} available {}",
        account.id,
        t.debits_posted_micro,
        t.debits_pending_micro,
        t.credits_posted_micro,
        t.credits_pending_micro,
        account.available_micro()
    )
}

/// Applies `input` to the ledger of `state` at `now_ms` and compares what
/// it answered and changed with `expect`; then checks the ledger from its
/// history.
pub(crate) fn check(state: &str, input: &str, now_ms: i64, expect: &str) {
    let mut ledger = ledger(state);
    let before: BTreeMap<AccountId, Totals> = ledger
        .accounts()
        .iter()
        .map(|a| (a.id.clone(), a.totals))
        .collect();
    let mut out = Vec::new();
    let mut batch = Vec::new();
    for line in lines(input) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "expire" if words.len() == 1 => {
                for id in ledger.expire(now_ms, 100) {
                    out.push(format!("{id} created"));
                }
            }
            "floor" => {
                let floor = match words[2] {
                    "none" => None,
                    n => Some(n.parse().expect("a floor")),
                };
                match ledger.set_floor(&aid(words[1]), floor, now_ms) {
                    Ok(change) => out.push(format!(
                        "floor {} {:?} -> {:?}",
                        change.account, change.before_micro, change.after_micro
                    )),
                    Err(error) => out.push(format!("floor error: {error}")),
                }
            }
            _ => batch.push(transfer(&words)),
        }
    }
    if !batch.is_empty() {
        let results = ledger.create_transfers(&batch, now_ms);
        for (t, result) in batch.iter().zip(results) {
            out.push(match result {
                Ok(Applied::Created) => format!("{} created", t.id),
                Ok(Applied::Exists) => format!("{} exists", t.id),
                Err(error) => format!("{} error: {error}", t.id),
            });
        }
    }
    let mut changed: Vec<&Account> = ledger
        .accounts()
        .iter()
        .filter(|a| before.get(&a.id) != Some(&a.totals))
        .collect();
    changed.sort_by(|a, b| a.id.cmp(&b.id));
    out.extend(changed.into_iter().map(render_account));
    ledger.check().expect("the history replays to the balances");
    let expect: Vec<&str> = lines(expect).collect();
    assert_eq!(out, expect, "\n--- got ---\n{}", out.join("\n"));
}

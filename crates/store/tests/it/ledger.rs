//! The ledger's storage on both databases: idempotency, two phases,
//! linked chains, floors, a bank of concurrent charges against one wallet,
//! replay of the stored history, reads that are checked, and transfers
//! that are never changed.

use std::path::Path;
use std::sync::Arc;

use suanwang_store::ledger::{
    codes, AccountId, Applied, Kind, Ledger, NewAccount, Side, Transfer, TransferError, TransferId,
};
use suanwang_store::prelude::*;
use suanwang_store::{LedgerTransferRow, StoreError};

use crate::harness::*;

const YUAN: i64 = 1_000_000;

fn aid(text: &str) -> AccountId {
    AccountId::new(text).expect("an account id")
}

fn tid(text: &str) -> TransferId {
    TransferId::new(text).expect("a transfer id")
}

fn charge(id: &str, from: &str, to: &str, amount_micro: i64) -> Transfer {
    Transfer::new(tid(id), aid(from), aid(to), amount_micro, codes::CHARGE)
}

fn hold(id: &str, from: &str, to: &str, amount_micro: i64, until_ms: i64) -> Transfer {
    charge(id, from, to, amount_micro).kind(Kind::Pending {
        expires_at_ms: until_ms,
    })
}

/// The operator's cash, a wallet `w:t` topped up with 100 yuan (floor 0),
/// a provider's earnings `e:p`, the fees.
async fn bank(store: &dyn Store) {
    let accounts = [
        NewAccount::new(aid("cash"), Side::Debit),
        NewAccount::new(aid("w:t"), Side::Credit).floor(0),
        NewAccount::new(aid("e:p"), Side::Credit),
        NewAccount::new(aid("fee"), Side::Credit),
    ];
    let created = store.create_accounts(&accounts, T0).await.unwrap();
    assert_eq!(created, vec![Ok(Applied::Created); 4]);
    let topup = Transfer::new(
        tid("top:1"),
        aid("cash"),
        aid("w:t"),
        100 * YUAN,
        codes::TOPUP,
    );
    assert_eq!(
        store.create_transfers(&[topup], T0).await.unwrap(),
        [Ok(Applied::Created)]
    );
}

async fn available(store: &dyn Store, id: &str) -> i64 {
    store
        .account(&aid(id))
        .await
        .unwrap()
        .expect("the account")
        .available_micro()
}

/// Every transfer of `account`, read page by page.
async fn history_of(store: &dyn Store, account: &str) -> Vec<LedgerTransferRow> {
    let mut rows = Vec::new();
    let mut after = 0;
    loop {
        let page = store.transfers(&aid(account), after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        rows.extend(page);
    }
    rows
}

contract!(ledger_transfers_are_idempotent_by_id, |db| {
    let store = db.store.clone();
    bank(&*store).await;
    // A reference is free text: quotes, backslashes and any script survive
    // both databases' set-wise statements.
    let c1 = charge("c:1", "w:t", "e:p", 30 * YUAN).reference(r#"usage:s/j/0/1/0 "算力" \n\"#);
    assert_eq!(
        store
            .create_transfers(std::slice::from_ref(&c1), T0 + 1)
            .await
            .unwrap(),
        [Ok(Applied::Created)]
    );
    // A resend, later, is the same transfer; another under its id is not.
    let results = store
        .create_transfers(
            &[c1.clone(), charge("c:1", "w:t", "e:p", 31 * YUAN)],
            T0 + 9,
        )
        .await
        .unwrap();
    assert_eq!(
        results,
        [
            Ok(Applied::Exists),
            Err(TransferError::ExistsWithDifferentFields {
                field: "amount_micro"
            })
        ]
    );
    assert_eq!(available(&*store, "w:t").await, 70 * YUAN);
    let rows = history_of(&*store, "w:t").await;
    assert_eq!(rows.len(), 2, "the top-up and one charge");
    assert_eq!(rows[1].record.transfer, c1);
    assert_eq!(rows[1].record.at_ms, T0 + 1, "the time of its creation");
    assert!(rows[0].seq < rows[1].seq);
    // Accounts too.
    let again = [NewAccount::new(aid("w:t"), Side::Credit).floor(0)];
    assert_eq!(
        store.create_accounts(&again, T0).await.unwrap(),
        [Ok(Applied::Exists)]
    );
    let other = [NewAccount::new(aid("w:t"), Side::Debit)];
    assert!(store.create_accounts(&other, T0).await.unwrap()[0].is_err());
    store.ledger_check().await.unwrap();
});

contract!(pending_transfers_post_void_and_expire, |db| {
    let store = db.store.clone();
    bank(&*store).await;
    let batch = [
        hold("h:1", "w:t", "e:p", 40 * YUAN, T0 + 100),
        hold("h:2", "w:t", "e:p", 20 * YUAN, T0 + 100),
        hold("h:3", "w:t", "e:p", 10 * YUAN, T0 + 50),
    ];
    let results = store.create_transfers(&batch, T0 + 1).await.unwrap();
    assert_eq!(results, vec![Ok(Applied::Created); 3]);
    assert_eq!(available(&*store, "w:t").await, 30 * YUAN);
    // More than the wallet has left, counting what is held.
    let over = store
        .create_transfers(&[charge("c:1", "w:t", "e:p", 31 * YUAN)], T0 + 2)
        .await
        .unwrap();
    assert!(matches!(over[0], Err(TransferError::ExceedsFloor { .. })));

    // Post for less releases the rest; a void releases all.
    let post = charge("p:1", "w:t", "e:p", 25 * YUAN).kind(Kind::Post {
        pending: tid("h:1"),
    });
    let void = charge("v:2", "w:t", "e:p", 20 * YUAN).kind(Kind::Void {
        pending: tid("h:2"),
    });
    let again = charge("p:1b", "w:t", "e:p", 1).kind(Kind::Post {
        pending: tid("h:1"),
    });
    let results = store.create_transfers(&[post, void], T0 + 3).await.unwrap();
    assert_eq!(results, vec![Ok(Applied::Created); 2]);
    assert_eq!(
        store.create_transfers(&[again], T0 + 4).await.unwrap(),
        [Err(TransferError::PendingAlreadyPosted)]
    );
    assert_eq!(available(&*store, "w:t").await, 65 * YUAN);
    let earned = store.account(&aid("e:p")).await.unwrap().unwrap();
    assert_eq!(earned.totals.credits_posted_micro, 25 * YUAN);
    assert_eq!(earned.totals.credits_pending_micro, 10 * YUAN);

    // h:3 is due at T0 + 50: not postable from then on, and expired.
    let due = store.pendings_due(T0 + 50, None, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].record.transfer.id, tid("h:3"));
    assert!(store
        .pendings_due(T0 + 49, None, 10)
        .await
        .unwrap()
        .is_empty());
    let late = charge("p:3", "w:t", "e:p", 10 * YUAN).kind(Kind::Post {
        pending: tid("h:3"),
    });
    assert_eq!(
        store
            .create_transfers(std::slice::from_ref(&late), T0 + 50)
            .await
            .unwrap(),
        [Err(TransferError::PendingHasExpired {
            expires_at_ms: T0 + 50
        })]
    );
    assert_eq!(store.expire_pending(T0 + 49, 10).await.unwrap(), []);
    assert_eq!(
        store.expire_pending(T0 + 60, 10).await.unwrap(),
        [tid("expire:h:3")]
    );
    assert_eq!(store.expire_pending(T0 + 60, 10).await.unwrap(), []);
    assert_eq!(available(&*store, "w:t").await, 75 * YUAN);
    let rows = history_of(&*store, "e:p").await;
    let last = &rows.last().unwrap().record;
    assert_eq!(
        (last.transfer.kind.clone(), last.at_ms),
        (
            Kind::Expire {
                pending: tid("h:3")
            },
            T0 + 60
        )
    );
    // The pending's state, as loaded for a later post.
    assert_eq!(
        store.create_transfers(&[late], T0 + 61).await.unwrap(),
        [Err(TransferError::PendingHasExpired {
            expires_at_ms: T0 + 50
        })]
    );
    let check = store.ledger_check().await.unwrap();
    assert_eq!((check.accounts, check.open_pendings), (4, 0));
    assert_eq!(check.transfers, 7);
});

contract!(ledger_linked_chains_are_atomic, |db| {
    let store = db.store.clone();
    bank(&*store).await;
    let chain = [
        charge("c:1", "w:t", "e:p", 60 * YUAN).linked(),
        charge("f:1", "w:t", "fee", 10 * YUAN).linked(),
        charge("c:2", "w:t", "e:p", 40 * YUAN),
    ];
    let results = store.create_transfers(&chain, T0 + 1).await.unwrap();
    assert_eq!(
        results[..2],
        [
            Err(TransferError::LinkedChainFailed { because: 2 }),
            Err(TransferError::LinkedChainFailed { because: 2 })
        ]
    );
    assert!(matches!(
        results[2],
        Err(TransferError::ExceedsFloor { .. })
    ));
    assert_eq!(available(&*store, "w:t").await, 100 * YUAN);
    assert!(history_of(&*store, "fee").await.is_empty());
    // The same chain, smaller, goes through whole.
    let chain = [
        charge("c:1", "w:t", "e:p", 60 * YUAN).linked(),
        charge("f:1", "w:t", "fee", 10 * YUAN).linked(),
        charge("c:2", "w:t", "e:p", 30 * YUAN),
    ];
    let results = store.create_transfers(&chain, T0 + 2).await.unwrap();
    assert_eq!(results, vec![Ok(Applied::Created); 3]);
    assert_eq!(available(&*store, "w:t").await, 0);
    store.ledger_check().await.unwrap();
});

contract!(ledger_floors_are_enforced_and_changed, |db| {
    let store = db.store.clone();
    bank(&*store).await;
    let c = |id: &str, amount| charge(id, "w:t", "e:p", amount);
    let results = store
        .create_transfers(&[c("c:1", 100 * YUAN), c("c:2", 1)], T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        results,
        [
            Ok(Applied::Created),
            Err(TransferError::ExceedsFloor {
                account: aid("w:t"),
                balance_micro: 0,
                floor_micro: 0,
                amount_micro: 1
            })
        ]
    );
    // Credit granted by the operator.
    let change = store
        .set_floor(&aid("w:t"), Some(-50 * YUAN), T0 + 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (change.before_micro, change.after_micro),
        (Some(0), Some(-50 * YUAN))
    );
    assert_eq!(
        store
            .create_transfers(&[c("c:2", 50 * YUAN)], T0 + 3)
            .await
            .unwrap(),
        [Ok(Applied::Created)]
    );
    assert_eq!(available(&*store, "w:t").await, -50 * YUAN);
    // Withdrawn only down to what is used.
    let refused = store.set_floor(&aid("w:t"), Some(0), T0 + 4).await.unwrap();
    assert!(refused.is_err());
    let missing = store.set_floor(&aid("nobody"), None, T0 + 4).await.unwrap();
    assert!(missing.is_err());
    let account = store.account(&aid("w:t")).await.unwrap().unwrap();
    assert_eq!(account.floor_micro, Some(-50 * YUAN));
    store.ledger_check().await.unwrap();
});

const CHARGES: usize = 64;

contract!(concurrent_charges_never_overdraw_a_wallet, |db| {
    let store = db.store.clone();
    bank(&*store).await;
    // 64 charges of 10 yuan at once against 100 yuan: exactly 10 succeed.
    let mut tasks = Vec::new();
    for i in 0..CHARGES {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let charge = charge(&format!("c:{i}"), "w:t", "e:p", 10 * YUAN);
            store.create_transfers(&[charge], T0 + 1).await.unwrap()
        }));
    }
    let mut created = 0;
    for task in tasks {
        match &task.await.unwrap()[..] {
            [Ok(Applied::Created)] => created += 1,
            [Err(TransferError::ExceedsFloor { .. })] => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 10);
    assert_eq!(available(&*store, "w:t").await, 0);
    let accounts = store.accounts("", None, 100).await.unwrap();
    let (mut debits, mut credits) = (0, 0);
    for account in &accounts {
        debits += account.totals.debits_posted_micro;
        credits += account.totals.credits_posted_micro;
    }
    assert_eq!(debits, credits, "money moved, never made");
    assert_eq!(
        accounts
            .iter()
            .find(|a| a.id == aid("e:p"))
            .unwrap()
            .balance_micro(),
        100 * YUAN
    );
    let check = store.ledger_check().await.unwrap();
    assert_eq!(check.transfers, 11);
});

contract!(the_stored_history_replays_to_the_stored_balances, |db| {
    let store = db.store.clone();
    bank(&*store).await;
    let batch = [
        hold("h:1", "w:t", "e:p", 40 * YUAN, T0 + 100),
        charge("c:1", "w:t", "fee", 5 * YUAN),
        charge("p:1", "w:t", "e:p", 30 * YUAN).kind(Kind::Post {
            pending: tid("h:1"),
        }),
        hold("h:2", "w:t", "e:p", 5 * YUAN, T0 + 100),
    ];
    let results = store.create_transfers(&batch, T0 + 1).await.unwrap();
    assert_eq!(results, vec![Ok(Applied::Created); 4]);
    // The whole history, in seq order, from the accounts' pages.
    let accounts = store.accounts("", None, 100).await.unwrap();
    let mut rows: Vec<LedgerTransferRow> = Vec::new();
    for account in &accounts {
        for row in history_of(&*store, account.id.as_str()).await {
            if !rows.iter().any(|r| r.seq == row.seq) {
                rows.push(row);
            }
        }
    }
    rows.sort_by_key(|r| r.seq);
    let history: Vec<_> = rows.into_iter().map(|r| r.record).collect();
    let ledger = Ledger::replay(accounts.clone(), &history).unwrap();
    assert_eq!(ledger.accounts(), &accounts[..]);
    assert_eq!(
        ledger
            .open_pendings()
            .map(|(_, id)| id.clone())
            .collect::<Vec<_>>(),
        [tid("h:2")]
    );
    ledger.check().unwrap();

    // A stored total the history does not give is found.
    db.raw("UPDATE ledger_accounts SET credits_posted_micro = credits_posted_micro + 1 WHERE id = 'fee'")
        .await;
    match store.ledger_check().await {
        Err(StoreError::Corrupt(text)) => assert!(text.contains("account fee"), "{text}"),
        other => panic!("not corrupt: {other:?}"),
    }
});

contract!(ledger_accounts_and_transfers_page, |db| {
    let store = db.store.clone();
    bank(&*store).await;
    let wallets: Vec<NewAccount> = (0..5)
        .map(|i| NewAccount::new(aid(&format!("w:{i}")), Side::Credit))
        .collect();
    store.create_accounts(&wallets, T0).await.unwrap();
    let mut seen = Vec::new();
    let mut after: Option<AccountId> = None;
    loop {
        let page = store.accounts("w:", after.as_ref(), 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        seen.extend(page.into_iter().map(|a| a.id.to_string()));
    }
    assert_eq!(seen, ["w:0", "w:1", "w:2", "w:3", "w:4", "w:t"]);
    assert!(store.accounts("x", None, 10).await.unwrap().is_empty());
    assert_eq!(store.accounts("", None, 3).await.unwrap().len(), 3);
    let batch: Vec<Transfer> = (0..5)
        .map(|i| charge(&format!("c:{i}"), "w:t", "e:p", YUAN))
        .collect();
    store.create_transfers(&batch, T0 + 1).await.unwrap();
    let rows = history_of(&*store, "e:p").await;
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r.record.transfer.id.to_string())
        .collect();
    assert_eq!(ids, ["c:0", "c:1", "c:2", "c:3", "c:4"], "history order");
    assert_eq!(history_of(&*store, "w:t").await.len(), 6);

    // Open pendings due by a time, by (expiry, id), page by page.
    let holds = [
        hold("h:b", "w:t", "e:p", YUAN, T0 + 20),
        hold("h:a", "w:t", "e:p", YUAN, T0 + 20),
        hold("h:c", "w:t", "e:p", YUAN, T0 + 10),
        hold("h:d", "w:t", "e:p", YUAN, T0 + 90),
    ];
    store.create_transfers(&holds, T0 + 2).await.unwrap();
    let mut due = Vec::new();
    let mut after: Option<(i64, TransferId)> = None;
    loop {
        let page = store
            .pendings_due(T0 + 50, after.as_ref().map(|(at, id)| (*at, id)), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        let at = last.record.transfer.kind.expires_at_ms().unwrap();
        after = Some((at, last.record.transfer.id.clone()));
        due.extend(page.into_iter().map(|r| r.record.transfer.id.to_string()));
    }
    assert_eq!(due, ["h:c", "h:a", "h:b"]);
});

contract!(
    stored_ledger_values_outside_their_domain_are_corrupt,
    |db| {
        let store = db.store.clone();
        bank(&*store).await;
        db.raw("UPDATE ledger_accounts SET asset = 'XYZ' WHERE id = 'fee'")
            .await;
        match store.account(&aid("fee")).await {
            Err(StoreError::Corrupt(text)) => {
                assert_eq!(
                    text,
                    r#"ledger_accounts.asset of ledger account fee is "XYZ""#
                )
            }
            other => panic!("not corrupt: {other:?}"),
        }
        db.raw("UPDATE ledger_accounts SET must_stay_zero = 2 WHERE id = 'e:p'")
            .await;
        assert!(matches!(
            store.account(&aid("e:p")).await,
            Err(StoreError::Corrupt(_))
        ));
        // Past the append-only guard, to see a bad stored phase found.
        db.raw(match db.backend {
            Backend::Sqlite => "DROP TRIGGER ledger_transfers_no_update",
            Backend::Postgres => "DROP TRIGGER ledger_transfers_append_only ON ledger_transfers",
        })
        .await;
        db.raw("UPDATE ledger_transfers SET phase = 'odd' WHERE id = 'top:1'")
            .await;
        match store.transfers(&aid("w:t"), 0, 10).await {
            Err(StoreError::Corrupt(text)) => {
                assert_eq!(
                    text,
                    r#"ledger_transfers.phase of ledger transfer top:1 is "odd""#
                )
            }
            other => panic!("not corrupt: {other:?}"),
        }
    }
);

contract!(stored_transfers_cannot_be_changed, |db| {
    let store = db.store.clone();
    bank(&*store).await;
    for sql in [
        "UPDATE ledger_transfers SET amount_micro = 1",
        "DELETE FROM ledger_transfers",
    ] {
        let raw = Db {
            backend: db.backend,
            store: Arc::clone(&store),
            opener: db.opener.clone(),
        };
        let refused = tokio::spawn(async move { raw.raw(sql).await }).await;
        assert!(refused.is_err(), "{sql} is refused");
    }
    assert_eq!(available(&*store, "w:t").await, 100 * YUAN);
    store.ledger_check().await.unwrap();
});

/// No statement of the store updates or deletes a transfer.
#[test]
fn no_statement_updates_or_deletes_ledger_transfers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![root.join("sql/ledger.rs")];
    for entry in std::fs::read_dir(&root).expect("src") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("source");
        let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let flat = flat.to_ascii_uppercase();
        for forbidden in ["UPDATE LEDGER_TRANSFERS", "DELETE FROM LEDGER_TRANSFERS"] {
            if flat.contains(forbidden) {
                found.push(format!("{}: {forbidden}", file.display()));
            }
        }
    }
    assert!(files.len() > 3, "the store's sources are where this looks");
    assert!(found.is_empty(), "transfers are append-only: {found:?}");
}

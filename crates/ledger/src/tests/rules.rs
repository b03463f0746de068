//! One table per rule: `check(state, input, now_ms, expect)`.

use super::*;

/// The operator's cash funds two wallets: `w:a` with 100 and no credit,
/// `w:b` with nothing and 50 of credit; a provider's earnings, the fees,
/// and the imbalance account `mid`.
const BANK: &str = "
    account cash debit
    account w:a credit floor=0
    account w:b credit floor=-50
    account e:p credit
    account fee credit
    account mid credit zero
    posted top:a cash w:a 100 code=1";

#[test]
fn a_posted_transfer_moves_money_once() {
    check(
        BANK,
        "posted c1 w:a e:p 30",
        5,
        "
        c1 created
        e:p debits 0+0 credits 30+0 available 30
        w:a debits 30+0 credits 100+0 available 70",
    );
    // A resend is the same transfer; a different one under its id is not.
    check(
        &format!("{BANK}\nposted c1 w:a e:p 30"),
        "
        posted c1 w:a e:p 30
        posted c1 w:a e:p 31
        posted c1 w:a fee 30
        posted c1 w:a e:p 30 ref=other",
        5,
        "
        c1 exists
        c1 error: a transfer with this id exists with a different amount_micro
        c1 error: a transfer with this id exists with a different credit
        c1 error: a transfer with this id exists with a different reference",
    );
}

#[test]
fn a_batch_sees_its_own_transfers() {
    check(
        BANK,
        "
        posted c1 w:a e:p 30
        posted c1 w:a e:p 30
        posted c1 w:a e:p 40",
        5,
        "
        c1 created
        c1 exists
        c1 error: a transfer with this id exists with a different amount_micro
        e:p debits 0+0 credits 30+0 available 30
        w:a debits 30+0 credits 100+0 available 70",
    );
    // A failed transfer leaves its id free.
    check(
        BANK,
        "
        posted c1 w:a e:p 300
        posted c1 w:a e:p 30",
        5,
        "
        c1 error: account w:a would fall below its floor: 100 available, floor 0, amount 300
        c1 created
        e:p debits 0+0 credits 30+0 available 30
        w:a debits 30+0 credits 100+0 available 70",
    );
}

#[test]
fn malformed_transfers_are_refused() {
    let long = "x".repeat(REFERENCE_LEN_MAX + 1);
    check(
        BANK,
        &format!(
            "
            posted z0 w:a e:p 0
            posted z1 w:a e:p -5
            posted z2 w:a e:p 1000000000000001
            posted z3 w:a e:p 1 code=0
            posted z4 w:a e:p 1 ref={long}
            posted z5 w:a w:a 1
            posted z6 w:a nobody 1
            posted z7 nobody w:a 1
            posted expire:z8 w:a e:p 1
            expire z9 w:a e:p 1 of=top:a"
        ),
        5,
        "
        z0 error: the amount must be positive
        z1 error: the amount must be positive
        z2 error: an amount is at most 1000000000000000 micro-yuan
        z3 error: 0 is not a reason code
        z4 error: a reference is at most 256 bytes without control characters
        z5 error: debit and credit are the same account
        z6 error: no account nobody
        z7 error: no account nobody
        expire:z8 error: ids starting with expire: are the ledger's own
        z9 error: only the ledger expires a pending transfer",
    );
}

#[test]
fn no_account_falls_below_its_floor() {
    check(
        BANK,
        "
        posted c1 w:a e:p 100
        posted c2 w:a e:p 1
        posted c3 w:b e:p 50
        posted c4 w:b e:p 1",
        5,
        "
        c1 created
        c2 error: account w:a would fall below its floor: 0 available, floor 0, amount 1
        c3 created
        c4 error: account w:b would fall below its floor: -50 available, floor -50, amount 1
        e:p debits 0+0 credits 150+0 available 150
        w:a debits 100+0 credits 100+0 available 0
        w:b debits 50+0 credits 0+0 available -50",
    );
    // Pending debits count against the floor; pending credits do not
    // count for it.
    check(
        BANK,
        "
        pending h1 w:a e:p 60 until=100
        posted c1 w:a e:p 50
        pending h2 cash w:b 10 until=100
        posted c2 w:b e:p 51",
        5,
        "
        h1 created
        c1 error: account w:a would fall below its floor: 40 available, floor 0, amount 50
        h2 created
        c2 error: account w:b would fall below its floor: 0 available, floor -50, amount 51
        cash debits 100+10 credits 0+0 available 100
        e:p debits 0+0 credits 0+60 available 0
        w:a debits 0+60 credits 100+0 available 40
        w:b debits 0+0 credits 0+10 available 0",
    );
    // A debit-normal account's floor is on its debit side: crediting it
    // lowers it.
    check(
        "
        account bank debit floor=0
        account w credit
        posted in bank w 10",
        "
        posted out1 w bank 10
        posted out2 w bank 1",
        5,
        "
        out1 created
        out2 error: account bank would fall below its floor: 0 available, floor 0, amount 1
        bank debits 10+0 credits 10+0 available 0
        w debits 10+0 credits 10+0 available 0",
    );
}

#[test]
fn a_pending_transfer_is_posted_for_at_most_its_amount() {
    let held = format!("{BANK}\npending h1 w:a e:p 60 until=100");
    // Posting for less releases the rest.
    check(
        &held,
        "post p1 w:a e:p 45 of=h1",
        5,
        "
        p1 created
        e:p debits 0+0 credits 45+0 available 45
        w:a debits 45+0 credits 100+0 available 55",
    );
    check(
        &held,
        "
        post p1 w:a e:p 61 of=h1
        post p2 w:a e:p 60 of=h1
        post p3 w:a e:p 1 of=h1
        void v1 w:a e:p 60 of=h1",
        5,
        "
        p1 error: posting 61 of a pending 60
        p2 created
        p3 error: the pending transfer was posted already
        v1 error: the pending transfer was posted already
        e:p debits 0+0 credits 60+0 available 60
        w:a debits 60+0 credits 100+0 available 40",
    );
    check(
        &held,
        "
        void v1 w:a e:p 59 of=h1
        void v2 w:a e:p 60 of=h1
        post p1 w:a e:p 60 of=h1
        void v3 w:a e:p 60 of=h1",
        5,
        "
        v1 error: voiding 59 of a pending 60: a void names the whole amount
        v2 created
        p1 error: the pending transfer was voided already
        v3 error: the pending transfer was voided already
        e:p debits 0+0 credits 0+0 available 0
        w:a debits 0+0 credits 100+0 available 100",
    );
    check(
        &held,
        "
        post p1 w:a e:p 1 of=nothing
        post p2 w:a e:p 1 of=top:a
        post p3 w:a fee 1 of=h1
        post p4 cash e:p 1 of=h1",
        5,
        "
        p1 error: no pending transfer nothing
        p2 error: transfer top:a is not a pending one
        p3 error: the pending transfer has a different credit
        p4 error: the pending transfer has a different debit",
    );
}

#[test]
fn a_pending_transfer_expires() {
    let held = format!("{BANK}\npending h1 w:a e:p 60 until=100");
    // Not postable from its expiry on, whether or not the expiry is
    // recorded yet.
    check(
        &held,
        "
        post p1 w:a e:p 60 of=h1
        void v1 w:a e:p 60 of=h1",
        100,
        "
        p1 error: the pending transfer expired at 100
        v1 error: the pending transfer expired at 100",
    );
    check(&held, "expire", 99, "");
    check(
        &held,
        "expire",
        100,
        "
        expire:h1 created
        e:p debits 0+0 credits 0+0 available 0
        w:a debits 0+0 credits 100+0 available 100",
    );
    // Its expiry is a transfer of the history.
    let mut ledger = ledger(&held);
    assert_eq!(ledger.expire(150, 10), [tid("expire:h1")]);
    assert_eq!(ledger.expire(150, 10), []);
    let expiry = ledger.transfer(&tid("expire:h1")).expect("recorded");
    assert_eq!(expiry.at_ms, 150);
    assert_eq!(expiry.transfer.code, codes::EXPIRY);
    assert_eq!(
        ledger.pending_state(&tid("h1")),
        Some(PendingState::Expired)
    );
    // Before its time a pending must end after now, and not too late.
    check(
        BANK,
        &format!(
            "
            pending h1 w:a e:p 1 until=5
            pending h2 w:a e:p 1 until={}",
            5 + PENDING_TIMEOUT_MS_MAX + 1
        ),
        5,
        "
        h1 error: the pending transfer expires at 5, not after now (5)
        h2 error: a pending transfer stays open at most 31622400000 ms",
    );
}

#[test]
fn expiries_go_soonest_first_and_bounded() {
    let held = format!(
        "{BANK}
        pending h3 w:a e:p 10 until=30
        pending h1 w:a e:p 10 until=10
        pending h2 w:a e:p 10 until=10"
    );
    let mut ledger = ledger(&held);
    assert_eq!(ledger.expire(30, 2), [tid("expire:h1"), tid("expire:h2")]);
    assert_eq!(ledger.expire(30, 2), [tid("expire:h3")]);
    ledger.check().unwrap();
}

#[test]
fn a_linked_chain_applies_whole_or_not_at_all() {
    check(
        BANK,
        "
        posted c1 w:a e:p 30 linked
        posted c2 w:a fee 3 linked
        posted c3 w:a e:p 80
        posted c4 w:a e:p 10",
        5,
        "
        c1 error: transfer 2 of the batch, in the same linked chain, failed
        c2 error: transfer 2 of the batch, in the same linked chain, failed
        c3 error: account w:a would fall below its floor: 67 available, floor 0, amount 80
        c4 created
        e:p debits 0+0 credits 10+0 available 10
        w:a debits 10+0 credits 100+0 available 90",
    );
    // A failure in the middle: the rest of the chain is not tried.
    check(
        BANK,
        "
        pending h1 w:a e:p 30 until=50 linked
        posted c2 w:a nobody 3 linked
        post p1 w:a e:p 30 of=h1",
        5,
        "
        h1 error: transfer 1 of the batch, in the same linked chain, failed
        c2 error: no account nobody
        p1 error: transfer 1 of the batch, in the same linked chain, failed",
    );
    // A batch that ends inside a chain applies none of it.
    check(
        BANK,
        "
        posted c1 w:a e:p 30
        posted c2 w:a e:p 30 linked
        posted c3 w:a e:p 30 linked",
        5,
        "
        c1 created
        c2 error: transfer 2 of the batch, in the same linked chain, failed
        c3 error: the batch ends inside a linked chain
        e:p debits 0+0 credits 30+0 available 30
        w:a debits 30+0 credits 100+0 available 70",
    );
    // A resent chain exists whole.
    let chain = "
        pending h1 w:a e:p 30 until=50 linked
        post p1 w:a e:p 20 of=h1";
    check(
        &format!("{BANK}\n{chain}"),
        chain,
        6,
        "
        h1 exists
        p1 exists",
    );
}

#[test]
fn a_must_stay_zero_account_is_zero_at_each_chain_end() {
    // A charge split into earnings and a fee through `mid`.
    check(
        BANK,
        "
        posted s1 w:a mid 50 linked
        posted s2 mid e:p 45 linked
        posted s3 mid fee 5",
        5,
        "
        s1 created
        s2 created
        s3 created
        e:p debits 0+0 credits 45+0 available 45
        fee debits 0+0 credits 5+0 available 5
        mid debits 50+0 credits 50+0 available 0
        w:a debits 50+0 credits 100+0 available 50",
    );
    check(
        BANK,
        "
        posted s1 w:a mid 50 linked
        posted s2 mid e:p 45
        posted s3 w:a mid 1
        pending s4 w:a mid 1 until=50",
        5,
        "
        s1 error: transfer 1 of the batch, in the same linked chain, failed
        s2 error: account mid must be zero at the end of the chain
        s3 error: account mid must be zero at the end of the chain
        s4 error: account mid must be zero at the end of the chain",
    );
}

#[test]
fn floors_change_only_where_they_hold() {
    check(
        BANK,
        "
        floor w:a -100
        floor w:a 101
        floor w:a 100
        floor mid 0
        floor nobody 0
        floor cash none",
        5,
        "
        floor w:a Some(0) -> Some(-100)
        floor error: a floor of 101 is above the available balance of 100
        floor w:a Some(-100) -> Some(100)
        floor error: a must-stay-zero account takes no floor
        floor error: no account nobody
        floor cash None -> None",
    );
    let mut ledger = ledger(BANK);
    ledger.set_floor(&aid("w:a"), Some(-20), 7).unwrap();
    let charge = Transfer::new(tid("c"), aid("w:a"), aid("e:p"), 120, codes::CHARGE);
    assert_eq!(
        ledger.create_transfers(&[charge], 8),
        [Ok(Applied::Created)]
    );
    assert_eq!(ledger.floor_changes().len(), 1);
    assert_eq!(ledger.account(&aid("w:a")).unwrap().available_micro(), -20);
}

#[test]
fn accounts_are_created_once() {
    let mut ledger = Ledger::new();
    let wallet = NewAccount::new(aid("w"), Side::Credit).floor(0);
    assert_eq!(
        ledger.create_accounts(
            &[
                wallet.clone(),
                wallet.clone(),
                wallet.clone().floor(-5),
                NewAccount::new(aid("w"), Side::Debit),
                NewAccount::new(aid("x"), Side::Credit).floor(1),
                NewAccount::new(aid("y"), Side::Credit)
                    .floor(0)
                    .must_stay_zero(),
                NewAccount::new(aid("z"), Side::Credit).floor(i64::MIN),
            ],
            3
        ),
        [
            Ok(Applied::Created),
            Ok(Applied::Exists),
            Err(AccountError::ExistsWithDifferentFields {
                field: "floor_micro"
            }),
            Err(AccountError::ExistsWithDifferentFields { field: "side" }),
            Err(AccountError::FloorAboveBalance { floor_micro: 1 }),
            Err(AccountError::FloorOnZeroAccount),
            Err(AccountError::FloorOutOfRange {
                floor_micro: i64::MIN
            }),
        ]
    );
    assert_eq!(ledger.account(&aid("w")).unwrap().created_at_ms, 3);
    assert_eq!(ledger.accounts().len(), 1);
}

#[test]
fn batches_are_bounded() {
    let mut ledger = ledger(BANK);
    let one = Transfer::new(tid("c"), aid("w:a"), aid("e:p"), 1, codes::CHARGE);
    let batch = vec![one; BATCH_TRANSFERS_MAX + 1];
    let results = ledger.create_transfers(&batch, 5);
    assert!(results.iter().all(|r| *r
        == Err(TransferError::BatchTooLarge {
            max: BATCH_TRANSFERS_MAX
        })));
    assert_eq!(results.len(), batch.len());
    assert_eq!(ledger.history().len(), 1);
}

#[test]
fn totals_stop_at_their_limit() {
    let mut book = Book::complete();
    let mut big = Account::open(&NewAccount::new(aid("big"), Side::Credit), 0);
    big.totals.credits_posted_micro = TOTAL_MICRO_MAX - 10;
    let mut src = Account::open(&NewAccount::new(aid("src"), Side::Debit), 0);
    src.totals.debits_posted_micro = TOTAL_MICRO_MAX - 10;
    book.load_account(big).unwrap();
    book.load_account(src).unwrap();
    let t = |id: &str, amount| Transfer::new(tid(id), aid("src"), aid("big"), amount, 1);
    assert_eq!(
        book.create_transfers(&[t("a", 10), t("b", 1)], 1),
        [
            Ok(Applied::Created),
            Err(TransferError::Overflow {
                account: aid("src")
            })
        ]
    );
}

#[test]
fn a_partial_book_applies_what_it_was_loaded_with() {
    let mut full = ledger(&format!("{BANK}\npending h1 w:a e:p 60 until=100"));
    let batch = [
        Transfer::new(tid("c1"), aid("w:a"), aid("fee"), 10, codes::FEE),
        Transfer::new(tid("p1"), aid("w:a"), aid("e:p"), 50, codes::CHARGE)
            .kind(Kind::Post { pending: tid("h1") }),
        Transfer::new(tid("top:a"), aid("cash"), aid("w:a"), 100, codes::TOPUP),
    ];
    let needs = Needs::of_transfers(&batch);
    assert_eq!(
        needs.accounts,
        [aid("cash"), aid("e:p"), aid("fee"), aid("w:a")]
    );
    assert_eq!(
        needs.transfers,
        [tid("c1"), tid("h1"), tid("p1"), tid("top:a")]
    );

    // What a store would load: the accounts, and the transfers that exist.
    let mut book = Book::partial(needs.clone());
    for id in &needs.accounts {
        book.load_account(full.account(id).unwrap().clone())
            .unwrap();
    }
    for id in &needs.transfers {
        if let Some(record) = full.transfer(id) {
            book.load_transfer(record.clone(), full.pending_state(id))
                .unwrap();
        }
    }
    let partial = book.create_transfers(&batch, 5);
    let whole = full.create_transfers(&batch, 5);
    assert_eq!(partial, whole);
    assert_eq!(
        partial,
        [
            Ok(Applied::Created),
            Ok(Applied::Created),
            Ok(Applied::Exists)
        ]
    );
    let changes = book.changes();
    assert_eq!(changes.records, &full.history()[2..]);
    let rendered: Vec<String> = changes.accounts.iter().map(|a| render_account(a)).collect();
    assert_eq!(
        rendered,
        [
            "e:p debits 0+0 credits 50+0 available 50",
            "fee debits 0+0 credits 10+0 available 10",
            "w:a debits 60+0 credits 100+0 available 40",
        ]
    );
    for account in &changes.accounts {
        assert_eq!(Some(*account), full.account(&account.id));
    }
    assert_eq!(changes.opened, []);
    assert_eq!(changes.resolved, [&tid("h1")]);
    assert!(changes.created_accounts.is_empty());

    // A pending created and posted in one batch is neither opened nor
    // resolved for the store.
    let pend =
        Transfer::new(tid("h"), aid("a"), aid("b"), 5, 2).kind(Kind::Pending { expires_at_ms: 50 });
    let post =
        Transfer::new(tid("p"), aid("a"), aid("b"), 5, 3).kind(Kind::Post { pending: tid("h") });
    let needs = Needs::of_transfers(&[pend.clone(), post.clone()]);
    let mut loaded = Book::partial(needs);
    for side in [Side::Debit, Side::Credit] {
        let id = if side == Side::Debit { "a" } else { "b" };
        loaded
            .load_account(Account::open(&NewAccount::new(aid(id), side), 0))
            .unwrap();
    }
    let results = loaded.create_transfers(&[pend, post], 1);
    assert_eq!(results, [Ok(Applied::Created), Ok(Applied::Created)]);
    let changes = loaded.changes();
    assert_eq!((changes.opened.len(), changes.resolved.len()), (0, 0));
    assert_eq!(changes.records.len(), 2);

    // Looking up what it was not loaded for is its caller's bug.
    let stray = Transfer::new(tid("s"), aid("w:a"), aid("e:p"), 1, 3);
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        book.create_transfers(&[stray], 1)
    }));
    assert!(caught.is_err(), "an unloaded id is a bug, not a miss");
}

#[test]
fn loaded_data_is_checked() {
    let mut book = Book::partial(Needs::default());
    let mut below = Account::open(&NewAccount::new(aid("w"), Side::Credit).floor(0), 0);
    below.totals.debits_posted_micro = 1;
    assert_eq!(
        book.load_account(below.clone()),
        Err(LoadError::BelowFloor { id: aid("w") })
    );
    below.totals.debits_posted_micro = -1;
    assert_eq!(
        book.load_account(below),
        Err(LoadError::TotalsOutOfRange { id: aid("w") })
    );
    let posted = Record {
        transfer: Transfer::new(tid("t"), aid("a"), aid("b"), 1, 3),
        at_ms: 0,
    };
    assert_eq!(
        book.load_transfer(posted.clone(), Some(PendingState::Open)),
        Err(LoadError::StateMismatch { id: tid("t") })
    );
    book.load_transfer(posted.clone(), None).unwrap();
    assert_eq!(
        book.load_transfer(posted, None),
        Err(LoadError::DuplicateTransfer { id: tid("t") })
    );
}

#[test]
fn replay_rebuilds_the_ledger() {
    let mut ledger = ledger(&format!(
        "{BANK}
        pending h1 w:a e:p 60 until=100
        pending h2 w:a e:p 10 until=100
        post p1 w:a e:p 40 of=h1"
    ));
    ledger.expire(100, 10);
    let replayed = Ledger::replay(ledger.accounts().to_vec(), ledger.history()).unwrap();
    assert_eq!(replayed.accounts(), ledger.accounts());
    assert_eq!(
        replayed.open_pendings().collect::<Vec<_>>(),
        ledger.open_pendings().collect::<Vec<_>>()
    );
    assert_eq!(replayed.sums_micro(), ledger.sums_micro());
    replayed.check().unwrap();

    // A history that does not add up is refused, naming the transfer.
    let mut history = ledger.history().to_vec();
    history[3].transfer.amount_micro = 61;
    let error = Ledger::replay(ledger.accounts().to_vec(), &history[..4]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "transfer p1 (number 3 in history order): its amount does not fit h1's"
    );
    let error = Ledger::replay(ledger.accounts().to_vec(), &history[3..]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "transfer p1 (number 0 in history order): no earlier transfer h1"
    );
    // Stored totals that the history does not give are found.
    let mut stored = ledger.accounts().to_vec();
    stored[1].totals.credits_posted_micro += 1;
    let mut replay = Replay::new(stored.clone()).unwrap();
    for record in ledger.history() {
        replay.apply(record).unwrap();
    }
    let error = replay.finish().unwrap().compare(&stored).unwrap_err();
    assert!(matches!(error, CheckError::TotalsDiffer { .. }), "{error}");
}

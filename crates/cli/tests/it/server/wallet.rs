//! Wallets through the CLI: the operator tops a tenant up (a resend is the
//! same top-up; the same id with another amount is refused) and grants
//! credit; the tenant sees its own wallet; nobody else sees it.

use serde_json::json;

use super::harness::Db;

both_backends!(wallets, wallets_sqlite, wallets_postgres);

async fn wallets(db: Db) {
    let server = db.serve().await;
    let tenant = server.tenant_unfunded("acme").await;
    let provider = server.provider("power").await;
    let operator = server.operator_token();

    // Never topped up: an unopened, empty wallet.
    let empty = server
        .cli(&tenant.token, &["wallet", "show", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(empty["opened"], false, "{empty}");
    assert_eq!(empty["available_micro_yuan"], 0);

    let topup = |yuan: &'static str, id: &'static str| {
        let server = &server;
        let operator = operator.clone();
        let tenant = tenant.id.clone();
        async move {
            server
                .cli(
                    &operator,
                    &[
                        "wallet",
                        "topup",
                        &tenant,
                        yuan,
                        "--topup-id",
                        id,
                        "--output",
                        "json",
                    ],
                )
                .await
        }
    };
    let first = topup("100.5", "t1").await.expect(0).json();
    assert_eq!(first["balance_micro_yuan"], 100_500_000, "{first}");
    assert_eq!(first["opened"], true);
    // The same top-up again: nothing moves.
    let again = topup("100.5", "t1").await.expect(0).json();
    assert_eq!(again["balance_micro_yuan"], 100_500_000, "{again}");
    // The same id with another amount: a conflict, nothing moves.
    let clash = topup("7", "t1").await.expect(5);
    assert!(clash.stderr.contains("different"), "{}", clash.stderr);
    let bad = topup("1.0000001", "t2").await.expect(2);
    assert!(bad.stderr.contains("YUAN"), "{}", bad.stderr);

    let credit = server
        .cli(
            &operator,
            &["wallet", "credit", &tenant.id, "50", "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    assert_eq!(credit["credit_limit_micro_yuan"], 50_000_000, "{credit}");
    assert_eq!(credit["available_micro_yuan"], 100_500_000);

    let text = server
        .cli(&tenant.token, &["wallet", "show"])
        .await
        .expect(0);
    assert!(
        text.stdout.contains("balance 100.5 yuan") && text.stdout.contains("credit limit 50 yuan"),
        "{}",
        text.stdout
    );
    // The operator sees it by tenant; a provider and another tenant do not.
    let seen = server
        .cli(
            &operator,
            &["wallet", "show", "--tenant", &tenant.id, "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    assert_eq!(seen["balance_micro_yuan"], 100_500_000);
    provider.api.get("/v1/wallet").await.not_found();
    provider
        .api
        .get(&format!("/v1/tenants/{}/wallet", tenant.id))
        .await
        .not_found();
    tenant
        .api
        .post(
            &format!("/v1/tenants/{}/wallet/topups", tenant.id),
            json!({"topup_id": "x", "amount_micro_yuan": 1}),
        )
        .await
        .not_found();
    server
        .operator()
        .post(
            &format!("/v1/tenants/{}/wallet/topups", tenant.id),
            json!({"topup_id": "x", "amount_micro_yuan": 0}),
        )
        .await
        .error(422, "invalid");
    server
        .operator()
        .get("/v1/tenants/nobody/wallet")
        .await
        .not_found();

    // Every stored balance replays from the history: one top-up so far.
    let checked = server
        .cli(&operator, &["ledger", "check", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(checked["transfers"], 1, "{checked}");
    assert!(checked["accounts"].as_u64() >= Some(6), "{checked}");
    tenant.api.get("/v1/ledger/check").await.not_found();
}

both_backends!(
    rounds_hold_only_what_wallets_have,
    rounds_hold_only_what_wallets_have_sqlite,
    rounds_hold_only_what_wallets_have_postgres
);

/// The round is a budget constraint: a wallet that covers 10 tasks gets
/// 10 placed, and `job why` says what the rest would hold and what the
/// wallet has; a top-up lets the rest go.
async fn rounds_hold_only_what_wallets_have(db: Db) {
    use std::time::Duration;

    use super::harness::{cpu_pool, hello, text, wait_for};

    let server = db.serve_with("round_interval_ms = 200\n").await;
    let tenant = server.tenant_unfunded("thrifty").await;
    let provider = server.provider("power").await;
    let site = server.site(&provider, "gy-01", "guian").await;
    // Room for all 30 at 1 yuan per core-hour: no congestion, the price
    // is the list price.
    site.put_pools(json!([cpu_pool("cpu", 64, 1.0)])).await;
    site.heartbeat().await;
    // 30 tasks of one core for an hour: each holds 1 yuan.
    let mut job = hello("budget");
    job["tasks"] = json!(30);
    job["hours"] = json!(1.0);
    job["bid_yuan_per_unit_hour"] = json!(2.0);
    let id = text(&tenant.api.submit(&job).await, "id");

    // No wallet: nothing placed, and why says so.
    let why = wait_for("the wallet's reason", Duration::from_secs(20), || async {
        let view = tenant.api.job(&id).await;
        view["why"]
            .as_str()
            .filter(|why| why.starts_with("wallet:"))
            .map(str::to_owned)
    })
    .await;
    assert!(why.contains("30 more tasks would hold 30 yuan"), "{why}");
    assert_eq!(
        super::harness::count(&tenant.api.job(&id).await, "placed"),
        0
    );

    // 10 yuan: exactly 10 tasks.
    server.top_up(&tenant.id, 10_000_000).await;
    let view = wait_for("10 placed", Duration::from_secs(20), || async {
        let view = tenant.api.job(&id).await;
        (super::harness::count(&view, "placed") == 10).then_some(view)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let view_after = tenant.api.job(&id).await;
    assert_eq!(
        super::harness::count(&view_after, "placed"),
        10,
        "never more: {view_after}"
    );
    let why = view_after["why"].as_str().unwrap_or_default().to_owned();
    assert!(
        why.contains("20 more tasks would hold 20 yuan")
            && why.contains("the wallet had 0 yuan to hold"),
        "{why} {view}"
    );
    let run = server
        .cli(&tenant.token, &["job", "why", &id])
        .await
        .expect(0);
    assert!(
        run.stdout.contains("20 more tasks would hold 20 yuan"),
        "{}",
        run.stdout
    );
    let wallet = tenant.api.get("/v1/wallet").await.expect(200);
    assert_eq!(wallet["held_micro_yuan"], 10_000_000, "{wallet}");
    assert_eq!(wallet["available_micro_yuan"], 0, "{wallet}");

    // A top-up lets the rest go.
    server.top_up(&tenant.id, 25_000_000).await;
    wait_for("all 30 placed", Duration::from_secs(20), || async {
        let view = tenant.api.job(&id).await;
        (super::harness::count(&view, "placed") == 30).then_some(view)
    })
    .await;
    let wallet = tenant.api.get("/v1/wallet").await.expect(200);
    assert_eq!(wallet["held_micro_yuan"], 30_000_000, "{wallet}");
    assert_eq!(wallet["available_micro_yuan"], 5_000_000, "{wallet}");
}

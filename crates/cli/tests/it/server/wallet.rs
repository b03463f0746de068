//! Wallets through the CLI: the operator tops a tenant up (a resend is the
//! same top-up; the same id with another amount is refused) and grants
//! credit; the tenant sees its own wallet; nobody else sees it.

use serde_json::json;

use super::harness::Db;

both_backends!(wallets, wallets_sqlite, wallets_postgres);

async fn wallets(db: Db) {
    let server = db.serve().await;
    let tenant = server.tenant("acme").await;
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

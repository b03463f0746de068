//! Who may do what: every cross-tenant, cross-provider and cross-site
//! attempt fails with 404 (no existence leaks), roles cannot do each
//! other's work, and a missing, garbage or revoked token is 401.

use serde_json::json;

use super::harness::{array, cpu_pool, hello, text, Db};

both_backends!(
    access_control,
    access_control_sqlite,
    access_control_postgres
);

async fn access_control(db: Db) {
    let server = db.serve().await;
    let tenant_a = server.tenant("tenant-a").await;
    let tenant_b = server.tenant("tenant-b").await;
    let provider_x = server.provider("provider-x").await;
    let provider_y = server.provider("provider-y").await;
    let site_x = server.site(&provider_x, "site-x", "shanghai").await;
    let site_y = server.site(&provider_y, "site-y", "shanghai").await;
    // Only site Y offers capacity, so A's job lands there.
    site_y.put_pools(json!([cpu_pool("cpu", 8, 0.5)])).await;
    site_y.heartbeat().await;
    site_x.put_pools(json!([])).await;

    let job = tenant_a.api.submit(&hello("a-secret")).await;
    let job_id = text(&job, "id");
    let tasks = tenant_a
        .api
        .wait_tasks(&job_id, "A's job placed on site Y", |t| {
            t["state"] == "placed"
        })
        .await;
    assert!(
        tasks.iter().all(|t| t["site"] == site_y.id.as_str()),
        "{tasks:?}"
    );

    // Tenant B sees nothing of A's job and cannot touch it.
    for path in ["", "/why", "/tasks", "/events", "/usage"] {
        tenant_b
            .api
            .get(&format!("/v1/jobs/{job_id}{path}"))
            .await
            .not_found();
    }
    tenant_b
        .api
        .post(&format!("/v1/jobs/{job_id}/cancel"), json!(null))
        .await
        .not_found();
    // The same answer as for a job that does not exist at all.
    let missing = tenant_b
        .api
        .get("/v1/jobs/job_doesnotexist")
        .await
        .error(404, "not-found");
    assert!(
        !missing["message"]
            .as_str()
            .unwrap_or_default()
            .contains("tenant"),
        "{missing}"
    );
    let b_jobs = tenant_b.api.all_jobs().await;
    assert!(b_jobs.is_empty(), "B lists A's jobs: {b_jobs:?}");
    // The CLI says "denied" with exit 4.
    server
        .cli(&tenant_b.token, &["job", "get", &job_id])
        .await
        .expect(4);
    server
        .cli(&tenant_b.token, &["job", "cancel", &job_id])
        .await
        .expect(4);
    // Providers and sites see no jobs either.
    provider_y
        .api
        .get(&format!("/v1/jobs/{job_id}"))
        .await
        .not_found();
    site_y
        .api
        .get(&format!("/v1/jobs/{job_id}"))
        .await
        .not_found();
    assert!(provider_y.api.all_jobs().await.is_empty());
    // A's job is untouched and A still sees it.
    assert_eq!(tenant_a.api.job(&job_id).await["state"], "placed");

    // Site X cannot act for site Y.
    let y = &site_y.id;
    site_x
        .api
        .post(&format!("/v1/sites/{y}/heartbeat"), json!({}))
        .await
        .not_found();
    site_x
        .api
        .get(&format!("/v1/sites/{y}/assignments"))
        .await
        .not_found();
    site_x.api.get(&format!("/v1/sites/{y}")).await.not_found();
    site_x
        .api
        .put(
            &format!("/v1/sites/{y}/pools"),
            json!({"pools": [cpu_pool("stolen", 1, 0.1)]}),
        )
        .await
        .not_found();
    let report = json!({"statuses": [{"job": job_id, "task": 0, "attempt": tasks[0]["attempt"], "state": "running"}]});
    site_x
        .api
        .post(&format!("/v1/sites/{y}/reports"), report.clone())
        .await
        .not_found();
    // Through its own endpoint, X cannot report on Y's tasks either.
    let answer = site_x.report(report.clone()).await;
    assert_eq!(answer["statuses"][0]["outcome"], "rejected", "{answer}");
    let usage = json!({"usage": [{"job": job_id, "task": 0, "attempt": tasks[0]["attempt"], "seq": 0,
                                   "pool": tasks[0]["pool"], "units": 1, "wall_ms": 5}]});
    let answer = site_x.report(usage).await;
    assert_eq!(answer["usage"][0]["outcome"], "rejected", "{answer}");
    assert!(tenant_a.api.usage(&job_id).await.is_empty());
    let tasks_now = tenant_a.api.tasks(&job_id).await;
    assert!(
        tasks_now.iter().all(|t| t["state"] == "placed"),
        "X changed Y's task: {tasks_now:?}"
    );
    // Site Y's agent does not see X, and its assignments are its own.
    site_y
        .api
        .get(&format!("/v1/sites/{}", site_x.id))
        .await
        .not_found();
    let own = site_y.assignments().await;
    assert_eq!(
        own["assignments"].as_array().map(Vec::len),
        Some(4),
        "{own}"
    );
    let listed = array(site_y.api.get("/v1/sites").await.expect(200));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], y.as_str());

    // Provider X does not see provider Y's site.
    provider_x
        .api
        .get(&format!("/v1/sites/{y}"))
        .await
        .not_found();
    provider_x
        .api
        .put(&format!("/v1/sites/{y}/pools"), json!({"pools": []}))
        .await
        .not_found();
    let x_sites = array(provider_x.api.get("/v1/sites").await.expect(200));
    assert_eq!(x_sites.len(), 1, "{x_sites:?}");
    assert_eq!(x_sites[0]["id"], site_x.id.as_str());
    let x_text = server
        .cli(&provider_x.token, &["site", "list"])
        .await
        .expect(0);
    assert!(!x_text.stdout.contains(y.as_str()), "{}", x_text.stdout);
    // A provider is no agent: it cannot heartbeat its own site.
    provider_y
        .api
        .post(&format!("/v1/sites/{y}/heartbeat"), json!({}))
        .await
        .not_found();
    // The operator sees both sites.
    assert_eq!(
        array(server.operator().get("/v1/sites").await.expect(200)).len(),
        2
    );

    // Roles: only the operator creates tenants and providers; only tenants
    // submit; only providers create sites.
    for who in [&tenant_a, &provider_x] {
        who.api
            .post("/v1/tenants", json!({"name": "mallory"}))
            .await
            .not_found();
        who.api
            .post("/v1/providers", json!({"name": "mallory"}))
            .await
            .not_found();
        who.api.get("/v1/tenants").await.not_found();
    }
    site_x
        .api
        .post("/v1/tenants", json!({"name": "mallory"}))
        .await
        .not_found();
    server
        .cli(&tenant_a.token, &["tenant", "create", "mallory"])
        .await
        .expect(4);
    provider_x
        .api
        .post("/v1/jobs", hello("not-a-tenant"))
        .await
        .not_found();
    server
        .operator()
        .post("/v1/jobs", hello("not-a-tenant"))
        .await
        .not_found();
    tenant_a
        .api
        .post("/v1/sites", json!({"name": "rogue", "region": "shanghai"}))
        .await
        .not_found();
    tenant_a.api.get("/v1/place/export").await.not_found();
    let tenants = array(server.operator().get("/v1/tenants").await.expect(200));
    assert_eq!(
        tenants.len(),
        2,
        "no tenant was created by a non-operator: {tenants:?}"
    );

    // Tokens: missing, garbage, unknown and revoked are all 401.
    let anonymous = server.anonymous();
    anonymous.get("/v1/whoami").await.error(401, "unauthorized");
    anonymous.get("/v1/jobs").await.error(401, "unauthorized");
    anonymous
        .post("/v1/jobs", hello("anonymous"))
        .await
        .error(401, "unauthorized");
    anonymous
        .with_token("garbage")
        .get("/v1/whoami")
        .await
        .error(401, "unauthorized");
    anonymous
        .with_token("")
        .get("/v1/whoami")
        .await
        .error(401, "unauthorized");
    let unknown = format!("swt_{}", "0".repeat(64));
    anonymous
        .with_token(&unknown)
        .get("/v1/whoami")
        .await
        .error(401, "unauthorized");
    server.cli(&unknown, &["job", "list"]).await.expect(4);

    // Tenant A makes a second token with the CLI, uses it, revokes it.
    let second = server
        .cli(
            &tenant_a.token,
            &["token", "create", "--name", "ci", "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    let second_id = text(&second, "id");
    let second_api = anonymous.with_token(&text(&second, "token"));
    let who = second_api.get("/v1/whoami").await.expect(200);
    assert_eq!(who["principal"]["id"], tenant_a.id.as_str());
    assert_eq!(who["token_id"], second_id.as_str());
    assert_eq!(second_api.job(&job_id).await["id"], job_id.as_str());
    // B cannot revoke A's token.
    tenant_b
        .api
        .delete(&format!("/v1/tokens/{second_id}"))
        .await
        .not_found();
    second_api.get("/v1/whoami").await.expect(200);
    server
        .cli(&tenant_a.token, &["token", "revoke", &second_id])
        .await
        .expect(0);
    second_api
        .get("/v1/whoami")
        .await
        .error(401, "unauthorized");
    second_api
        .get(&format!("/v1/jobs/{job_id}"))
        .await
        .error(401, "unauthorized");
    let tokens = array(tenant_a.api.get("/v1/tokens").await.expect(200));
    assert!(
        tokens
            .iter()
            .any(|t| t["id"] == second_id.as_str() && t["revoked"] == true),
        "{tokens:?}"
    );
    // The first token still works.
    tenant_a.api.get("/v1/whoami").await.expect(200);
}

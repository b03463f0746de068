//! Health, readiness, metrics, the OpenAPI document, unknown routes, and
//! per-token rate limits.

use serde_json::Value;

use super::harness::{hello, Db};

both_backends!(
    system_endpoints,
    system_endpoints_sqlite,
    system_endpoints_postgres
);
both_backends!(rate_limit, rate_limit_sqlite, rate_limit_postgres);

async fn system_endpoints(db: Db) {
    let server = db.serve().await;
    let anonymous = server.anonymous();
    let health = anonymous.get("/healthz").await;
    assert_eq!((health.status, health.text.as_str()), (200, "ok\n"));
    let ready = anonymous.get("/readyz").await;
    assert_eq!((ready.status, ready.text.as_str()), (200, "ready\n"));

    // Some traffic, then the metrics show it.
    let tenant = server.tenant("acme").await;
    tenant.api.submit(&hello("counted")).await;
    tenant.api.get("/v1/jobs").await.expect(200);
    let metrics = anonymous.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = &metrics.text;
    for needle in [
        "suanwang_http_requests_total",
        "route=\"/v1/jobs\"",
        "suanwang_http_request_seconds",
        "suanwang_jobs_submitted_total",
        "suanwang_jobs{state=\"",
    ] {
        assert!(text.contains(needle), "no {needle} in /metrics:\n{text}");
    }
    let submitted = text
        .lines()
        .find(|line| {
            line.starts_with("suanwang_http_requests_total")
                && line.contains("route=\"/v1/jobs\"")
                && line.contains("method=\"POST\"")
                && line.contains("status=\"201\"")
        })
        .unwrap_or_else(|| panic!("no counter of the submit:\n{text}"));
    let value: f64 = submitted
        .rsplit(' ')
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no value in {submitted}"));
    assert!(value >= 1.0, "{submitted}");

    // The OpenAPI document is JSON and lists the routes.
    let document: Value = anonymous.get("/v1/openapi.json").await.expect(200);
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "{}",
        document["openapi"]
    );
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/jobs/{id}/cancel",
        "/v1/sites/{id}/heartbeat",
        "/v1/sites/{id}/reports",
        "/v1/tenants",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        paths["/v1/jobs"]["post"].is_object(),
        "{}",
        paths["/v1/jobs"]
    );
    assert!(document["components"]["schemas"]["JobSpec"].is_object());
    // A field older servers omit: documented, not required.
    let assignment = &document["components"]["schemas"]["AssignmentView"];
    assert!(
        assignment["properties"]["memory_gib"].is_object(),
        "{assignment}"
    );
    assert!(
        !assignment["required"]
            .as_array()
            .expect("required fields")
            .contains(&Value::from("memory_gib")),
        "{assignment}"
    );

    // Unknown routes are JSON 404s.
    anonymous.get("/v1/nothing-here").await.not_found();
    server
        .operator()
        .get("/v1/jobs/not%20an%20id")
        .await
        .not_found();
}

async fn rate_limit(db: Db) {
    let server = db
        .serve_with("rate_limit_per_s = 1\nrate_limit_burst = 3\n")
        .await;
    // Unfunded: a top-up is an operator request the limit would count.
    let tenant = server.tenant_unfunded("acme").await;
    let other = server.tenant_unfunded("other").await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(tenant.api.get("/v1/whoami").await.status);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    tenant
        .api
        .get("/v1/whoami")
        .await
        .error(429, "rate-limited");
    // Per token: another tenant is not slowed down.
    other.api.get("/v1/whoami").await.expect(200);
    // The CLI exits 5 when rate-limited.
    server.cli(&tenant.token, &["job", "list"]).await.expect(5);
    // The bucket refills.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    tenant.api.get("/v1/whoami").await.expect(200);
}

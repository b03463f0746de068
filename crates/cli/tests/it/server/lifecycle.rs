//! A job from submit to usage: the operator creates a tenant and a provider,
//! the provider a site, the site's agent registers pools and heartbeats, the
//! tenant submits examples/hello.toml with the CLI, the scheduling loop
//! places it, the agent runs and reports it, and the tenant reads the usage.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::harness::{array, count, cpu_pool, hello_path, text, Db, Site};

both_backends!(lifecycle, lifecycle_sqlite, lifecycle_postgres);

async fn lifecycle(db: Db) {
    let server = db.serve().await;
    let operator = server.operator.clone();

    // The operator creates a tenant and a provider with the CLI.
    let tenant = server
        .cli(&operator, &["tenant", "create", "acme", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(tenant["role"], "tenant");
    assert_eq!(tenant["name"], "acme");
    let tenant_id = text(&tenant, "id");
    let tenant_token = text(&tenant, "token");
    assert!(tenant_token.starts_with("swt_"), "{tenant}");
    // Work is placed only as far as the tenant's wallet holds it.
    server
        .cli(
            &operator,
            &["wallet", "topup", &tenant_id, "100", "--topup-id", "first"],
        )
        .await
        .expect(0);
    let provider = server
        .cli(
            &operator,
            &["provider", "create", "gz-power", "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    assert_eq!(provider["role"], "provider");
    let provider_token = text(&provider, "token");
    let tenants = server.cli(&operator, &["tenant", "list"]).await.expect(0);
    assert!(
        tenants.stdout.contains(&format!("{tenant_id}  acme")),
        "{}",
        tenants.stdout
    );
    let whoami = server
        .api(&tenant_token)
        .get("/v1/whoami")
        .await
        .expect(200);
    assert_eq!(whoami["principal"]["id"], tenant_id.as_str());
    assert_eq!(whoami["principal"]["role"], "tenant");

    // The provider registers a site; its agent declares a pool and heartbeats.
    let created = server
        .cli(
            &provider_token,
            &[
                "site", "create", "sh-01", "--region", "shanghai", "--output", "json",
            ],
        )
        .await
        .expect(0)
        .json();
    assert_eq!(created["region"], "shanghai");
    let site = Site {
        id: text(&created, "id"),
        api: server.api(&text(&created, "token")),
    };
    // A device model the catalogue knows (by alias), so usage is rated.
    let mut pool = cpu_pool("cpu", 8, 0.5);
    pool["device_model"] = json!("AMD EPYC 9654");
    let view = site.put_pools(json!([pool])).await;
    assert_eq!(view["pools"][0]["capacity"], 8, "{view}");
    assert_eq!(view["pools"][0]["used"], 0, "{view}");
    let pool_id = text(&view["pools"][0], "id");
    let lease = site.heartbeat().await;
    assert_eq!(lease["site"], site.id.as_str());
    assert_eq!(lease["ttl_s"], 15, "the default lease");
    let sites = server
        .cli(&provider_token, &["site", "list", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(sites.as_array().map(Vec::len), Some(1), "{sites}");
    assert_eq!(sites[0]["id"], site.id.as_str());
    assert_eq!(sites[0]["healthy"], true, "{sites}");

    // The tenant submits the smallest job.
    let hello = hello_path();
    let submitted = server
        .cli(
            &tenant_token,
            &[
                "job",
                "submit",
                hello.to_str().expect("UTF-8 path"),
                "--output",
                "json",
            ],
        )
        .await
        .expect(0)
        .json();
    let job_id = text(&submitted, "id");
    assert_eq!(submitted["name"], "hello");
    assert_eq!(submitted["tenant"], tenant_id.as_str());
    assert_eq!(submitted["state"], "pending");
    assert_eq!(count(&submitted, "pending"), 4, "{submitted}");
    assert_eq!(submitted["spec"]["run"]["command"], "true");

    // The scheduling loop places all four tasks on the only pool.
    let tenant_api = server.api(&tenant_token);
    let tasks = tenant_api
        .wait_tasks(&job_id, "all 4 tasks placed", |task| {
            task["state"] == "placed"
        })
        .await;
    assert_eq!(tasks.len(), 4);
    for task in &tasks {
        assert_eq!(task["site"], site.id.as_str(), "{task}");
        assert_eq!(task["pool"], pool_id.as_str(), "{task}");
    }
    let job = tenant_api.job(&job_id).await;
    assert_eq!(job["state"], "placed", "{job}");
    assert_eq!(count(&job, "placed"), 4, "{job}");
    let why = server
        .cli(&tenant_token, &["job", "why", &job_id, "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(why["state"], "placed");
    let used = server
        .api(&provider_token)
        .get(&format!("/v1/sites/{}", site.id))
        .await
        .expect(200);
    assert_eq!(
        used["pools"][0]["used"], 4,
        "placed tasks take capacity: {used}"
    );

    // The agent fetches its assignments.
    let assignments = site.assignments().await;
    let list = array(assignments["assignments"].clone());
    assert_eq!(list.len(), 4, "{assignments}");
    let indexes: BTreeSet<u64> = list.iter().filter_map(|a| a["task"].as_u64()).collect();
    assert_eq!(indexes, BTreeSet::from([0, 1, 2, 3]));
    for assignment in &list {
        assert_eq!(assignment["job"], job_id.as_str());
        assert_eq!(assignment["pool"], pool_id.as_str());
        assert_eq!(assignment["units"], 1);
        assert_eq!(assignment["run"]["command"], "true");
        assert_eq!(assignment["memory_gib"], 0.0, "hello asks no memory");
    }
    let statuses = |state: &str| -> Vec<Value> {
        list.iter()
            .map(|a| {
                json!({"job": a["job"], "task": a["task"], "attempt": a["attempt"], "state": state,
                       "exit_code": if state == "succeeded" { json!(0) } else { Value::Null }})
            })
            .collect()
    };

    // Running...
    let answer = site
        .report(json!({ "statuses": statuses("running") }))
        .await;
    assert_all(&answer["statuses"], "accepted");
    assert_eq!(tenant_api.job(&job_id).await["state"], "running");

    // ...succeeded, with usage.
    let usage: Vec<Value> = list
        .iter()
        .map(|a| {
            json!({"job": a["job"], "task": a["task"], "attempt": a["attempt"], "seq": 0,
                   "pool": a["pool"], "units": 1, "wall_ms": 1234})
        })
        .collect();
    let report = json!({ "statuses": statuses("succeeded"), "usage": usage });
    let answer = site.report(report.clone()).await;
    assert_all(&answer["statuses"], "accepted");
    assert_all(&answer["usage"], "accepted");
    // A resent report is accepted once.
    let again = site.report(report).await;
    assert_all(&again["statuses"], "duplicate");
    assert_all(&again["usage"], "duplicate");

    let job = tenant_api.job(&job_id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(count(&job, "succeeded"), 4, "{job}");
    let freed = server
        .api(&provider_token)
        .get(&format!("/v1/sites/{}", site.id))
        .await
        .expect(200);
    assert_eq!(
        freed["pools"][0]["used"], 0,
        "finished tasks free capacity: {freed}"
    );

    // The CLI shows it: usage, get, list, tasks, events, watch.
    let records = server
        .cli(
            &tenant_token,
            &["job", "usage", &job_id, "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    let records = array(records);
    assert_eq!(records.len(), 4, "one record per task, resends not counted");
    for record in &records {
        assert_eq!(record["site"], site.id.as_str());
        assert_eq!(record["pool"], pool_id.as_str());
        assert_eq!(record["wall_ms"], 1234);
        assert_eq!(record["units"], 1);
        // Rated with the catalogue's exact factor: 1 core x 1234 ms x 48/625
        // SCU = 94.7712 SCU-ms = 26.3253 micro-SCU-hours, rounded to 26.
        assert_eq!(record["device_model"], "amd-epyc-9654");
        assert_eq!(record["scu_micro_hours"], 26);
        assert_eq!(record["scu_rated"], true);
        assert_eq!(record["catalogue_version"], "2026-11");
    }
    let metered = server
        .cli(&tenant_token, &["meter", "usage", "--job", &job_id])
        .await
        .expect(0);
    assert!(
        metered
            .stdout
            .lines()
            .filter(
                |l| l.ends_with("amd-epyc-9654  1 core x 1.234 s = 1.234 core-s  0.000026 SCU-h")
            )
            .count()
            == 4
            && metered
                .stdout
                .contains("amd-epyc-9654: 4 records, 4.936 core-s, 0.000104 SCU-h\n")
            && metered
                .stdout
                .contains("total: 4 records, 0.000104 SCU-h, catalogue 2026-11\n"),
        "{}",
        metered.stdout
    );
    let usage_text = server
        .cli(&tenant_token, &["job", "usage", &job_id])
        .await
        .expect(0);
    assert_eq!(
        usage_text
            .stdout
            .lines()
            .filter(|l| l.contains("1 units x 1234 ms"))
            .count(),
        4,
        "{}",
        usage_text.stdout
    );

    let got = server
        .cli(&tenant_token, &["job", "get", &job_id])
        .await
        .expect(0);
    assert!(
        got.stdout.contains(&job_id) && got.stdout.contains("succeeded"),
        "{}",
        got.stdout
    );
    let listed = server
        .cli(&tenant_token, &["job", "list", "--output", "json"])
        .await
        .expect(0)
        .json();
    assert_eq!(listed["jobs"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["jobs"][0]["id"], job_id.as_str());
    assert!(listed["next"].is_null());
    let tasks = array(
        server
            .cli(
                &tenant_token,
                &["job", "tasks", &job_id, "--output", "json"],
            )
            .await
            .expect(0)
            .json(),
    );
    assert!(
        tasks
            .iter()
            .all(|t| t["state"] == "succeeded" && t["exit_code"] == 0),
        "{tasks:?}"
    );
    let events = array(
        server
            .cli(
                &tenant_token,
                &["job", "events", &job_id, "--output", "json"],
            )
            .await
            .expect(0)
            .json(),
    );
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"submitted"), "{kinds:?}");
    for kind in ["placed", "running", "succeeded"] {
        assert!(kinds.contains(&kind), "no {kind} event: {kinds:?}");
    }
    assert_eq!(
        kinds.iter().filter(|k| **k == "succeeded").count(),
        4,
        "{kinds:?}"
    );
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "events in order: {seqs:?}"
    );
    let watched = server
        .cli(
            &tenant_token,
            &["job", "watch", &job_id, "--output", "json"],
        )
        .await
        .expect(0)
        .json();
    assert_eq!(watched["state"], "succeeded");
    // A finished job cannot be cancelled: exit 5 (conflict).
    server
        .cli(&tenant_token, &["job", "cancel", &job_id])
        .await
        .expect(5);
}

#[track_caller]
fn assert_all(outcomes: &Value, outcome: &str) {
    let list = outcomes
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {outcomes}"));
    assert!(!list.is_empty());
    assert!(
        list.iter().all(|o| o["outcome"] == outcome),
        "expected all {outcome}: {outcomes}"
    );
}

//! Pages over HTTP: a job's tasks (the never-placed tail included), events
//! and usage come `limit` at a time with a `next` cursor, the names of
//! sites and pools ride beside their ids, a bad `limit` or cursor is a 400
//! naming it, and the CLI follows the pages to the end.

use serde_json::{json, Value};

use super::harness::{cpu_pool, hello, text, Api, Db};

both_backends!(paging, paging_sqlite, paging_postgres);

/// Every page of `path` with `limit`: the pages' `items`.
async fn pages(api: &Api, path: &str, items: &str, limit: u32) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut query = format!("limit={limit}");
    loop {
        let page = api.get(&format!("{path}?{query}")).await.expect(200);
        let list = page[items].as_array().cloned().expect("a list");
        assert!(list.len() <= limit as usize, "{page}");
        pages.push(list);
        match &page["next"] {
            Value::Null => return pages,
            Value::String(next) => query = format!("limit={limit}&after={next}"),
            next => query = format!("limit={limit}&after={next}"),
        }
    }
}

async fn paging(db: Db) {
    let server = db.serve_with("round_interval_ms = 200\n").await;
    let tenant = server.tenant("acme").await;
    let provider = server.provider("power").await;
    let site = server.site(&provider, "sh-01", "shanghai").await;
    let view = site.put_pools(json!([cpu_pool("cpu", 3, 0.5)])).await;
    let pool = text(&view["pools"][0], "id");
    site.heartbeat().await;

    // 2,500 tasks: more than the largest page. Three fit the pool.
    let mut job = hello("wide");
    job["tasks"] = json!(2_500);
    let job_id = text(&tenant.api.submit(&job).await, "id");
    let api = &tenant.api;
    let base = format!("/v1/jobs/{job_id}");
    let placed = super::harness::wait_for(
        "three tasks placed",
        std::time::Duration::from_secs(10),
        || async {
            let page = api.get(&format!("{base}/tasks?limit=3")).await.expect(200);
            let tasks = page["tasks"].as_array().cloned().unwrap_or_default();
            tasks
                .iter()
                .all(|t| t["state"] == "placed")
                .then_some(tasks)
        },
    )
    .await;
    for task in &placed {
        assert_eq!(task["site"], site.id.as_str(), "{task}");
        assert_eq!(task["site_name"], "sh-01", "{task}");
        assert_eq!(task["site_region"], "shanghai", "{task}");
        assert_eq!(task["pool"], pool.as_str(), "{task}");
        assert_eq!(task["pool_name"], "cpu", "{task}");
    }

    // Tasks: the default page is 1,000; every index once, in order.
    let first = api.get(&format!("{base}/tasks")).await.expect(200);
    assert_eq!(first["tasks"].as_array().map(Vec::len), Some(1_000));
    assert_eq!(first["next"], 999);
    let all = pages(api, &format!("{base}/tasks"), "tasks", 1_000).await;
    assert_eq!(
        all.iter().map(Vec::len).collect::<Vec<_>>(),
        [1_000, 1_000, 500]
    );
    let indexes: Vec<u64> = all
        .concat()
        .iter()
        .filter_map(|t| t["index"].as_u64())
        .collect();
    assert_eq!(indexes, (0..2_500).collect::<Vec<_>>());
    let tail = &all[2][0];
    assert_eq!(tail["state"], "pending", "{tail}");
    assert!(tail["site_name"].is_null(), "{tail}");

    // Usage: two records per placed task, four to a page.
    let usage: Vec<Value> = placed
        .iter()
        .flat_map(|t| {
            [0, 1].map(|seq| {
                json!({"job": job_id, "task": t["index"], "attempt": t["attempt"], "seq": seq,
                       "pool": pool, "units": 1, "wall_ms": 1_000})
            })
        })
        .collect();
    let statuses: Vec<Value> = placed
        .iter()
        .map(|t| json!({"job": job_id, "task": t["index"], "attempt": t["attempt"], "state": "running"}))
        .collect();
    let answer = site
        .report(json!({"statuses": statuses, "usage": usage}))
        .await;
    assert!(
        answer["usage"]
            .as_array()
            .is_some_and(|o| o.len() == 6 && o.iter().all(|o| o["outcome"] == "accepted")),
        "{answer}"
    );
    let usage_pages = pages(api, &format!("{base}/usage"), "usage", 4).await;
    assert_eq!(usage_pages.iter().map(Vec::len).collect::<Vec<_>>(), [4, 2]);
    let keys: Vec<(u64, u64)> = usage_pages
        .concat()
        .iter()
        .map(|u| {
            (
                u["task"].as_u64().unwrap_or(99),
                u["seq"].as_u64().unwrap_or(99),
            )
        })
        .collect();
    assert_eq!(keys, [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]);
    for record in usage_pages.concat() {
        assert_eq!(
            (
                &record["site_name"],
                &record["site_region"],
                &record["pool_name"]
            ),
            (&json!("sh-01"), &json!("shanghai"), &json!("cpu")),
            "{record}"
        );
    }

    // Events: one at a time, the same as all at once.
    let events = api.get(&format!("{base}/events")).await.expect(200);
    let everything = events["events"].as_array().cloned().expect("events");
    assert!(everything.len() >= 3, "{events}");
    assert!(events["next"].is_null(), "{events}");
    let one_by_one = pages(api, &format!("{base}/events"), "events", 1).await;
    assert!(one_by_one.iter().all(|page| page.len() <= 1));
    assert_eq!(one_by_one.concat(), everything);

    // Out of range or malformed: 400, naming the parameter.
    for (query, field) in [
        ("tasks?limit=0", "limit"),
        ("tasks?limit=1001", "limit"),
        ("tasks?after=-1", "after"),
        ("tasks?after=x", "after"),
        ("events?limit=5000", "limit"),
        ("usage?after=not-a-cursor", "after"),
        ("usage?limit=1.5", "limit"),
        ("tasks?page=2", ""),
    ] {
        let error = api
            .get(&format!("{base}/{query}"))
            .await
            .error(400, "bad-query");
        if !field.is_empty() {
            assert_eq!(error["field"], field, "{query}: {error}");
        }
    }

    // The CLI follows the pages: all 2,500 tasks, all 6 records.
    let run = server
        .cli(
            &tenant.token,
            &["job", "tasks", &job_id, "--output", "json"],
        )
        .await
        .expect(0);
    assert_eq!(run.json().as_array().map(Vec::len), Some(2_500));
    let run = server
        .cli(
            &tenant.token,
            &["job", "usage", &job_id, "--output", "json"],
        )
        .await
        .expect(0);
    assert_eq!(run.json().as_array().map(Vec::len), Some(6));
}

//! Deadlines through the real server: a deadline no task could meet is
//! refused at submission; a job whose deadline passes while it waits fails
//! with the reason `deadline`, and `job why` names the deadline until then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use suanwang_core::deadline::format_ms;

use super::harness::{hello, text, wait_for, Db};

both_backends!(deadline, deadline_sqlite, deadline_postgres);

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_millis()).expect("ms fit i64")
}

async fn deadline(db: Db) {
    let server = db.serve_with("round_interval_ms = 200\n").await;
    let tenant = server.tenant("acme").await;

    // One hour of work due in one minute: refused, naming the field.
    let mut late = hello("late");
    late["hours"] = json!(1.0);
    late["deadline"] = json!(format_ms(now_ms() + 60_000));
    let error = tenant
        .api
        .post("/v1/jobs", late.clone())
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "deadline", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be met")),
        "{error}"
    );
    // Malformed: refused too; a time without an offset names no instant.
    late["deadline"] = json!("2026-12-01T08:00:00");
    let error = tenant
        .api
        .post("/v1/jobs", late.clone())
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "deadline", "{error}");
    // With time to spare (and an offset other than Z) it is taken.
    let spare = now_ms() + 3 * 3_600_000;
    late["deadline"] = json!(format_ms(spare).replace('Z', "+00:00"));
    let taken = tenant.api.submit(&late).await;
    let why = tenant
        .api
        .get(&format!("/v1/jobs/{}/why", text(&taken, "id")))
        .await
        .expect(200);
    assert!(text(&why, "why").contains("must start within"), "{why}");

    // No site, so no pool fits: this job waits until its deadline, a few
    // seconds ahead, can no longer be met.
    let mut job = hello("due");
    job["tasks"] = json!(3);
    job["hours"] = json!(0.0001); // 360 ms
    let due_ms = now_ms() + 4_000;
    job["deadline"] = json!(format_ms(due_ms));
    let body = serde_json::to_vec(&job).expect("JSON");
    let id = text(
        &tenant
            .api
            .post_keyed("/v1/jobs", "due-1", &body)
            .await
            .expect(201),
        "id",
    );
    let why = server
        .cli(&tenant.token, &["job", "why", &id])
        .await
        .expect(0);
    assert!(why.stdout.contains("deadline"), "{}", why.stdout);
    assert!(why.stdout.contains("must start within"), "{}", why.stdout);
    let view = tenant
        .api
        .get(&format!("/v1/jobs/{id}/why"))
        .await
        .expect(200);
    assert_eq!(view["state"], "pending", "{view}");
    let line = format!("deadline {}, in ", format_ms(due_ms));
    assert!(text(&view, "why").contains(&line), "{view}");

    let failed = wait_for(
        "the job failed at its deadline",
        Duration::from_secs(15),
        || {
            let api = tenant.api.clone();
            let id = id.clone();
            async move {
                let job = api.job(&id).await;
                (job["state"] == "failed").then_some(job)
            }
        },
    )
    .await;
    // Not before the last moment a task could have started.
    assert!(now_ms() >= due_ms - 1_360, "failed too early: {failed}");
    let tasks = tenant.api.tasks(&id).await;
    assert_eq!(tasks.len(), 3);
    for task in &tasks {
        assert_eq!(task["state"], "failed", "{task}");
        assert_eq!(task["reason"], "deadline", "{task}");
        assert_eq!(task["attempt"], 0, "never started: {task}");
    }
    let events = tenant.api.events(&id).await;
    let missed = events
        .iter()
        .find(|e| e["kind"] == "deadline")
        .unwrap_or_else(|| panic!("no deadline event in {events:?}"));
    assert!(
        text(missed, "detail").contains("3 waiting tasks failed"),
        "{missed}"
    );
    // A retry of the accepted submission is still its replay, although the
    // deadline is out of reach now; a new submission is refused.
    let replay = tenant
        .api
        .post_keyed("/v1/jobs", "due-1", &body)
        .await
        .expect(201);
    assert_eq!(replay["id"], id.as_str(), "{replay}");
    let error = tenant
        .api
        .post_keyed("/v1/jobs", "due-2", &body)
        .await
        .error(422, "invalid");
    assert_eq!(error["field"], "deadline", "{error}");
    let why = tenant
        .api
        .get(&format!("/v1/jobs/{id}/why"))
        .await
        .expect(200);
    assert_eq!(why["state"], "failed");
    let why = text(&why, "why");
    assert!(
        why.contains("tasks still waiting then failed") && why.contains(&format_ms(due_ms)),
        "{why}"
    );
}

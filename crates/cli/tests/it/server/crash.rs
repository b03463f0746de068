//! kill -9 during a burst of submissions: after a restart on the same data
//! every acknowledged job is there, and retrying every key, answered or not,
//! makes no job twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::harness::{hello, text, wait_for, Api, Db};

both_backends!(
    crash_durability,
    crash_durability_sqlite,
    crash_durability_postgres
);

const CLIENTS: usize = 16;

/// What one client saw: the keys it sent, and the job id of those answered
/// 201 (the acknowledged ones).
#[derive(Debug, Default)]
struct Seen {
    sent: Vec<String>,
    acknowledged: BTreeMap<String, String>,
}

fn body(key: &str) -> Vec<u8> {
    serde_json::to_vec(&hello(key)).expect("JSON")
}

/// Submits jobs named after their keys until the server stops answering.
async fn client(api: Api, number: usize, acknowledged: Arc<AtomicUsize>) -> Seen {
    let mut seen = Seen::default();
    for n in 0.. {
        let key = format!("c{number:02}-{n:05}");
        let body = body(&key);
        seen.sent.push(key.clone());
        loop {
            let request = api.try_post_keyed("/v1/jobs", &key, &body).await;
            match request {
                Ok((201, answer)) => {
                    let job: serde_json::Value = serde_json::from_str(&answer).expect("a job view");
                    assert_eq!(job["name"], key.as_str());
                    seen.acknowledged.insert(key.clone(), text(&job, "id"));
                    acknowledged.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                // Rate-limited: the same key again.
                Ok((429, _)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok((status, answer)) => panic!("submit {key}: {status} {answer}"),
                // The server is gone.
                Err(_) => return seen,
            }
        }
    }
    unreachable!("the loop ends when the server dies")
}

async fn crash_durability(db: Db) {
    let mut server = db.serve().await;
    let tenant = server.tenant("acme").await;
    let api = tenant.api.clone();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|number| tokio::spawn(client(api.clone(), number, acknowledged.clone())))
        .collect();
    // Mid-burst: once a good number are answered, while all clients send.
    wait_for(
        "200 acknowledged submissions",
        Duration::from_secs(15),
        || {
            let done = acknowledged.load(Ordering::Relaxed);
            async move { (done >= 200).then_some(()) }
        },
    )
    .await;
    server.kill();
    let mut sent = BTreeSet::new();
    let mut answered = BTreeMap::new();
    for client in clients {
        let seen = client.await.expect("a client task");
        sent.extend(seen.sent);
        answered.extend(seen.acknowledged);
    }
    assert!(answered.len() >= 200);
    assert!(
        sent.len() > answered.len(),
        "every client had one request in flight"
    );

    // Restart on the same data.
    let server = db.serve().await;
    let api = server.api(&tenant.token);
    let jobs = api.all_jobs().await;
    let mut by_name: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for job in &jobs {
        by_name
            .entry(text(job, "name"))
            .or_default()
            .push(text(job, "id"));
    }
    let twice: Vec<_> = by_name.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "jobs stored twice: {twice:?}");
    for (key, id) in &answered {
        assert_eq!(
            by_name.get(key),
            Some(&vec![id.clone()]),
            "acknowledged job {key} ({id}) lost in the crash"
        );
    }
    assert!(
        by_name.keys().all(|name| sent.contains(name)),
        "a job nobody sent"
    );
    eprintln!(
        "crash: {} sent, {} acknowledged, {} stored before the retries",
        sent.len(),
        answered.len(),
        jobs.len()
    );

    // Every client retries everything it sent: no duplicates, and the
    // acknowledged keys answer with their original job.
    for key in &sent {
        let reply = api
            .post_keyed("/v1/jobs", key, &body(key))
            .await
            .expect(201);
        if let Some(id) = answered.get(key) {
            assert_eq!(reply["id"], id.as_str(), "retry of {key} made a new job");
        }
        if let Some(ids) = by_name.get(key) {
            assert_eq!(
                reply["id"],
                ids[0].as_str(),
                "retry of stored {key} made a new job"
            );
        }
    }
    let after = api.all_jobs().await;
    let names: Vec<String> = after.iter().map(|job| text(job, "name")).collect();
    let unique: BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "a retry made a job twice");
    assert_eq!(unique.into_iter().cloned().collect::<BTreeSet<_>>(), sent);
    // Every stored job has its tasks and reads back whole.
    for job in after.iter().take(20) {
        assert_eq!(job["tasks"]["pending"], 4, "{job}");
        assert_eq!(api.tasks(&text(job, "id")).await.len(), 4);
    }
}

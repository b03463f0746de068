//! The twin test: one seeded script of inputs (`core::machine::script`)
//! runs through the pure model alone and through each real store, and the
//! two worlds must end the same — every job's state, every task's state,
//! attempt, site, pool, exit code and reason, every site's health, and
//! every job's events. The model and the store apply the same machine
//! functions; a difference is a bug in how one of them loads or applies.

use suanwang_core::machine::model::{Input, CANCELLED_BY};
use suanwang_core::machine::round::Placed;
use suanwang_core::machine::script::{self, Script, SITES};
use suanwang_store::{MissedDeadline, NewJob, RoundWrite, Store, UsageIn};

use crate::harness::*;

/// Inputs per script, and scripts per backend.
const STEPS: usize = 400;
const SEEDS: [u64; 3] = [1, 2, 3];

async fn drive(store: &dyn Store, tenant: &str, input: &Input) {
    match input {
        Input::Submit {
            job,
            kind,
            tasks,
            retries,
        } => {
            let new = NewJob {
                kind: *kind,
                ..harness_job(job, tenant, *tasks, *retries)
            };
            submit(store, new).await;
        }
        Input::Round { placements, at_ms } => {
            let round = RoundWrite {
                placements: placements.clone(),
                whys: Vec::new(),
                prices: Vec::new(),
                holds: vec![],
                at_ms: *at_ms,
            };
            store.apply_round(&round).await.expect("round");
        }
        Input::Report {
            site,
            statuses,
            usage: records,
            at_ms,
        } => {
            let records: Vec<UsageIn> = records
                .iter()
                // The script's quantities: its wrong units and over-long
                // wall times must be refused by the store as by the model.
                .map(|u| UsageIn {
                    units: u.units,
                    wall_ms: u.wall_ms,
                    ..usage(&u.job, u.task, u.attempt, u.seq, &u.pool)
                })
                .collect();
            store
                .report(site, statuses, &records, *at_ms)
                .await
                .expect("report");
        }
        Input::Heartbeat {
            site,
            expires_at_ms,
        } => {
            store
                .heartbeat(site, *expires_at_ms, &Default::default())
                .await
                .expect("heartbeat");
        }
        Input::LeaseCheck { now_ms } => {
            store.expire_leases(*now_ms).await.expect("lease check");
        }
        Input::Cancel { job, at_ms } => {
            let audit = suanwang_store::Audit {
                at_ms: *at_ms,
                ..audit(CANCELLED_BY, "job.cancel", job)
            };
            store.cancel(job, None, &audit).await.expect("cancel");
        }
        Input::Deadline {
            job,
            deadline_ms,
            now_ms,
        } => {
            let missed = MissedDeadline {
                job: job.clone(),
                deadline_ms: *deadline_ms,
            };
            store
                .fail_missed_deadlines(&[missed], *now_ms)
                .await
                .expect("deadline");
        }
    }
}

fn harness_job(id: &str, tenant: &str, tasks: u64, retries: u32) -> NewJob {
    job(id, tenant, tasks, 1, retries)
}

contract!(
    one_script_through_the_model_and_the_store_ends_the_same,
    |db| {
        for seed in SEEDS {
            let store = db.store.clone();
            // Each seed in a world of its own: ids carry the seed.
            let provider = provider(&*store, &format!("hub{seed}")).await;
            let tenant = tenant(&*store, &format!("acme{seed}")).await;
            let mut script = Script::new(seed);
            let mut model = script.world();
            let prefix = format!("x{seed}-");
            let ours = |id: &str| format!("{prefix}{id}");
            for site in SITES {
                site_with_id(&*store, &ours(site), &provider, &ours(site), "r1").await;
                let mut p = pool(&ours(site), "p", 1_000);
                p.id = ours(&script::pool_of(site));
                store
                    .put_pools(&ours(site), &[p], &audit(&provider, "pools.put", site))
                    .await
                    .expect("pools");
            }
            for (id, kind, tasks, retries) in script::JOBS {
                let new = NewJob {
                    kind,
                    ..harness_job(&ours(id), &tenant, tasks, retries)
                };
                submit(&*store, new).await;
            }
            let mut inputs = 0;
            for _ in 0..STEPS {
                let Some(input) = script.next(&model) else {
                    continue;
                };
                model.input(&input);
                drive(&*store, &tenant, &rename(&input, &ours)).await;
                inputs += 1;
            }
            assert!(inputs > STEPS / 3, "the script acted: {inputs} inputs");
            for (id, job) in &model.view.jobs {
                let row = store
                    .job(&ours(id))
                    .await
                    .expect("job")
                    .expect("job exists");
                assert_eq!(row.state, job.state, "seed {seed} job {id}");
                let tasks = store.tasks(&ours(id), None, 1_000).await.expect("tasks");
                assert_eq!(tasks.len() as u64, job.tasks, "seed {seed} job {id}");
                for task in tasks {
                    let key = (id.clone(), task.index);
                    let expect = model.view.task(id, task.index).expect("in the model");
                    let detail = model.details.get(&key).cloned().unwrap_or_default();
                    let got = (
                        task.state,
                        task.attempt,
                        task.site,
                        task.pool,
                        task.exit_code,
                        task.reason,
                    );
                    let want = (
                        expect.state,
                        expect.attempt,
                        expect.site.map(|s| ours(&s)),
                        expect.pool.map(|p| ours(&p)),
                        detail.exit_code,
                        detail
                            .reason
                            .map(|r| r.replace("site s", &format!("site {prefix}s"))),
                    );
                    assert_eq!(got, want, "seed {seed} task {id}[{}]", task.index);
                }
                let events: Vec<(Option<u64>, String, String)> = store
                    .events(&ours(id), 0, 1_000)
                    .await
                    .expect("events")
                    .into_iter()
                    .filter(|e| e.kind != suanwang_core::lifecycle::EventKind::Submitted)
                    .map(|e| {
                        (
                            e.task,
                            e.kind.as_str().to_owned(),
                            e.detail.replace(&prefix, ""),
                        )
                    })
                    .collect();
                let expected: Vec<(Option<u64>, String, String)> = model
                    .events
                    .iter()
                    .filter(|(_, e)| &e.job == id)
                    .map(|(_, e)| (e.task, e.kind.as_str().to_owned(), e.detail.clone()))
                    .collect();
                assert_eq!(events, expected, "seed {seed} events of {id}");
            }
            for site in SITES {
                let row = store
                    .site(&ours(site))
                    .await
                    .expect("site")
                    .expect("site exists");
                assert_eq!(
                    row.healthy, model.view.sites[site].healthy,
                    "seed {seed} site {site}"
                );
            }
        }
    }
);

/// `input` with every job, site and pool id given the seed's prefix.
fn rename(input: &Input, ours: &dyn Fn(&str) -> String) -> Input {
    match input.clone() {
        Input::Submit {
            job,
            kind,
            tasks,
            retries,
        } => Input::Submit {
            job: ours(&job),
            kind,
            tasks,
            retries,
        },
        Input::Round { placements, at_ms } => Input::Round {
            placements: placements
                .into_iter()
                .map(|placed| Placed {
                    job: ours(&placed.job),
                    pool: ours(&placed.pool),
                    site: ours(&placed.site),
                    ..placed
                })
                .collect(),
            at_ms,
        },
        Input::Report {
            site,
            mut statuses,
            mut usage,
            at_ms,
        } => {
            for s in &mut statuses {
                s.job = ours(&s.job);
            }
            for u in &mut usage {
                u.job = ours(&u.job);
                u.pool = ours(&u.pool);
            }
            Input::Report {
                site: ours(&site),
                statuses,
                usage,
                at_ms,
            }
        }
        Input::Heartbeat {
            site,
            expires_at_ms,
        } => Input::Heartbeat {
            site: ours(&site),
            expires_at_ms,
        },
        Input::LeaseCheck { now_ms } => Input::LeaseCheck { now_ms },
        Input::Cancel { job, at_ms } => Input::Cancel {
            job: ours(&job),
            at_ms,
        },
        Input::Deadline {
            job,
            deadline_ms,
            now_ms,
        } => Input::Deadline {
            job: ours(&job),
            deadline_ms,
            now_ms,
        },
    }
}

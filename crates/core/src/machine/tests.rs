//! Every transition and every rejection of the machine, through one
//! data-driven helper: `check(state, input, now, expect)`. The state is a
//! few lines of text, the expectation the rendered [`Changes`] (and report
//! outcomes), so a table row reads like the rule it pins.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::report::{Status, Usage};
use super::*;
use crate::lifecycle::{EventKind, ReportedState};

/// Builds a view from lines:
/// `job ID KIND retries=N tasks=N [rows=N] [cancel] [state=S]`,
/// `task JOB INDEX STATE attempt=N [site=S pool=P [placed=MS|none]]`,
/// `site ID healthy|down [lease=MS]`,
/// `usage SITE JOB TASK ATTEMPT SEQ [wall=MS]` (a stored record).
/// A job's rows default to its highest task line + 1; its counts come
/// from its task lines and tail, its state from `job_state` unless given.
/// A task with a site was placed at 0 unless given; a job holds one unit
/// per task unless `units=N`.
fn view(text: &str) -> View {
    let mut view = View::default();
    let mut given: BTreeMap<String, (Option<u64>, Option<JobState>)> = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let opt = |key: &str| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(&format!("{key}=")))
                .map(str::to_owned)
        };
        let num = |key: &str| opt(key).map(|v| v.parse::<u64>().expect("a number"));
        match words[0] {
            "job" => {
                let job = Job {
                    kind: JobKind::parse(words[2]).expect("a kind"),
                    retries: num("retries").expect("retries") as u32,
                    tasks: num("tasks").expect("tasks"),
                    materialized: 0,
                    units: num("units").unwrap_or(1),
                    cancel_requested: words.contains(&"cancel"),
                    state: JobState::Pending,
                    counts: Counts::default(),
                };
                let state = opt("state").map(|s| JobState::parse(&s).expect("a job state"));
                given.insert(words[1].to_owned(), (num("rows"), state));
                view.jobs.insert(words[1].to_owned(), job);
            }
            "task" => {
                let task = TaskNow {
                    state: TaskState::parse(words[3]).expect("a task state"),
                    attempt: num("attempt").unwrap_or(0) as u32,
                    site: opt("site"),
                    pool: opt("pool"),
                    placed_at_ms: match opt("placed").as_deref() {
                        Some("none") => None,
                        Some(ms) => Some(ms.parse().expect("ms")),
                        None => opt("site").map(|_| 0),
                    },
                };
                let index = words[2].parse().expect("an index");
                view.tasks.insert((words[1].to_owned(), index), task);
            }
            "site" => {
                let site = Site {
                    healthy: words[2] == "healthy",
                    lease_expires_at_ms: opt("lease").map(|v| v.parse().expect("ms")),
                };
                view.sites.insert(words[1].to_owned(), site);
            }
            "usage" => {
                let n = |i: usize| words[i].parse::<u64>().expect("a number");
                view.usage.insert((
                    words[1].to_owned(),
                    words[2].to_owned(),
                    n(3),
                    n(4) as u32,
                    n(5) as u32,
                ));
                let attempt = (words[1].to_owned(), words[2].to_owned(), n(3), n(4) as u32);
                *view.usage_wall_ms.entry(attempt).or_insert(0) += num("wall").unwrap_or(0);
            }
            other => panic!("unknown line {other:?}"),
        }
    }
    for (id, job) in &mut view.jobs {
        let (rows, state) = given[id];
        let rows_given = view
            .tasks
            .range((id.clone(), 0)..=(id.clone(), u64::MAX))
            .map(|((_, i), _)| i + 1)
            .max()
            .unwrap_or(0);
        job.materialized = rows.unwrap_or(rows_given);
        let mut counts = Counts::default();
        for (_, task) in view.tasks.range((id.clone(), 0)..=(id.clone(), u64::MAX)) {
            counts.add(task.state, 1);
        }
        counts.add(TaskState::Pending, job.tasks - job.materialized);
        job.counts = counts;
        job.state = state.unwrap_or_else(|| job_state(&counts, job.cancel_requested));
    }
    view
}

#[derive(Clone, Debug)]
enum Input {
    /// Statuses as `JOB TASK ATTEMPT STATE [exit=N]`, usage as
    /// `JOB TASK ATTEMPT SEQ POOL [units=N] [wall=MS]` (one unit, no wall
    /// time unless given).
    Report(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    ),
    Lapse,
    Heartbeat(&'static str, i64),
    Extend(i64),
    Cancel(&'static str),
    Deadline(&'static str),
}

fn status(line: &str) -> Status {
    let w: Vec<&str> = line.split_whitespace().collect();
    Status {
        job: w[0].to_owned(),
        task: w[1].parse().expect("task"),
        attempt: w[2].parse().expect("attempt"),
        state: ReportedState::parse(w[3]).expect("a reported state"),
        exit_code: w
            .get(4)
            .and_then(|e| e.strip_prefix("exit="))
            .map(|e| e.parse().expect("code")),
        reason: None,
        output_tail: None,
    }
}

fn usage(line: &str) -> Usage {
    let w: Vec<&str> = line.split_whitespace().collect();
    Usage {
        job: w[0].to_owned(),
        task: w[1].parse().expect("task"),
        attempt: w[2].parse().expect("attempt"),
        seq: w[3].parse().expect("seq"),
        pool: w[4].to_owned(),
        units: num_of(&w, "units").unwrap_or(1),
        wall_ms: num_of(&w, "wall").unwrap_or(0),
    }
}

fn num_of(words: &[&str], key: &str) -> Option<u64> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(|v| v.parse().expect("a number"))
}

fn render(changes: &Changes, out: &mut String) {
    for t in &changes.tasks {
        out.push_str(&format!("task {}[{}] {}", t.job, t.index, t.state.as_str()));
        if let Some(code) = t.exit_code {
            out.push_str(&format!(" exit={code}"));
        }
        if let Some(reason) = &t.reason {
            out.push_str(&format!(" ({reason})"));
        }
        out.push('\n');
    }
    for t in &changes.tails {
        out.push_str(&format!(
            "tail {}[{}..{}] {}\n",
            t.job,
            t.low,
            t.high,
            t.state.as_str()
        ));
    }
    for j in &changes.jobs {
        out.push_str(&format!("job {}", j.job));
        if let Some(state) = j.state {
            out.push_str(&format!(" {}", state.as_str()));
        }
        if j.cancel_requested {
            out.push_str(" cancel");
        }
        if j.clear_why {
            out.push_str(" clear-why");
        }
        if let Some(n) = j.materialized {
            out.push_str(&format!(" rows={n}"));
        }
        out.push('\n');
    }
    for s in &changes.sites {
        out.push_str(&format!("site {}", s.site));
        match s.healthy {
            Some(true) => out.push_str(" healthy"),
            Some(false) => out.push_str(" down"),
            None => {}
        }
        if let Some(at) = s.lease_expires_at_ms {
            out.push_str(&format!(" lease={at}"));
        }
        if s.bump_version {
            out.push_str(" bump");
        }
        out.push('\n');
    }
    for e in &changes.events {
        let task = e.task.map_or(String::new(), |t| format!("[{t}]"));
        out.push_str(&format!(
            "event {}{task} {}: {}\n",
            e.job,
            e.kind.as_str(),
            e.detail
        ));
    }
}

fn outcome(o: &Outcome) -> String {
    match o {
        Outcome::Accepted => "accepted".into(),
        Outcome::Duplicate => "duplicate".into(),
        Outcome::Rejected(why) => format!("rejected: {why}"),
    }
}

/// Runs `input` on `state` at `now` and compares the rendered result.
fn check(state: &str, input: Input, now: i64, expect: &str) {
    let view = view(state);
    let mut out = String::new();
    match input {
        Input::Report(site, statuses, records) => {
            let statuses: Vec<Status> = statuses.iter().map(|s| status(s)).collect();
            let records: Vec<Usage> = records.iter().map(|u| usage(u)).collect();
            let decided = report::report(&view, site, &statuses, &records, now);
            for o in &decided.statuses {
                out.push_str(&format!("status {}\n", outcome(o)));
            }
            for o in &decided.usage {
                if let Outcome::Rejected(why) = o {
                    assert!(report::UsageRejection::of(why).is_some(), "{why}");
                }
                out.push_str(&format!("usage {}\n", outcome(o)));
            }
            render(&decided.changes, &mut out);
        }
        Input::Lapse => {
            let lapsed = lease::lapsed(&view.sites, now);
            out.push_str(&format!("lapsed {lapsed:?}\n"));
            render(&lease::lapse(&view, &lapsed), &mut out);
        }
        Input::Heartbeat(site, until) => {
            let sites = vec![lease::heartbeat(site, until)];
            render(
                &Changes {
                    sites,
                    ..Changes::default()
                },
                &mut out,
            );
        }
        Input::Extend(until) => {
            let sites = lease::extend(&view.sites, until);
            render(
                &Changes {
                    sites,
                    ..Changes::default()
                },
                &mut out,
            );
        }
        Input::Cancel(job) => match ending::cancel(&view, job, "t-1") {
            None => out.push_str("no such job\n"),
            Some(changes) => render(&changes, &mut out),
        },
        Input::Deadline(job) => render(&ending::deadline_missed(&view, job, now), &mut out),
    }
    let expect: Vec<&str> = expect
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        expect,
        "\n--- got ---\n{out}"
    );
}

const RUNNING: &str = "
    job a batch retries=1 tasks=2
    task a 0 running attempt=1 site=s1 pool=p
    task a 1 placed attempt=1 site=s1 pool=p
    site s1 healthy lease=100";

#[test]
fn a_placed_task_starts_and_succeeds() {
    check(
        RUNNING,
        Input::Report("s1", &["a 1 1 running"], &[]),
        5,
        "
        status accepted
        task a[1] running
        event a[1] running: attempt 1 running at site s1",
    );
    check(
        RUNNING,
        Input::Report(
            "s1",
            &["a 0 1 succeeded exit=0", "a 1 1 succeeded exit=0"],
            &[],
        ),
        5,
        "
        status accepted
        status accepted
        task a[0] succeeded exit=0
        task a[1] succeeded exit=0
        job a succeeded clear-why
        event a[0] succeeded: attempt 1 succeeded at site s1, exit code 0
        event a[1] succeeded: attempt 1 succeeded at site s1, exit code 0",
    );
}

#[test]
fn a_failed_attempt_retries_then_fails_for_good() {
    check(
        RUNNING,
        Input::Report("s1", &["a 0 1 failed exit=3"], &[]),
        5,
        "
        status accepted
        task a[0] pending exit=3
        job a placed clear-why
        event a[0] pending: attempt 1 failed at site s1, exit code 3; will retry",
    );
    let last = "
        job a batch retries=1 tasks=1
        task a 0 running attempt=2 site=s1 pool=p
        site s1 healthy lease=100";
    check(
        last,
        Input::Report("s1", &["a 0 2 failed"], &[]),
        5,
        "
        status accepted
        task a[0] failed
        job a failed clear-why
        event a[0] failed: attempt 2 failed at site s1",
    );
}

#[test]
fn a_service_replica_that_ends_starts_again_while_retries_are_left() {
    let service = "
        job v service retries=1 tasks=1
        task v 0 running attempt=1 site=s1 pool=p";
    check(service, Input::Report("s1", &["v 0 1 succeeded exit=0"], &[]), 5, "
        status accepted
        task v[0] pending exit=0
        job v pending
        event v[0] pending: attempt 1 succeeded at site s1, exit code 0; a service replica: starts again");
    let pending = "
        job v service retries=1 tasks=1
        task v 0 pending attempt=1 site=s1 pool=p";
    check(
        pending,
        Input::Report("s1", &["v 0 1 succeeded"], &[]),
        5,
        "status duplicate",
    );
}

#[test]
fn resends_are_duplicates_and_the_rest_is_rejected_with_a_reason() {
    let done = "
        job a batch retries=0 tasks=3
        task a 0 succeeded attempt=1 site=s1 pool=p
        task a 1 failed attempt=1 site=s1 pool=p
        task a 2 running attempt=1 site=s1 pool=p";
    check(
        done,
        Input::Report(
            "s1",
            &[
                "a 0 1 succeeded",
                "a 0 1 running",
                "a 1 1 failed",
                "a 2 1 running",
                "a 0 1 failed",
                "a 1 1 succeeded",
            ],
            &[],
        ),
        5,
        "
        status duplicate
        status duplicate
        status duplicate
        status duplicate
        status rejected: task is succeeded: failed does not apply
        status rejected: task is failed: succeeded does not apply",
    );
    let stale = "attempt 1 is not a current attempt at this site (stale, or no such task)";
    let expect = format!("status rejected: {stale}\nstatus rejected: {stale}\nstatus rejected: {stale}\nstatus rejected: {}",
        stale.replace("attempt 1", "attempt 2"));
    check(
        RUNNING,
        Input::Report("s2", &["a 0 1 running"], &[]),
        5,
        &format!("status rejected: {stale}"),
    );
    check(
        "
        job a batch retries=1 tasks=3 rows=2
        task a 0 running attempt=1 site=s1 pool=p
        task a 1 running attempt=1 site=s2 pool=p",
        Input::Report(
            "s1",
            &[
                "a 1 1 failed",
                "a 2 1 running",
                "zz 0 1 running",
                "a 0 2 failed",
            ],
            &[],
        ),
        5,
        &expect,
    );
}

#[test]
fn a_later_status_in_one_report_sees_the_earlier_one() {
    check(
        RUNNING,
        Input::Report("s1", &["a 1 1 running", "a 1 1 succeeded"], &[]),
        5,
        "
        status accepted
        status accepted
        task a[1] succeeded
        event a[1] running: attempt 1 running at site s1
        event a[1] succeeded: attempt 1 succeeded at site s1",
    );
}

#[test]
fn usage_is_taken_once_for_the_current_attempt_and_its_pool() {
    let stored = format!("{RUNNING}\n usage s1 a 0 1 1");
    let stale = "attempt 2 is not a current attempt at this site (stale, or no such task)";
    check(
        &stored,
        Input::Report(
            "s1",
            &["a 0 1 failed"],
            &[
                "a 0 1 2 p",
                "a 0 1 2 p",
                "a 0 1 1 p",
                "a 0 1 3 q",
                "a 0 2 1 p",
            ],
        ),
        5,
        &format!(
            "
        status accepted
        usage accepted
        usage duplicate
        usage duplicate
        usage rejected: pool \"q\" is not the pool of this attempt
        usage rejected: {stale}
        task a[0] pending
        job a placed clear-why
        event a[0] pending: attempt 1 failed at site s1; will retry"
        ),
    );
}

#[test]
fn usage_must_match_its_task_units_and_window() {
    // Placed at 1000; the report comes at 11000: a window of 10 s, plus a
    // slack of 60 s and 1 per mille (10 ms): 70 010 ms in all.
    let state = "
        job a batch retries=1 tasks=3 units=4
        task a 0 running attempt=1 site=s1 pool=p placed=1000
        task a 1 running attempt=1 site=s1 pool=p placed=1000
        task a 2 running attempt=1 site=s1 pool=p placed=none
        usage s1 a 1 1 0 wall=70000
        site s1 healthy lease=100000";
    check(
        state,
        Input::Report(
            "s1",
            &[],
            &[
                "a 0 1 0 p units=4 wall=70010",
                "a 0 1 1 p units=3 wall=0",
                "a 0 1 2 p units=4 wall=1",
                "a 1 1 0 p units=4 wall=70000",
                "a 1 1 1 p units=4 wall=10",
                "a 1 1 2 p units=4 wall=11",
                "a 2 1 0 p units=4 wall=0",
            ],
        ),
        11_000,
        "
        usage accepted
        usage rejected: units 3 is not the job's 4 per task
        usage rejected: wall_ms 70011 of attempt 1 in all (70010 before this record's 1) is beyond its window: at most 70010 ms, 10000 ms from its placement at 1000 to this report at 11000 plus the slack
        usage duplicate
        usage accepted
        usage rejected: wall_ms 70021 of attempt 1 in all (70010 before this record's 11) is beyond its window: at most 70010 ms, 10000 ms from its placement at 1000 to this report at 11000 plus the slack
        usage rejected: wall_ms cannot be checked: the attempt has no placement time",
    );
    // A report before the placement (another replica's clock behind) has
    // the slack alone.
    check(
        state,
        Input::Report(
            "s1",
            &[],
            &["a 0 1 0 p units=4 wall=60000", "a 0 1 1 p units=4 wall=1"],
        ),
        500,
        "
        usage accepted
        usage rejected: wall_ms 60001 of attempt 1 in all (60000 before this record's 1) is beyond its window: at most 60000 ms, 0 ms from its placement at 1000 to this report at 500 plus the slack",
    );
}

const GANG: &str = "
    job g gang retries=1 tasks=3
    task g 0 running attempt=1 site=s1 pool=p
    task g 1 running attempt=1 site=s2 pool=p
    task g 2 placed attempt=1 site=s2 pool=p
    site s1 healthy lease=100
    site s2 healthy lease=200";

#[test]
fn a_gang_member_that_fails_takes_its_gang_with_it() {
    check(GANG, Input::Report("s1", &["g 0 1 failed"], &[]), 5, "
        status accepted
        task g[0] pending
        task g[1] pending (another member of its gang must run again; the gang is placed again whole)
        task g[2] pending (another member of its gang must run again; the gang is placed again whole)
        job g pending
        site s2 bump
        event g[0] pending: attempt 1 failed at site s1; will retry
        event g[1] gang: attempt 1 ended with its gang; task is pending
        event g[2] gang: attempt 1 ended with its gang; task is pending");
    let last = GANG.replace("attempt=1", "attempt=2");
    check(
        &last,
        Input::Report("s2", &["g 2 2 failed"], &[]),
        5,
        "
        status accepted
        task g[0] cancelled (cancelled: another member of its gang ended for good)
        task g[1] cancelled (cancelled: another member of its gang ended for good)
        task g[2] failed
        job g failed clear-why
        site s1 bump
        site s2 bump
        event g[2] failed: attempt 2 failed at site s2
        event g[0] gang: attempt 2 ended with its gang; task is cancelled
        event g[1] gang: attempt 2 ended with its gang; task is cancelled",
    );
}

#[test]
fn a_lapsed_lease_loses_its_sites_attempts() {
    check(RUNNING, Input::Lapse, 100, "lapsed []");
    check(
        RUNNING,
        Input::Lapse,
        101,
        "
        lapsed [\"s1\"]
        task a[0] pending (site s1 lost its lease during attempt 1)
        task a[1] pending (site s1 lost its lease during attempt 1)
        job a pending
        site s1 down bump
        event a[0] lost: site s1 lost its lease; task is pending
        event a[1] lost: site s1 lost its lease; task is pending",
    );
    let last = RUNNING.replace("attempt=1", "attempt=2") + "\n site s0 down lease=1";
    check(
        &last,
        Input::Lapse,
        101,
        "
        lapsed [\"s1\"]
        task a[0] lost (site s1 lost its lease during attempt 2)
        task a[1] lost (site s1 lost its lease during attempt 2)
        job a failed clear-why
        site s1 down bump
        event a[0] lost: site s1 lost its lease; task is lost
        event a[1] lost: site s1 lost its lease; task is lost",
    );
    check(GANG, Input::Lapse, 150, "
        lapsed [\"s1\"]
        task g[0] pending (site s1 lost its lease during attempt 1)
        task g[1] pending (another member of its gang must run again; the gang is placed again whole)
        task g[2] pending (another member of its gang must run again; the gang is placed again whole)
        job g pending
        site s1 down bump
        site s2 bump
        event g[0] lost: site s1 lost its lease; task is pending
        event g[1] gang: attempt 1 ended with its gang; task is pending
        event g[2] gang: attempt 1 ended with its gang; task is pending");
}

#[test]
fn a_short_task_may_end_before_its_start_report() {
    let placed = "
        job a batch retries=0 tasks=2
        task a 0 placed attempt=1 site=s1 pool=p
        task a 1 placed attempt=1 site=s1 pool=p";
    check(
        placed,
        Input::Report(
            "s1",
            &["a 0 1 succeeded exit=0", "a 1 1 failed exit=9"],
            &[],
        ),
        5,
        "
        status accepted
        status accepted
        task a[0] succeeded exit=0
        task a[1] failed exit=9
        job a failed clear-why
        event a[0] succeeded: attempt 1 succeeded at site s1, exit code 0
        event a[1] failed: attempt 1 failed at site s1, exit code 9",
    );
}

#[test]
fn a_heartbeat_renews_the_lease_and_heals_the_site() {
    check(
        "site s1 down lease=10",
        Input::Heartbeat("s1", 500),
        0,
        "site s1 healthy lease=500",
    );
}

#[test]
fn a_new_leader_extends_healthy_leases_only() {
    let sites = "
        site a healthy lease=100
        site b healthy lease=500
        site c down lease=10
        site d down";
    check(sites, Input::Extend(300), 0, "site a lease=300");
}

#[test]
fn a_cancel_ends_every_unfinished_task_once() {
    let state = "
        job a batch retries=1 tasks=5
        task a 0 succeeded attempt=1 site=s1 pool=p
        task a 1 running attempt=1 site=s1 pool=p
        task a 2 placed attempt=1 site=s2 pool=p
        task a 3 pending attempt=1";
    check(
        state,
        Input::Cancel("a"),
        5,
        "
        task a[1] cancelled
        task a[2] cancelled
        task a[3] cancelled
        tail a[4..5] cancelled
        job a cancelled cancel clear-why rows=5
        site s1 bump
        site s2 bump
        event a cancelled: 4 unfinished tasks cancelled by t-1",
    );
    let cancelled = "
        job a batch retries=1 tasks=1 cancel
        task a 0 cancelled";
    check(cancelled, Input::Cancel("a"), 5, "");
    check(
        "job a batch retries=0 tasks=1\n task a 0 succeeded attempt=1",
        Input::Cancel("a"),
        5,
        "",
    );
    check(state, Input::Cancel("zz"), 5, "no such job");
}

#[test]
fn a_missed_deadline_fails_what_waits() {
    let state = "
        job a batch retries=3 tasks=4 rows=3
        task a 0 running attempt=1 site=s1 pool=p
        task a 1 pending attempt=1
        task a 2 succeeded attempt=1";
    check(state, Input::Deadline("a"), 0, "
        task a[1] failed (deadline)
        tail a[3..4] failed
        job a rows=4
        event a deadline: 2 waiting tasks failed: deadline 1970-01-01T00:00:00Z can no longer be met");
    let gang = "
        job g gang retries=0 tasks=2 rows=0";
    check(gang, Input::Deadline("g"), 0, "
        tail g[0..2] failed
        job g failed clear-why rows=2
        event g deadline: 2 waiting tasks failed: deadline 1970-01-01T00:00:00Z can no longer be met");
    check(
        "job c batch retries=0 tasks=2 cancel",
        Input::Deadline("c"),
        0,
        "",
    );
    check(RUNNING, Input::Deadline("a"), 0, "");
    check(RUNNING, Input::Deadline("zz"), 0, "");
}

// ---------------------------------------------------------------------------
// Property: random inputs on the whole-world model.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Whatever happens: no task runs more than retries + 1 attempts, no
    /// gang is half placed, no terminal task reopens, the counts add up,
    /// and the same inputs give the same world.
    #[test]
    fn random_inputs_keep_the_invariants(seed in any::<u64>(), len in 0usize..120) {
        let mut script = script::Script::new(seed);
        let mut model = script.world();
        let mut terminal: BTreeMap<(String, u64), TaskState> = BTreeMap::new();
        let mut inputs = Vec::new();
        for _ in 0..len {
            let Some(input) = script.next(&model) else { continue };
            model.input(&input);
            inputs.push(input);
            for ((job, index), task) in &model.view.tasks {
                let found = &model.view.jobs[job];
                prop_assert!(task.attempt <= found.retries + 1, "{job}[{index}] attempt {}", task.attempt);
                if let Some(before) = terminal.get(&(job.clone(), *index)) {
                    prop_assert_eq!(*before, task.state, "{}[{}] reopened", job, index);
                }
                if task.state.is_terminal() {
                    terminal.insert((job.clone(), *index), task.state);
                }
            }
            for (id, job) in &model.view.jobs {
                prop_assert_eq!(job.counts.total(), job.tasks);
                prop_assert_eq!(job.state, job_state(&job.counts, job.cancel_requested), "{}", id);
                if job.kind == JobKind::Gang {
                    let waiting = job.counts.get(TaskState::Pending);
                    let holding = job.counts.get(TaskState::Placed) + job.counts.get(TaskState::Running);
                    prop_assert!(waiting == 0 || holding == 0, "gang {} half placed", id);
                }
            }
        }
        // The same inputs give the same world, and the same seed the same inputs.
        let mut again = script::Script::new(seed).world();
        for input in &inputs {
            again.input(input);
        }
        prop_assert_eq!(&again, &model);
        let mut replay = script::Script::new(seed);
        let mut world = replay.world();
        for _ in 0..len {
            if let Some(input) = replay.next(&world) {
                world.input(&input);
            }
        }
        prop_assert_eq!(world, model);
    }
}

#[test]
fn a_long_script_reaches_every_kind_of_event() {
    let mut script = script::Script::new(7);
    let mut model = script.world();
    for _ in 0..2_000 {
        if let Some(input) = script.next(&model) {
            model.input(&input);
        }
    }
    let kinds: std::collections::BTreeSet<_> = model.events.iter().map(|(_, e)| e.kind).collect();
    for kind in [
        EventKind::Placed,
        EventKind::Running,
        EventKind::Succeeded,
        EventKind::Pending,
        EventKind::Failed,
        EventKind::Cancelled,
        EventKind::Lost,
        EventKind::Gang,
        EventKind::Deadline,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} never happened: {kinds:?}");
    }
}

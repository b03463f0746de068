//! Site leases: a heartbeat renews one; a lease that lapses loses the
//! site's placed and running attempts.

use std::collections::BTreeMap;

use super::{Changes, Site, SiteChange, View, Work};
use crate::lifecycle::{EventKind, TaskEvent, TaskState};
use crate::spec::JobKind;

/// A heartbeat: the site is healthy, its lease runs until `expires_at_ms`.
pub fn heartbeat(site: &str, expires_at_ms: i64) -> SiteChange {
    SiteChange {
        site: site.to_owned(),
        healthy: Some(true),
        lease_expires_at_ms: Some(expires_at_ms),
        bump_version: false,
    }
}

/// The healthy sites whose lease ended before `now_ms`, in id order. A
/// site that never heartbeat has no lease and is not healthy.
pub fn lapsed(sites: &BTreeMap<String, Site>, now_ms: i64) -> Vec<String> {
    sites
        .iter()
        .filter(|(_, site)| site.healthy && site.lease_expires_at_ms.is_some_and(|at| at < now_ms))
        .map(|(id, _)| id.clone())
        .collect()
}

/// A new leader pushes every healthy lease to at least `until_ms`: it must
/// not blame sites for the time no leader was watching.
pub fn extend(sites: &BTreeMap<String, Site>, until_ms: i64) -> Vec<SiteChange> {
    sites
        .iter()
        .filter(|(_, site)| {
            site.healthy && site.lease_expires_at_ms.is_some_and(|at| at < until_ms)
        })
        .map(|(id, _)| SiteChange {
            site: id.clone(),
            lease_expires_at_ms: Some(until_ms),
            ..SiteChange::default()
        })
        .collect()
}

/// The sites in `lapsed` (from [`lapsed`]) become unhealthy; their placed
/// and running tasks are lost: back to pending while retries are left,
/// else lost for good. A gang with a lost member has its other members
/// requeued, or cancelled if one was lost for good.
///
/// What the view must hold: the lapsed sites; every placed and running
/// task on them with its job and counts; for each gang among those jobs,
/// every placed and running task.
pub fn lapse(view: &View, lapsed: &[String]) -> Changes {
    assert!(
        lapsed.windows(2).all(|w| w[0] < w[1]),
        "sites sorted, distinct"
    );
    let mut work = Work::new(view);
    let mut gangs: BTreeMap<String, bool> = BTreeMap::new();
    for site in lapsed {
        let found = view.sites.get(site).expect("a lapsed site is in the view");
        assert!(found.healthy, "site {site}: only a healthy site lapses");
        let change = work.site(site);
        change.healthy = Some(false);
        change.bump_version = true;
        let on_site: Vec<(String, u64, u32)> = view
            .tasks
            .iter()
            .filter(|(_, task)| task.site.as_deref() == Some(site.as_str()))
            .map(|((job, index), task)| (job.clone(), *index, task.attempt))
            .collect();
        for (job, index, attempt) in on_site {
            let now = work.task(&job, index).expect("in the view");
            if !now.state.holds_capacity() {
                continue;
            }
            let reason = format!("site {site} lost its lease during attempt {attempt}");
            let next = work
                .apply(&job, index, TaskEvent::LeaseLapsed, Some(reason))
                .expect("a lease lapse applies to placed and running tasks");
            let detail = format!(
                "site {site} lost its lease; task is {}",
                next.state.as_str()
            );
            work.event(&job, Some(index), EventKind::Lost, detail);
            if work.job(&job).expect("in the view").kind == JobKind::Gang {
                *gangs.entry(job).or_insert(false) |= next.state != TaskState::Pending;
            }
        }
    }
    for (job, ended_for_good) in gangs {
        work.gang_follow(&job, ended_for_good);
    }
    work.finish()
}

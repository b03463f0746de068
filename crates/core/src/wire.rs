//! Conversions between the wire enums (`suanwang-api`) and the domain's
//! (`lifecycle`, `spec`). Every match is exhaustive both ways, so a state
//! added on one side and not the other does not build; the test below
//! holds the two spellings (`as_str`) to each other.

use suanwang_api as api;
use suanwang_place::Kind;

use crate::lifecycle::{EventKind, JobState, ReportedState, TaskState};
use crate::spec::JobKind;

impl From<TaskState> for api::TaskState {
    fn from(state: TaskState) -> api::TaskState {
        match state {
            TaskState::Pending => api::TaskState::Pending,
            TaskState::Placed => api::TaskState::Placed,
            TaskState::Running => api::TaskState::Running,
            TaskState::Succeeded => api::TaskState::Succeeded,
            TaskState::Failed => api::TaskState::Failed,
            TaskState::Cancelled => api::TaskState::Cancelled,
            TaskState::Lost => api::TaskState::Lost,
        }
    }
}

impl From<api::TaskState> for TaskState {
    fn from(state: api::TaskState) -> TaskState {
        match state {
            api::TaskState::Pending => TaskState::Pending,
            api::TaskState::Placed => TaskState::Placed,
            api::TaskState::Running => TaskState::Running,
            api::TaskState::Succeeded => TaskState::Succeeded,
            api::TaskState::Failed => TaskState::Failed,
            api::TaskState::Cancelled => TaskState::Cancelled,
            api::TaskState::Lost => TaskState::Lost,
        }
    }
}

impl From<JobState> for api::JobState {
    fn from(state: JobState) -> api::JobState {
        match state {
            JobState::Pending => api::JobState::Pending,
            JobState::Placed => api::JobState::Placed,
            JobState::Running => api::JobState::Running,
            JobState::Succeeded => api::JobState::Succeeded,
            JobState::Failed => api::JobState::Failed,
            JobState::Cancelled => api::JobState::Cancelled,
        }
    }
}

impl From<api::JobState> for JobState {
    fn from(state: api::JobState) -> JobState {
        match state {
            api::JobState::Pending => JobState::Pending,
            api::JobState::Placed => JobState::Placed,
            api::JobState::Running => JobState::Running,
            api::JobState::Succeeded => JobState::Succeeded,
            api::JobState::Failed => JobState::Failed,
            api::JobState::Cancelled => JobState::Cancelled,
        }
    }
}

impl From<ReportedState> for api::ReportState {
    fn from(state: ReportedState) -> api::ReportState {
        match state {
            ReportedState::Running => api::ReportState::Running,
            ReportedState::Succeeded => api::ReportState::Succeeded,
            ReportedState::Failed => api::ReportState::Failed,
        }
    }
}

impl From<api::ReportState> for ReportedState {
    fn from(state: api::ReportState) -> ReportedState {
        match state {
            api::ReportState::Running => ReportedState::Running,
            api::ReportState::Succeeded => ReportedState::Succeeded,
            api::ReportState::Failed => ReportedState::Failed,
        }
    }
}

impl From<EventKind> for api::EventKind {
    fn from(kind: EventKind) -> api::EventKind {
        match kind {
            EventKind::Submitted => api::EventKind::Submitted,
            EventKind::Placed => api::EventKind::Placed,
            EventKind::Pending => api::EventKind::Pending,
            EventKind::Running => api::EventKind::Running,
            EventKind::Succeeded => api::EventKind::Succeeded,
            EventKind::Failed => api::EventKind::Failed,
            EventKind::Cancelled => api::EventKind::Cancelled,
            EventKind::Lost => api::EventKind::Lost,
            EventKind::Gang => api::EventKind::Gang,
            EventKind::Deadline => api::EventKind::Deadline,
        }
    }
}

impl From<api::EventKind> for EventKind {
    fn from(kind: api::EventKind) -> EventKind {
        match kind {
            api::EventKind::Submitted => EventKind::Submitted,
            api::EventKind::Placed => EventKind::Placed,
            api::EventKind::Pending => EventKind::Pending,
            api::EventKind::Running => EventKind::Running,
            api::EventKind::Succeeded => EventKind::Succeeded,
            api::EventKind::Failed => EventKind::Failed,
            api::EventKind::Cancelled => EventKind::Cancelled,
            api::EventKind::Lost => EventKind::Lost,
            api::EventKind::Gang => EventKind::Gang,
            api::EventKind::Deadline => EventKind::Deadline,
        }
    }
}

impl From<JobKind> for api::JobKind {
    fn from(kind: JobKind) -> api::JobKind {
        match kind {
            JobKind::Batch => api::JobKind::Batch,
            JobKind::Gang => api::JobKind::Gang,
            JobKind::Service => api::JobKind::Service,
        }
    }
}

/// The wire kind of an engine kind; `spec::resource_kind` is the other way.
pub fn resource_kind(kind: Kind) -> api::ResourceKind {
    match kind {
        Kind::Cpu => api::ResourceKind::Cpu,
        Kind::Gpu => api::ResourceKind::Gpu,
        Kind::Hpc => api::ResourceKind::Hpc,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every domain value goes to the wire and back unchanged, spelled the
    /// same on both sides, and the wire side has no value the domain lacks.
    fn round_trip<D, W>(
        domain: &[D],
        wire: &[W],
        d_str: fn(D) -> &'static str,
        w_str: fn(W) -> &'static str,
    ) where
        D: Copy + std::fmt::Debug + PartialEq + From<W>,
        W: Copy + std::fmt::Debug + PartialEq + From<D>,
    {
        assert_eq!(domain.len(), wire.len());
        for &d in domain {
            let w = W::from(d);
            assert_eq!(w_str(w), d_str(d), "{d:?}");
            assert_eq!(D::from(w), d);
        }
        for &w in wire {
            assert_eq!(W::from(D::from(w)), w);
        }
    }

    #[test]
    fn every_variant_round_trips_with_the_same_name() {
        round_trip(
            &TaskState::ALL,
            &api::TaskState::ALL,
            TaskState::as_str,
            api::TaskState::as_str,
        );
        round_trip(
            &JobState::ALL,
            &api::JobState::ALL,
            JobState::as_str,
            api::JobState::as_str,
        );
        round_trip(
            &ReportedState::ALL,
            &api::ReportState::ALL,
            ReportedState::as_str,
            api::ReportState::as_str,
        );
        round_trip(
            &EventKind::ALL,
            &api::EventKind::ALL,
            EventKind::as_str,
            api::EventKind::as_str,
        );
        round_trip(
            &JobKind::ALL,
            &api::JobKind::ALL,
            JobKind::as_str,
            api::JobKind::as_str,
        );
    }

    /// A pool's kind is read by serde, from JSON bodies and TOML site files
    /// alike; a bad one fails there, before validation.
    #[test]
    fn pool_kinds_parse_where_site_files_give_them() {
        #[derive(serde::Deserialize)]
        struct Site {
            pools: Vec<api::PoolSpec>,
        }
        let pool = |kind: &str| {
            format!(
                "[[pools]]\nname = \"p\"\nkind = \"{kind}\"\nfamily = \"x86\"\n\
                 capacity = 4\nprice_yuan_per_unit_hour = 1.0\n"
            )
        };
        for kind in api::ResourceKind::ALL {
            let site: Site = toml::from_str(&pool(kind.as_str())).unwrap();
            assert_eq!(site.pools[0].kind, kind);
            let defs = crate::spec::validate_pools(&site.pools).unwrap();
            assert_eq!(defs[0].kind, crate::spec::resource_kind(kind));
        }
        let error = toml::from_str::<Site>(&pool("tpu")).err().unwrap();
        assert!(
            error.to_string().contains("unknown variant `tpu`"),
            "{error}"
        );
    }

    #[test]
    fn resource_kinds_round_trip() {
        assert_eq!(Kind::ALL.len(), api::ResourceKind::ALL.len());
        for kind in Kind::ALL {
            let wire = resource_kind(kind);
            assert_eq!(wire.as_str(), kind.as_str());
            assert_eq!(crate::spec::resource_kind(wire), kind);
        }
    }

    #[test]
    fn terminal_states_agree() {
        for state in TaskState::ALL {
            assert_eq!(
                api::TaskState::from(state).is_terminal(),
                state.is_terminal()
            );
        }
        for state in JobState::ALL {
            assert_eq!(
                api::JobState::from(state).is_terminal(),
                state.is_terminal()
            );
        }
    }
}

//! The store's traits, one per aggregate, and their one implementation:
//! a blanket impl for every [`Backend`] that calls the shared SQL
//! (`crate::sql`). [`Store`](crate::Store) is all four together.
//!
//! Callers hold `Arc<dyn Store>`; to call these methods on it, bring the
//! traits into scope (`use suanwang_store::prelude::*;`).

use async_trait::async_trait;
use suanwang_core::lifecycle::JobState;

use crate::backend::Backend;
use crate::sql::{idempotency, jobs, lifecycle, market, prices, principals, rounds, sites, usage};
use crate::{
    AgentStatus, AssignmentRow, Audit, BillCursor, BillFilter, BillLineRow, BillTotals,
    EarningsRow, EventRow, Idem, IdemOutcome, ItemOutcome, JobRow, MarketFilter, MarketRow,
    MissedDeadline, NewJob, NewToken, PoolRow, PoolSpecRow, PriceRow, PrincipalRow, Result, Role,
    RoundInput, RoundWrite, SiteRow, StatusIn, TaskRow, TokenRow, UsageIn, UsageKey, UsageRow,
};

/// Principals and their tokens.
#[async_trait]
pub trait PrincipalStore {
    async fn principal_count(&self, role: Role) -> Result<u64>;
    /// Creates a principal with its first token. Conflict if the name is taken.
    async fn create_principal(
        &self,
        principal: &PrincipalRow,
        token: &NewToken,
        audit: &Audit,
    ) -> Result<()>;
    /// The live (unrevoked) token with this hash, and its principal.
    async fn principal_by_token(&self, hash: &str) -> Result<Option<(PrincipalRow, String)>>;
    async fn principals(&self, role: Role) -> Result<Vec<PrincipalRow>>;
    async fn create_token(&self, token: &NewToken, audit: &Audit) -> Result<()>;
    async fn tokens(&self, principal: &str) -> Result<Vec<TokenRow>>;
    /// False if the principal has no such live token.
    async fn revoke_token(&self, principal: &str, token: &str, audit: &Audit) -> Result<bool>;
}

/// The topology, sites and their pools, leases, assignments and reports.
#[async_trait]
pub trait SiteStore {
    async fn topology(&self) -> Result<Option<String>>;
    async fn put_topology(&self, spec: &str, audit: &Audit) -> Result<()>;
    async fn create_site(&self, site: &SiteRow, token: &NewToken, audit: &Audit) -> Result<()>;
    async fn sites(&self, provider: Option<&str>) -> Result<Vec<SiteRow>>;
    async fn site(&self, id: &str) -> Result<Option<SiteRow>>;
    /// Replaces the site's pools; pools left out are deactivated (their
    /// running tasks go on), never deleted, so history keeps its names.
    async fn put_pools(&self, site: &str, pools: &[PoolRow], audit: &Audit) -> Result<()>;
    async fn pools(&self, site: &str) -> Result<Vec<PoolRow>>;
    /// Every pool of the site, active or not. What a usage report is rated
    /// with.
    async fn pool_specs(&self, site: &str) -> Result<Vec<PoolSpecRow>>;
    /// A page of the market: active pools (of `filter`) after the pool id
    /// `after`, in id order, with their sites, newest prices and use.
    async fn market(
        &self,
        filter: &MarketFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MarketRow>>;
    /// A pool's price history, newest first: `limit` rows before
    /// `before_ms` (from the newest when `None`).
    async fn price_history(
        &self,
        pool: &str,
        before_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PriceRow>>;
    /// Extends `site`'s lease to `expires_at_ms` and records what its agent
    /// said.
    async fn heartbeat(&self, site: &str, expires_at_ms: i64, agent: &AgentStatus) -> Result<()>;
    /// Pushes every healthy lease to at least `expires_at_ms` (a new leader
    /// must not blame sites for the time no leader was watching).
    async fn extend_leases(&self, expires_at_ms: i64) -> Result<()>;
    /// Marks sites whose lease lapsed before `now_ms` unhealthy; their placed
    /// and running tasks are lost: back to pending while retries are left.
    /// Returns the number of tasks affected.
    async fn expire_leases(&self, now_ms: i64) -> Result<u64>;
    /// The tasks the site should be running, and the site's version.
    async fn assignments(&self, site: &str) -> Result<(i64, Vec<AssignmentRow>)>;
    async fn site_version(&self, site: &str) -> Result<i64>;
    /// A site's status reports and usage records, one outcome per item, in
    /// one transaction.
    async fn report(
        &self,
        site: &str,
        statuses: &[StatusIn],
        usage: &[UsageIn],
        now_ms: i64,
    ) -> Result<(Vec<ItemOutcome>, Vec<ItemOutcome>)>;
}

/// Jobs: submissions, idempotency, what a job shows, cancelling, usage.
#[async_trait]
pub trait JobStore {
    /// Inserts jobs with their tasks, idempotency and audit records, all in
    /// one transaction (group commit). One outcome per job, in order.
    async fn submit_batch(&self, jobs: &[NewJob]) -> Result<Vec<IdemOutcome>>;
    async fn idempotent(&self, principal: &str, key: &str) -> Result<Option<Idem>>;
    /// Deletes up to `limit` idempotency records created before
    /// `created_before_ms`, oldest first; returns how many. A key used again
    /// after its record is gone is a new request.
    async fn prune_idempotency(&self, created_before_ms: i64, limit: u32) -> Result<u64>;
    async fn job(&self, id: &str) -> Result<Option<JobRow>>;
    async fn jobs(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRow>>;
    /// A page of a job's tasks in index order: at most `limit`, with index
    /// above `after`; never-placed tasks included (they have no row).
    async fn tasks(&self, job: &str, after: Option<u64>, limit: u32) -> Result<Vec<TaskRow>>;
    async fn events(&self, job: &str, after_seq: i64, limit: u32) -> Result<Vec<EventRow>>;
    /// Cancels every unfinished task. Records `idem` in the same transaction.
    async fn cancel(&self, job: &str, idem: Option<&Idem>, audit: &Audit) -> Result<IdemOutcome>;
    /// A page of a job's usage records in key order, after `after`.
    async fn usage(&self, job: &str, after: Option<&UsageKey>, limit: u32)
        -> Result<Vec<UsageRow>>;
    /// Jobs per state, in `JobState::ALL` order; states with none left out.
    async fn job_states(&self) -> Result<Vec<(JobState, u64)>>;
}

/// Scheduling: leadership and rounds.
#[async_trait]
pub trait RoundStore {
    /// Takes or confirms the scheduling leadership; false if another process
    /// holds it.
    async fn try_lead(&self) -> Result<bool>;
    async fn round_input(&self) -> Result<RoundInput>;
    /// Fails every waiting task of each job in `missed` (pending rows and
    /// the never-placed tail, which get their rows) with the reason
    /// `deadline`, by `TaskEvent::DeadlineMissed`, in one transaction: jobs
    /// locked in id order, then tasks, then sites. The job then follows its
    /// rules: a gang's placed and running members are cancelled. One event
    /// `deadline` per job. Jobs cancelled or finished meanwhile are left as
    /// they are. Returns the number of tasks failed.
    async fn fail_missed_deadlines(&self, missed: &[MissedDeadline], now_ms: i64) -> Result<u64>;
    /// Writes a round's placements and explanations in one transaction.
    /// PostgreSQL: only on the leader's connection ([`StoreError::NotLeader`]
    /// otherwise).
    ///
    /// [`StoreError::NotLeader`]: crate::StoreError::NotLeader
    async fn apply_round(&self, round: &RoundWrite) -> Result<()>;
}

#[async_trait]
impl<B: Backend> PrincipalStore for B {
    async fn principal_count(&self, role: Role) -> Result<u64> {
        principals::principal_count(self, role).await
    }

    async fn create_principal(
        &self,
        principal: &PrincipalRow,
        token: &NewToken,
        audit: &Audit,
    ) -> Result<()> {
        principals::create_principal(self, principal, token, audit).await
    }

    async fn principal_by_token(&self, hash: &str) -> Result<Option<(PrincipalRow, String)>> {
        principals::principal_by_token(self, hash).await
    }

    async fn principals(&self, role: Role) -> Result<Vec<PrincipalRow>> {
        principals::principals(self, role).await
    }

    async fn create_token(&self, token: &NewToken, audit: &Audit) -> Result<()> {
        principals::create_token(self, token, audit).await
    }

    async fn tokens(&self, principal: &str) -> Result<Vec<TokenRow>> {
        principals::tokens(self, principal).await
    }

    async fn revoke_token(&self, principal: &str, token: &str, audit: &Audit) -> Result<bool> {
        principals::revoke_token(self, principal, token, audit).await
    }
}

#[async_trait]
impl<B: Backend> SiteStore for B {
    async fn topology(&self) -> Result<Option<String>> {
        sites::topology(self).await
    }

    async fn put_topology(&self, spec: &str, audit: &Audit) -> Result<()> {
        sites::put_topology(self, spec, audit).await
    }

    async fn create_site(&self, site: &SiteRow, token: &NewToken, audit: &Audit) -> Result<()> {
        sites::create_site(self, site, token, audit).await
    }

    async fn sites(&self, provider: Option<&str>) -> Result<Vec<SiteRow>> {
        sites::sites(self, provider).await
    }

    async fn site(&self, id: &str) -> Result<Option<SiteRow>> {
        sites::site(self, id).await
    }

    async fn put_pools(&self, site: &str, pools: &[PoolRow], audit: &Audit) -> Result<()> {
        sites::put_pools(self, site, pools, audit).await
    }

    async fn pools(&self, site: &str) -> Result<Vec<PoolRow>> {
        sites::pools(self, site).await
    }

    async fn pool_specs(&self, site: &str) -> Result<Vec<PoolSpecRow>> {
        sites::pool_specs(self, site).await
    }

    async fn market(
        &self,
        filter: &MarketFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MarketRow>> {
        market::market(self, filter, after, limit).await
    }

    async fn price_history(
        &self,
        pool: &str,
        before_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<PriceRow>> {
        prices::history(&mut self.reader(), pool, before_ms, limit).await
    }

    async fn heartbeat(&self, site: &str, expires_at_ms: i64, agent: &AgentStatus) -> Result<()> {
        lifecycle::heartbeat(self, site, expires_at_ms, agent).await
    }

    async fn extend_leases(&self, expires_at_ms: i64) -> Result<()> {
        lifecycle::extend_leases(self, expires_at_ms).await
    }

    async fn expire_leases(&self, now_ms: i64) -> Result<u64> {
        lifecycle::expire_leases(self, now_ms).await
    }

    async fn assignments(&self, site: &str) -> Result<(i64, Vec<AssignmentRow>)> {
        sites::assignments(self, site).await
    }

    async fn site_version(&self, site: &str) -> Result<i64> {
        sites::site_version(self, site).await
    }

    async fn report(
        &self,
        site: &str,
        statuses: &[StatusIn],
        usage: &[UsageIn],
        now_ms: i64,
    ) -> Result<(Vec<ItemOutcome>, Vec<ItemOutcome>)> {
        lifecycle::report(self, site, statuses, usage, now_ms).await
    }
}

#[async_trait]
impl<B: Backend> JobStore for B {
    async fn submit_batch(&self, jobs: &[NewJob]) -> Result<Vec<IdemOutcome>> {
        jobs::submit_batch(self, jobs).await
    }

    async fn idempotent(&self, principal: &str, key: &str) -> Result<Option<Idem>> {
        idempotency::idempotent(self, principal, key).await
    }

    async fn prune_idempotency(&self, created_before_ms: i64, limit: u32) -> Result<u64> {
        idempotency::prune_idempotency(self, created_before_ms, limit).await
    }

    async fn job(&self, id: &str) -> Result<Option<JobRow>> {
        jobs::job(self, id).await
    }

    async fn jobs(
        &self,
        tenant: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<JobRow>> {
        jobs::jobs(self, tenant, after, limit).await
    }

    async fn tasks(&self, job: &str, after: Option<u64>, limit: u32) -> Result<Vec<TaskRow>> {
        jobs::tasks(self, job, after, limit).await
    }

    async fn events(&self, job: &str, after_seq: i64, limit: u32) -> Result<Vec<EventRow>> {
        jobs::events(self, job, after_seq, limit).await
    }

    async fn cancel(&self, job: &str, idem: Option<&Idem>, audit: &Audit) -> Result<IdemOutcome> {
        lifecycle::cancel(self, job, idem, audit).await
    }

    async fn usage(
        &self,
        job: &str,
        after: Option<&UsageKey>,
        limit: u32,
    ) -> Result<Vec<UsageRow>> {
        usage::usage(self, job, after, limit).await
    }

    async fn job_states(&self) -> Result<Vec<(JobState, u64)>> {
        jobs::job_states(self).await
    }
}

#[async_trait]
impl<B: Backend> RoundStore for B {
    async fn try_lead(&self) -> Result<bool> {
        <B as Backend>::try_lead(self).await
    }

    async fn round_input(&self) -> Result<RoundInput> {
        rounds::round_input(self).await
    }

    async fn fail_missed_deadlines(&self, missed: &[MissedDeadline], now_ms: i64) -> Result<u64> {
        lifecycle::fail_missed_deadlines(self, missed, now_ms).await
    }

    async fn apply_round(&self, round: &RoundWrite) -> Result<()> {
        <B as Backend>::apply_round(self, round).await
    }
}

use crate::sql::ledger;
use crate::{LedgerCheck, LedgerTransferRow};
use suanwang_ledger::{
    Account, AccountId, AccountResult, CreateResult, FloorChange, FloorError, NewAccount, Transfer,
    TransferId,
};

/// The double-entry ledger (`suanwang_ledger`): accounts, transfers,
/// expiries, and the check of the stored balances against the history.
/// Each method is one transaction; the round's and the reports' writes call
/// the same SQL inside their own (`sql::ledger::*_in`). The ledger keeps its
/// own record (transfers are never changed; floor changes are kept), so
/// these methods take no `Audit`.
#[async_trait]
pub trait LedgerStore {
    /// Creates accounts: one result per account, in order (`Exists` for a
    /// resend).
    async fn create_accounts(
        &self,
        batch: &[NewAccount],
        now_ms: i64,
    ) -> Result<Vec<AccountResult>>;
    /// Applies a batch of transfers at `now_ms`: one result per transfer,
    /// in order; linked chains whole or not at all.
    async fn create_transfers(&self, batch: &[Transfer], now_ms: i64) -> Result<Vec<CreateResult>>;
    /// Changes an account's floor (credit granted or withdrawn), recorded.
    async fn set_floor(
        &self,
        account: &AccountId,
        floor_micro: Option<i64>,
        now_ms: i64,
    ) -> Result<Result<FloorChange, FloorError>>;
    async fn account(&self, id: &AccountId) -> Result<Option<Account>>;
    /// A page of the accounts whose id starts with `prefix`, in id order,
    /// after `after`; at most `limit` (and 1,000).
    async fn accounts(
        &self,
        prefix: &str,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<Account>>;
    /// A page of an account's transfers in history order, after `after_seq`
    /// (0: from the start); at most `limit` (and 1,000).
    async fn transfers(
        &self,
        account: &AccountId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LedgerTransferRow>>;
    /// A page of the open pendings due at or before `due_by_ms`, by
    /// (expiry, id), after `after`.
    async fn pendings_due(
        &self,
        due_by_ms: i64,
        after: Option<(i64, &TransferId)>,
        limit: u32,
    ) -> Result<Vec<LedgerTransferRow>>;
    /// Expires up to `limit` open pendings due at `now_ms`, soonest first;
    /// returns the expiries created.
    async fn expire_pending(&self, now_ms: i64, limit: u32) -> Result<Vec<TransferId>>;
    /// Recomputes every balance from the history and compares: `Corrupt`
    /// naming the first difference.
    async fn ledger_check(&self) -> Result<LedgerCheck>;
}

#[async_trait]
impl<B: Backend> LedgerStore for B {
    async fn create_accounts(
        &self,
        batch: &[NewAccount],
        now_ms: i64,
    ) -> Result<Vec<AccountResult>> {
        ledger::create_accounts(self, batch, now_ms).await
    }

    async fn create_transfers(&self, batch: &[Transfer], now_ms: i64) -> Result<Vec<CreateResult>> {
        ledger::create_transfers(self, batch, now_ms).await
    }

    async fn set_floor(
        &self,
        account: &AccountId,
        floor_micro: Option<i64>,
        now_ms: i64,
    ) -> Result<Result<FloorChange, FloorError>> {
        ledger::set_floor(self, account, floor_micro, now_ms).await
    }

    async fn account(&self, id: &AccountId) -> Result<Option<Account>> {
        ledger::account(self, id).await
    }

    async fn accounts(
        &self,
        prefix: &str,
        after: Option<&AccountId>,
        limit: u32,
    ) -> Result<Vec<Account>> {
        ledger::accounts(self, prefix, after, limit).await
    }

    async fn transfers(
        &self,
        account: &AccountId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LedgerTransferRow>> {
        ledger::transfers(self, account, after_seq, limit).await
    }

    async fn pendings_due(
        &self,
        due_by_ms: i64,
        after: Option<(i64, &TransferId)>,
        limit: u32,
    ) -> Result<Vec<LedgerTransferRow>> {
        ledger::pendings_due(self, due_by_ms, after, limit).await
    }

    async fn expire_pending(&self, now_ms: i64, limit: u32) -> Result<Vec<TransferId>> {
        ledger::expire_pending(self, now_ms, limit).await
    }

    async fn ledger_check(&self) -> Result<LedgerCheck> {
        ledger::check(self).await
    }
}

/// Bills: the lines usage was rated into (`core::bill::rate`, written by
/// the report that stores the record) and their sums.
#[async_trait]
pub trait BillStore {
    /// A page of the lines `filter` selects, in key order (job, task,
    /// attempt, seq, site), after `after`.
    async fn bill_lines(
        &self,
        filter: &BillFilter,
        after: Option<&BillCursor>,
        limit: u32,
    ) -> Result<Vec<BillLineRow>>;
    /// The sums over every line `filter` selects.
    async fn bill_totals(&self, filter: &BillFilter) -> Result<BillTotals>;
    /// What each pool of `provider`'s sites earned, from the lines rated
    /// in `rated_ms`: a page of pools in id order after `after`.
    async fn earnings(
        &self,
        provider: &str,
        rated_ms: Option<(i64, i64)>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EarningsRow>>;
}

#[async_trait]
impl<B: Backend> BillStore for B {
    async fn bill_lines(
        &self,
        filter: &BillFilter,
        after: Option<&BillCursor>,
        limit: u32,
    ) -> Result<Vec<BillLineRow>> {
        crate::sql::bills::lines(&mut self.reader(), filter, after, limit).await
    }

    async fn bill_totals(&self, filter: &BillFilter) -> Result<BillTotals> {
        crate::sql::bills::totals(&mut self.reader(), filter).await
    }

    async fn earnings(
        &self,
        provider: &str,
        rated_ms: Option<(i64, i64)>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<EarningsRow>> {
        crate::sql::bills::earnings(&mut self.reader(), provider, rated_ms, after, limit).await
    }
}

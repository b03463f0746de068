//! Running one statement, on either database.
//!
//! The store's SQL is written once, with `?` placeholders. A [`Conn`] runs
//! it: a transaction, or a pool that lends a connection per statement.
//! [`Dialect`] is what each database supplies: how it takes the text
//! (PostgreSQL rewrites `?` to `$n`), whether it locks rows (`FOR UPDATE
//! OF`), how it binds an [`Arg`] and decodes a [`Row`]. Rows are named
//! structs deriving `sqlx::FromRow`, so one generic function decodes them on
//! both databases.

use std::borrow::Cow;

use async_trait::async_trait;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Arguments, Database, Encode, Executor, IntoArguments, Pool, Type};

use crate::{Result, StoreError};

/// A value bound to one `?`. Both schemas keep integers as 64-bit and
/// booleans as 0/1 integers, so these few cases are all the store binds
/// through the shared SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Arg<'a> {
    I64(i64),
    OptI64(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Owned(String),
}

impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Arg::I64(value)
    }
}

impl From<u32> for Arg<'_> {
    fn from(value: u32) -> Self {
        Arg::I64(i64::from(value))
    }
}

/// Counts and indexes: bounded far below `i64::MAX` by validation.
impl From<u64> for Arg<'_> {
    fn from(value: u64) -> Self {
        Arg::I64(crate::sql::to_i64(value))
    }
}

impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Arg::I64(i64::from(value))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Arg::OptI64(value)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Arg::Text(value)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Arg::OptText(value)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(value: &'a Option<String>) -> Self {
        Arg::OptText(value.as_deref())
    }
}

impl From<String> for Arg<'_> {
    fn from(value: String) -> Self {
        Arg::Owned(value)
    }
}

/// A row struct both databases decode.
pub(crate) trait Row:
    for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}

/// Something that runs a statement of the shared SQL.
#[async_trait]
pub(crate) trait Conn: Send {
    /// Runs `sql`; the number of rows it changed.
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64>;

    async fn fetch_all<R: Row>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<R>>;

    async fn fetch_optional<R: Row>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<R>>;

    async fn fetch_one<R: Row>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<R> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// The clause that locks the rows of table `of` a read-then-write
    /// transaction decides on: `""` where the database needs none.
    fn for_update(&self, of: &str) -> String;
}

/// A transaction: a [`Conn`] that commits, or rolls back when dropped.
#[async_trait]
pub(crate) trait Tx: Conn {
    async fn commit(self) -> Result<()>;
}

/// What one database supplies to run the shared SQL.
pub(crate) trait Dialect: Database {
    /// The database's bound arguments.
    type Bound<'q>: IntoArguments<'q, Self> + Send;

    /// `sql` as this database takes it.
    fn statement(sql: &str) -> Cow<'_, str>;

    /// See [`Conn::for_update`].
    fn for_update(of: &str) -> String;

    fn arguments<'q>(args: &'q [Arg<'q>]) -> Result<Self::Bound<'q>>;

    fn rows_affected(done: &Self::QueryResult) -> u64;

    fn decode<R: Row>(row: &Self::Row) -> Result<R>;
}

/// [`Dialect::arguments`] for any database that encodes these types.
pub(crate) fn arguments<'q, DB: Database>(args: &'q [Arg<'q>]) -> Result<DB::Arguments<'q>>
where
    i64: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
{
    let mut out = DB::Arguments::default();
    for arg in args {
        match arg {
            Arg::I64(value) => out.add(*value),
            Arg::OptI64(value) => out.add(*value),
            Arg::Text(value) => out.add(*value),
            Arg::OptText(value) => out.add(*value),
            Arg::Owned(value) => out.add(value.as_str()),
        }
        .map_err(|error| StoreError::Database(sqlx::Error::Encode(error)))?;
    }
    Ok(out)
}

async fn execute<DB: Dialect>(conn: &mut DB::Connection, sql: &str, args: &[Arg<'_>]) -> Result<u64>
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    let sql = DB::statement(sql);
    let done = sqlx::query_with(&sql, DB::arguments(args)?)
        .execute(conn)
        .await?;
    Ok(DB::rows_affected(&done))
}

async fn fetch_all<DB: Dialect, R: Row>(
    conn: &mut DB::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Vec<R>>
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    let sql = DB::statement(sql);
    let rows = sqlx::query_with(&sql, DB::arguments(args)?)
        .fetch_all(conn)
        .await?;
    rows.iter().map(DB::decode).collect()
}

async fn fetch_optional<DB: Dialect, R: Row>(
    conn: &mut DB::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<Option<R>>
where
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    let sql = DB::statement(sql);
    let row = sqlx::query_with(&sql, DB::arguments(args)?)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(DB::decode).transpose()
}

#[async_trait]
impl<DB> Conn for sqlx::Transaction<'_, DB>
where
    DB: Dialect,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        execute::<DB>(&mut **self, sql, args).await
    }

    async fn fetch_all<R: Row>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<R>> {
        fetch_all::<DB, R>(&mut **self, sql, args).await
    }

    async fn fetch_optional<R: Row>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<R>> {
        fetch_optional::<DB, R>(&mut **self, sql, args).await
    }

    fn for_update(&self, of: &str) -> String {
        DB::for_update(of)
    }
}

#[async_trait]
impl<DB> Tx for sqlx::Transaction<'_, DB>
where
    DB: Dialect,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    async fn commit(self) -> Result<()> {
        sqlx::Transaction::commit(self).await?;
        Ok(())
    }
}

/// A pool as a [`Conn`]: each statement on a connection of its own, outside
/// any transaction (reads, and writes of one statement).
#[derive(Debug)]
pub(crate) struct Pooled<'p, DB: Database>(pub(crate) &'p Pool<DB>);

#[async_trait]
impl<DB> Conn for Pooled<'_, DB>
where
    DB: Dialect,
    for<'e> &'e mut DB::Connection: Executor<'e, Database = DB>,
{
    async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let mut conn = self.0.acquire().await?;
        execute::<DB>(&mut conn, sql, args).await
    }

    async fn fetch_all<R: Row>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<R>> {
        let mut conn = self.0.acquire().await?;
        fetch_all::<DB, R>(&mut conn, sql, args).await
    }

    async fn fetch_optional<R: Row>(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Option<R>> {
        let mut conn = self.0.acquire().await?;
        fetch_optional::<DB, R>(&mut conn, sql, args).await
    }

    fn for_update(&self, of: &str) -> String {
        DB::for_update(of)
    }
}

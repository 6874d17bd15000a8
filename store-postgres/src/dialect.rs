//! [`PostgresDialect`]: `READ COMMITTED` transactions, PostgreSQL's error codes, LISTEN/NOTIFY
//! wake-ups.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::sqlx;
use sea_orm::sqlx::postgres::PgPool;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IsolationLevel, RuntimeErr, Statement,
    TransactionTrait,
};
use taskrow::{ClaimRequest, Error, Lease, OnSuccess, Result, TaskState};
use taskrow_sql::claim::{Claim, Due};
use taskrow_sql::dialect::BeginError;
use taskrow_sql::entity::task;
use taskrow_sql::{Capabilities, Dialect, ErrorKind, WriteTxn};
use tokio::sync::OnceCell;

use taskrow_sql::wakeups::Wakeups;

/// PostgreSQL's side of the store.
///
/// [`PostgresDialect::for_pool`] is the dialect of a store on that pool, with wake-ups (what
/// `connect` and `from_connection` make); `PostgresDialect::default()` has none.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PostgresDialect {
    /// Whether the pool's sessions begin `READ COMMITTED` transactions by default, asked once.
    read_committed_by_default: Arc<OnceCell<bool>>,
    /// The LISTEN/NOTIFY wake-ups of the store (none on a dialect made without a pool).
    wakeups: Arc<Wakeups>,
}

impl PostgresDialect {
    /// The dialect of a store on `pool`, with wake-ups listening on a connection of their own
    /// (opened with the pool's options when a worker first asks for them).
    pub fn for_pool(pool: PgPool) -> Self {
        Self {
            read_committed_by_default: Arc::default(),
            wakeups: Arc::new(crate::listen::for_pool(&pool)),
        }
    }

    /// This dialect without wake-ups: workers find other processes' tasks at their poll only.
    /// For a server reached through a pooler that does not keep sessions (PgBouncer in
    /// transaction mode), where `LISTEN` cannot work.
    pub fn without_wakeups(mut self) -> Self {
        self.wakeups = Arc::default();
        self
    }

    /// Whether the sessions' `default_transaction_isolation` is `read committed` (PostgreSQL's
    /// default, unless the server, database or role says otherwise).
    async fn read_committed_by_default(&self, db: &DatabaseConnection) -> Result<bool, DbErr> {
        self.read_committed_by_default
            .get_or_try_init(|| async {
                let row = db
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SELECT current_setting('default_transaction_isolation') AS l",
                    ))
                    .await?
                    .ok_or_else(|| DbErr::Custom("current_setting returned no row".into()))?;
                let level: String = row.try_get("", "l")?;
                Ok(level.eq_ignore_ascii_case("read committed"))
            })
            .await
            .copied()
    }
}

#[async_trait]
impl Dialect for PostgresDialect {
    // `clock_timestamp()`, the time when the query runs (`now()` is its transaction's start).
    const DATABASE_TIME: Option<&'static str> =
        Some("SELECT (clock_timestamp() AT TIME ZONE 'UTC') AS t");

    const NAME: &'static str = "PostgreSQL";

    const PAUSED_IN_READ: bool = true;

    async fn connect(url: &str) -> Result<DatabaseConnection> {
        crate::connect::open(url).await
    }

    fn for_connection(db: &DatabaseConnection) -> Result<Self> {
        match db.get_database_backend() {
            DbBackend::Postgres => Ok(Self::for_pool(db.get_postgres_connection_pool().clone())),
            other => Err(Error::Config(format!(
                "PostgresStore needs a PostgreSQL connection, not {other:?}: use the store for \
                 that database"
            ))),
        }
    }

    /// `READ COMMITTED`, for this transaction only: a guarded update sees the latest committed
    /// version, and a claim's locking read follows a row changed since its snapshot instead of
    /// failing. It is PostgreSQL's default, so where the sessions have that default (asked
    /// once) the transaction is a plain `BEGIN`; where the server, database or role sets
    /// another, a `SET TRANSACTION ISOLATION LEVEL READ COMMITTED` follows the `BEGIN` (one
    /// round trip more). The sessions keep their own default: the pool is the application's
    /// too.
    async fn begin_write(&self, db: &DatabaseConnection) -> Result<WriteTxn, BeginError> {
        let level = if self.read_committed_by_default(db).await? {
            None
        } else {
            Some(IsolationLevel::ReadCommitted)
        };
        Ok(WriteTxn::new(
            db.begin_with_config(level, None).await?,
            None,
        ))
    }

    /// A plain `BEGIN`: the application's transaction, at its session's level.
    async fn begin_task_transaction(
        &self,
        db: &DatabaseConnection,
    ) -> Result<WriteTxn, BeginError> {
        Ok(WriteTxn::begin(db, None).await?)
    }

    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.wakeups.receiver()
    }

    async fn notify_due(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        db.execute_unprepared(&format!(
            "SELECT pg_notify('{}', '')",
            taskrow_migration::NOTIFY_CHANNEL
        ))
        .await
        .map(drop)
    }

    /// PostgreSQL has `RETURNING` on every data-changing statement.
    async fn capabilities(&self, _db: &DatabaseConnection) -> Result<Capabilities, DbErr> {
        Ok(Capabilities::NONE
            .delete_returning(true)
            .update_returning(true))
    }

    async fn read_due(
        &self,
        txn: &WriteTxn,
        req: &ClaimRequest,
        claim: &Claim,
        limit: usize,
    ) -> Result<Vec<Due>, DbErr> {
        crate::claim::read_due(txn, req, claim, limit).await
    }

    async fn take_due(
        &self,
        txn: &WriteTxn,
        due: Vec<Due>,
        claim: &Claim,
    ) -> Result<Vec<task::Model>, DbErr> {
        crate::claim::take_due(txn, due, claim).await
    }

    async fn delete_succeeded(
        &self,
        txn: &WriteTxn,
        leases: &[Lease],
    ) -> Option<Result<HashSet<i64>, DbErr>> {
        Some(delete_succeeded(txn, leases).await)
    }

    fn classify(&self, err: &DbErr) -> ErrorKind {
        if let Some(kind) = ErrorKind::common(err) {
            return kind;
        }
        let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
        else {
            return ErrorKind::Other;
        };
        match &**e {
            sqlx::Error::Database(db) => match db.code() {
                Some(code) => kind_of(&code, db.message()),
                None => ErrorKind::Other,
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => ErrorKind::Connection,
            _ => ErrorKind::Other,
        }
    }
}

/// What a PostgreSQL error (its SQLSTATE `code`, and its `message`) means for taskrow.
/// The delete of a batch of successes ([`Dialect::delete_succeeded`]): one statement per claim
/// in the batch (a batch holds the results of a few claims, each with its own token), of one
/// text whatever the batch's size, so it is prepared once per connection, where the shared `OR`
/// chain is a new statement for every size, parsed and planned at each use. The ids go in as
/// an array, bound as text (`'{1,2}'::bigint[]`: the shared SeaORM build has no array values),
/// so the rows are read by primary key. `state + 0` keeps the planner off the state index:
/// statistics taken while few tasks ran make it look cheap, and it would then read every
/// running row.
async fn delete_succeeded(txn: &WriteTxn, leases: &[Lease]) -> Result<HashSet<i64>, DbErr> {
    let mut by_token: Vec<(i64, Vec<i64>)> = Vec::new();
    for l in leases {
        match by_token.iter_mut().find(|(t, _)| *t == l.token) {
            Some((_, ids)) => ids.push(l.id),
            None => by_token.push((l.token, vec![l.id])),
        }
    }
    let mut done = HashSet::with_capacity(leases.len());
    for (token, ids) in by_token {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        let stmt = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "DELETE FROM taskrow_task WHERE id = ANY($1::bigint[]) AND claim_token = $2 \
             AND state + 0 = $3 AND on_success = $4 RETURNING id",
            [
                format!("{{{}}}", ids.join(",")).into(),
                token.into(),
                TaskState::Running.code().into(),
                OnSuccess::Delete.code().into(),
            ],
        );
        for row in txn.query_all_raw(stmt).await? {
            done.insert(row.try_get::<i64>("", "id")?);
        }
    }
    Ok(done)
}

fn kind_of(code: &str, message: &str) -> ErrorKind {
    match code {
        // serialization_failure, deadlock_detected, lock_not_available (`lock_timeout`,
        // `NOWAIT`): the statement or transaction was rolled back; trying again is safe.
        "40001" | "40P01" | "55P03" => ErrorKind::Contention,
        // unique_violation.
        "23505" => ErrorKind::UniqueViolation,
        // undefined_table, when the table is one of taskrow's (an application's own missing
        // table, in its task transaction, is its own error).
        "42P01" if message.contains("\"taskrow_") => ErrorKind::MissingTable,
        // admin_shutdown, crash_shutdown, cannot_connect_now (a server stopping, restarting or
        // starting); too_many_connections; the connection_exception class.
        "57P01" | "57P02" | "57P03" | "53300" => ErrorKind::Connection,
        c if c.starts_with("08") => ErrorKind::Connection,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_map_to_kinds() {
        for (code, kind) in [
            ("40001", ErrorKind::Contention),
            ("40P01", ErrorKind::Contention),
            ("55P03", ErrorKind::Contention),
            ("23505", ErrorKind::UniqueViolation),
            ("57P01", ErrorKind::Connection),
            ("57P02", ErrorKind::Connection),
            ("57P03", ErrorKind::Connection),
            ("53300", ErrorKind::Connection),
            ("08006", ErrorKind::Connection),
            ("08P01", ErrorKind::Connection),
            ("23502", ErrorKind::Other),
            ("42601", ErrorKind::Other),
        ] {
            assert_eq!(kind_of(code, ""), kind, "{code}");
        }
        assert_eq!(
            kind_of("42P01", "relation \"taskrow_task\" does not exist"),
            ErrorKind::MissingTable
        );
        assert_eq!(
            kind_of("42P01", "relation \"document\" does not exist"),
            ErrorKind::Other
        );
    }
}

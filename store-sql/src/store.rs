//! [`SqlStore`]: the SeaORM implementation of [`TaskStore`], shared by every SQL database.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::sea_query::{Alias, CaseStatement, Expr, ExprTrait, Func, OnConflict, SimpleExpr};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement,
};
use sea_orm_migration::MigratorTrait;
use taskrow::clock::add;
use taskrow::options::{validate, validate_queue, validate_worker_id};
use taskrow::record::bound_error;
use taskrow::{
    CancelAction, ClaimOne, ClaimRequest, Error, ExtendStatus, Finish, FinishResult, FinishStatus,
    Lease, ListedRow, LogFilter, NewTask, OnSuccess, Outcome, Page, Priority, Purge, PurgeReport,
    QueueInfo, ResetTarget, Result, StateCount, TaskFilter, TaskLog, TaskRecord, TaskRef,
    TaskState, TaskStore, UnreadableRow,
};

use crate::claim::{Claim, as_claimed, claim_update, fail_lost_run};
use crate::dialect::{
    BeginError, Capabilities, Dialect, ErrorKind, WriteTxn, WriterBusy, contention_backoff,
};
use crate::entity::{queue, task, task_log};
use crate::time::{sql, stored};
use taskrow::registry::{WorkerBeat, WorkerRecord};
use taskrow::schedule::{AdvanceStatus, NewSchedule, ScheduleAdvance, ScheduleRecord};

mod schedule;
mod worker;

/// Most rows in one multi-row `INSERT` of [`TaskStore::insert_many`].
pub const INSERT_CHUNK_ROWS: usize = 500;
/// Most payload bytes in one multi-row `INSERT` (MySQL's `max_allowed_packet` is 16 MiB or
/// more by default).
pub const INSERT_CHUNK_BYTES: usize = 4 << 20;
/// How often a read-decide-write operation reads again after losing a race before it gives up
/// with a transient error.
const OPTIMISTIC_TRIES: u32 = 8;

/// The taskrow store on a SQL database through SeaORM, for the [`Dialect`] `D`.
///
/// The store crates name it: `taskrow_sqlite::SqliteStore` is `SqlStore<SqliteDialect>`,
/// `taskrow_mysql::MysqlStore` is `SqlStore<MysqlDialect>`. Clones share the pool.
///
/// Every write of more than one statement runs in one transaction begun by the dialect; a
/// write of one statement (the single insert) runs on its own, in autocommit. Lock contention
/// (SQLite busy, MySQL deadlocks and lock-wait timeouts) is retried a few times inside the
/// store before it surfaces as a transient [`Error::Backend`].
pub struct SqlStore<D> {
    db: DatabaseConnection,
    dialect: std::sync::Arc<D>,
}

impl<D> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            dialect: std::sync::Arc::clone(&self.dialect),
        }
    }
}

impl<D: Dialect> fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlStore")
            .field("database", &D::NAME)
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

/// Why an operation failed: a taskrow error already decided, or a database error still to be
/// classified (and maybe retried).
#[derive(Debug)]
enum Fail {
    Db(DbErr),
    Task(Error),
}

impl From<DbErr> for Fail {
    fn from(e: DbErr) -> Self {
        Fail::Db(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Task(e)
    }
}

/// A write that the one-writer lock turned away is a transient error of its own, not lock
/// contention: retrying at once would only wait for the same task transaction again.
impl From<WriterBusy> for Fail {
    fn from(e: WriterBusy) -> Self {
        Fail::Task(Error::backend(true, e))
    }
}

impl From<BeginError> for Fail {
    fn from(e: BeginError) -> Self {
        match e {
            BeginError::Db(e) => Fail::Db(e),
            BeginError::Writer(e) => e.into(),
        }
    }
}

type Step<T> = std::result::Result<T, Fail>;

impl<D: Dialect> SqlStore<D> {
    /// A store on `db`, with a dialect made for it.
    pub fn from_parts(db: DatabaseConnection, dialect: D) -> Self {
        Self {
            db,
            dialect: std::sync::Arc::new(dialect),
        }
    }

    /// A store on a pool opened elsewhere. [`Error::Config`] if the pool is for another
    /// database than `D`'s.
    pub fn from_connection(db: DatabaseConnection) -> Result<Self> {
        let dialect = D::for_connection(&db)?;
        Ok(Self::from_parts(db, dialect))
    }

    /// Opens a pool for `url` as the dialect tunes it (see [`Dialect::connect`]). The tables
    /// must exist: run [`SqlStore::migrate`], or use [`SqlStore::connect_and_migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        let db = D::connect(url).await?;
        let dialect = D::for_own_connection(&db)?;
        Ok(Self::from_parts(db, dialect))
    }

    /// [`SqlStore::connect`], then [`SqlStore::migrate`].
    pub async fn connect_and_migrate(url: &str) -> Result<Self> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Runs taskrow's pending migrations (`taskrow_migration::Migrator`, history in
    /// `taskrow_seaql_migrations`).
    pub async fn migrate(&self) -> Result<()> {
        taskrow_migration::Migrator::up(&self.db, None)
            .await
            .map_err(|e| self.error(Fail::Db(e)))
    }

    /// The pool.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The dialect.
    pub fn dialect(&self) -> &D {
        &self.dialect
    }

    /// Inserts a task on `conn`, which may be the application's own open transaction: the
    /// task then commits or rolls back with the application's work (the local message table
    /// pattern). Like [`TaskStore::insert`] otherwise, without retries.
    ///
    /// On SQLite, keep that transaction short: it holds the database's write lock, and the
    /// store's own writes wait for it (up to the busy timeout).
    pub async fn insert_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        task: NewTask,
    ) -> Result<TaskRecord> {
        validate(&task)?;
        insert_row(&*self.dialect, conn, &task, true)
            .await
            .map_err(|f| self.error(f))
    }

    /// Maps a database error to taskrow's error, as this store's operations do.
    pub fn map_db_error(&self, e: sea_orm::DbErr) -> Error {
        self.error(Fail::Db(e))
    }

    /// Maps a failed begin to taskrow's error, as this store's operations do.
    pub fn map_begin_error(&self, e: BeginError) -> Error {
        self.error(e.into())
    }

    /// Fails a claimed row that cannot be read (a value out of range, written by hand or by
    /// another version): state failed with the reason, and a log row saying so (the run of
    /// the claim's token), guarded by the claim's version. An operator fixes the row and
    /// resets it.
    async fn fail_unreadable(
        &self,
        row: task::Model,
        e: &Error,
        worker: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let reason = bound_error(&format!(
            "claimed but cannot be run: {e}; fix the row, then reset the task"
        ));
        tracing::error!(id = row.id, code = %row.code, error = %e, "taskrow: a claimed task row cannot be read; failing it");
        let log = task_log::ActiveModel {
            id: NotSet,
            task_id: Set(row.id),
            code: Set(row.code.clone()),
            task_type: Set(row.task_type.clone()),
            attempt: Set(row.attempts),
            started_at: Set(sql(now)),
            duration_ms: Set(0),
            outcome: Set(Outcome::Failed.code()),
            error: Set(Some(reason.clone())),
            worker: Set(worker.to_owned()),
            claim_token: Set(row.claim_token),
        };
        let (reason, log) = (&reason, &log);
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = async {
                let n = guarded_update(row.id, row.version, now)
                    .filter(task::Column::State.eq(TaskState::Running.code()))
                    .col_expr(task::Column::State, Expr::value(TaskState::Failed.code()))
                    .col_expr(task::Column::RunAt, null_time())
                    .col_expr(task::Column::LastError, Expr::value(reason.clone()))
                    .exec(&*txn)
                    .await?
                    .rows_affected;
                if n == 1 {
                    task_log::Entity::insert(log.clone())
                        .exec_without_returning(&*txn)
                        .await?;
                }
                Ok(())
            }
            .await;
            end(txn, r).await
        })
        .await
    }

    /// What [`TaskStore::purge`] would remove now: the same conditions, counted.
    async fn purge_count(&self, purge: &Purge, before: DateTime<Utc>) -> Result<PurgeReport> {
        let cap = |n: u64| purge.limit.map_or(n, |l| Ord::min(n, l));
        let mut report = PurgeReport::default();
        if !purge.states.is_empty() {
            let n = task::Entity::find()
                .filter(task::Column::State.is_in(purge.states.iter().map(|s| s.code())))
                .filter(task::Column::UpdatedAt.lt(sql(before)))
                .count(&self.db)
                .await
                .map_err(|e| self.error(e.into()))?;
            report.tasks = cap(n);
        }
        if purge.logs {
            let n = task_log::Entity::find()
                .filter(task_log::Column::StartedAt.lt(sql(before)))
                .count(&self.db)
                .await
                .map_err(|e| self.error(e.into()))?;
            report.logs = cap(n);
        }
        Ok(report)
    }

    /// Maps a failure to taskrow's error.
    fn error(&self, f: Fail) -> Error {
        match f {
            Fail::Task(e) => e,
            Fail::Db(e) => db_error(&*self.dialect, e),
        }
    }

    /// Runs `op` again while it fails with lock contention, a few times.
    async fn retrying<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Step<T>>,
    {
        let mut n = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Fail::Db(e))
                    if n < self.dialect.contention_retries()
                        && self.dialect.classify(&e) == ErrorKind::Contention =>
                {
                    tracing::debug!(error = %e, retry = n + 1, "taskrow: lock contention, retrying");
                    tokio::time::sleep(contention_backoff(n)).await;
                    n += 1;
                }
                Err(f) => return Err(self.error(f)),
            }
        }
    }

    /// Begins a write transaction.
    async fn begin(&self) -> Step<WriteTxn> {
        Ok(self.dialect.begin_write(&self.db).await?)
    }
}

/// Commits `txn` when `r` is a success, rolls it back otherwise.
async fn end<T>(txn: WriteTxn, r: Step<T>) -> Step<T> {
    match r {
        Ok(v) => {
            txn.commit().await?;
            Ok(v)
        }
        Err(f) => {
            if let Err(e) = txn.rollback().await {
                tracing::debug!(error = %e, "taskrow: rollback failed");
            }
            Err(f)
        }
    }
}

/// A database error as taskrow's error.
pub(crate) fn db_error<D: Dialect>(dialect: &D, e: DbErr) -> Error {
    match dialect.classify(&e) {
        ErrorKind::MissingTable => Error::NotMigrated,
        kind => Error::backend(kind.is_transient(), e),
    }
}

/// Inserts one validated task; a unique violation is [`Error::DuplicateCode`]. `in_txn`: the
/// insert runs in a transaction that goes on after it (the application's, or the store's own).
async fn insert_row<D: Dialect, C: ConnectionTrait>(
    dialect: &D,
    conn: &C,
    task: &NewTask,
    in_txn: bool,
) -> Step<TaskRecord> {
    let mut row = task::Model::new_row(task);
    let mut insert = task::Entity::insert(row.clone().into_insert_new());
    if in_txn && conn.get_database_backend() == DbBackend::Postgres {
        // A failed statement aborts a PostgreSQL transaction, and the caller's may be the
        // application's own (`insert_on`): a taken code inserts nothing instead of failing, so
        // the transaction goes on after `DuplicateCode` as it does on the other databases.
        // An insert on its own (autocommit) fails instead: `ON CONFLICT` costs each insert
        // some 5 % (pgbench, prepared, one row per transaction: 0.29 against 0.30 ms).
        insert = insert.on_conflict(
            OnConflict::column(task::Column::Code)
                .do_nothing()
                .to_owned(),
        );
    }
    let res = insert.exec(conn).await.map_err(|e| match e {
        DbErr::RecordNotInserted => Fail::Task(Error::DuplicateCode(task.code.clone())),
        e => duplicate_or(dialect, e, &task.code),
    })?;
    row.id = res.last_insert_id;
    Ok(row.into_record()?)
}

fn duplicate_or<D: Dialect>(dialect: &D, e: DbErr, code: &str) -> Fail {
    if dialect.classify(&e) == ErrorKind::UniqueViolation {
        Fail::Task(Error::DuplicateCode(code.to_owned()))
    } else {
        Fail::Db(e)
    }
}

/// One task's row, or [`Error::NotFound`].
async fn find<C: ConnectionTrait>(conn: &C, target: &TaskRef) -> Step<task::Model> {
    let q = match target {
        TaskRef::Id(id) => task::Entity::find_by_id(*id),
        TaskRef::Code(code) => task::Entity::find().filter(task::Column::Code.eq(code.as_str())),
    };
    q.one(conn)
        .await?
        .ok_or_else(|| Fail::Task(Error::NotFound(target.clone())))
}

/// `UPDATE taskrow_task SET version = version + 1, updated_at = now, … WHERE id = ? AND
/// version = ?`: the optimistic lock of read-decide-write operations.
fn guarded_update(id: i64, version: i64, now: DateTime<Utc>) -> sea_orm::UpdateMany<task::Entity> {
    task::Entity::update_many()
        .col_expr(
            task::Column::Version,
            Expr::col(task::Column::Version).add(1),
        )
        .col_expr(task::Column::UpdatedAt, Expr::value(sql(now)))
        .filter(task::Column::Id.eq(id))
        .filter(task::Column::Version.eq(version))
}

/// `UPDATE taskrow_task SET version = version + 1, updated_at = now, … WHERE id = ? AND
/// claim_token = ? AND state = running`: a write fenced by a claim (a finish, a lease
/// extension, a release), which takes effect only while the task runs under that claim.
fn lease_update(lease: &Lease, now: DateTime<Utc>) -> sea_orm::UpdateMany<task::Entity> {
    task::Entity::update_many()
        .col_expr(
            task::Column::Version,
            Expr::col(task::Column::Version).add(1),
        )
        .col_expr(task::Column::UpdatedAt, Expr::value(sql(now)))
        .filter(lease_condition(lease))
}

/// `id = ? AND claim_token = ? AND state = running`: the task still runs under `lease`.
fn lease_condition(lease: &Lease) -> Condition {
    Condition::all()
        .add(task::Column::Id.eq(lease.id))
        .add(task::Column::ClaimToken.eq(lease.token))
        .add(task::Column::State.eq(TaskState::Running.code()))
}

/// `attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END`: the attempt given back
/// (by a release, or an interrupted run).
fn attempt_given_back() -> SimpleExpr {
    Expr::cust("CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END")
}

/// Inserts the [`TaskLog::worker_lost`] row of `found`'s run if it is running under a lease
/// expired by `now` (reset, cancel and delete, after they changed it; `last`: this fails the
/// task).
async fn log_lost_run<C: ConnectionTrait>(
    conn: &C,
    found: &TaskRecord,
    now: DateTime<Utc>,
    last: bool,
) -> Result<(), DbErr> {
    if found.lease_expired_at(now) {
        task_log::Entity::insert(task_log::Model::from_log(&TaskLog::worker_lost(
            0, found, now, last,
        )))
        .exec_without_returning(conn)
        .await?;
    }
    Ok(())
}

fn null_time() -> SimpleExpr {
    Expr::value(Option::<chrono::NaiveDateTime>::None)
}

/// Most items in one grouped statement of a result write. Each item adds a term to an `OR`
/// (and a `WHEN` to a `CASE`), and SQLite refuses expressions deeper than 1,000.
const GROUP_ROWS: usize = 100;

/// `(claim_token = ? AND id IN (…)) OR …`, one term per claim token: the rows still under
/// these claims (with `state = running`, which the callers add). A batch of results holds the
/// tasks of a few claims, each claim with one token for all its tasks; an `OR` per task made
/// a deep expression that SeaQuery built and SQLite compiled at every batch, over half the
/// instructions of a SQLite drain (callgrind: `sqlite3ExprIfTrue` 38 %, SeaQuery's
/// `binary_expr` 21 %).
fn leases_condition<'a>(leases: impl Iterator<Item = &'a Lease>) -> Condition {
    let mut by_token: Vec<(i64, Vec<i64>)> = Vec::new();
    for l in leases {
        match by_token.iter_mut().find(|(token, _)| *token == l.token) {
            Some((_, ids)) => ids.push(l.id),
            None => by_token.push((l.token, vec![l.id])),
        }
    }
    by_token
        .into_iter()
        .fold(Condition::any(), |c, (token, ids)| {
            c.add(
                Condition::all()
                    .add(task::Column::ClaimToken.eq(token))
                    .add(task::Column::Id.is_in(ids)),
            )
        })
}

/// [`lease_update`] of many leases at once: `UPDATE … SET version = version + 1, updated_at
/// = now … WHERE state = running AND ((id = ? AND claim_token = ?) OR …)`.
fn leases_update<'a>(
    leases: impl Iterator<Item = &'a Lease>,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<task::Entity> {
    task::Entity::update_many()
        .col_expr(
            task::Column::Version,
            Expr::col(task::Column::Version).add(1),
        )
        .col_expr(task::Column::UpdatedAt, Expr::value(sql(now)))
        .filter(task::Column::State.eq(TaskState::Running.code()))
        .filter(leases_condition(leases))
}

/// `CASE WHEN id = ? THEN ? … END`: a value per row of a grouped update.
fn by_id(values: impl Iterator<Item = (i64, SimpleExpr)>) -> SimpleExpr {
    let mut case = CaseStatement::new();
    for (id, v) in values {
        case = case.case(task::Column::Id.eq(id), v);
    }
    case.into()
}

/// Runs a grouped `DELETE` or `UPDATE` with `RETURNING id` (on a dialect whose
/// [`Capabilities`] have it) and returns the ids it changed.
async fn returning_ids(txn: &WriteTxn, mut stmt: Statement) -> Result<HashSet<i64>, DbErr> {
    // sea-query renders no `RETURNING` for MySQL, whose MariaDB flavour has `DELETE …
    // RETURNING`; the statements here end with their `WHERE`, so it is appended.
    stmt.sql.push_str(" RETURNING id");
    txn.query_all_raw(stmt)
        .await?
        .iter()
        .map(|r| r.try_get::<i64>("", "id"))
        .collect()
}

/// Sets `applied` for the items of `chunk`: applied when `done` has their task.
fn mark(applied: &mut [Option<bool>], batch: &[Finish], chunk: &[usize], done: &HashSet<i64>) {
    for &i in chunk {
        applied[i] = Some(done.contains(&batch[i].lease.id));
    }
}

/// One result, applied by its own guarded statements: whether it was. `delete_tried`: a
/// grouped delete already had its chance at a success (and did not take it).
async fn finish_one(
    txn: &WriteTxn,
    f: &Finish,
    end: &FinishResult,
    now: DateTime<Utc>,
    delete_tried: bool,
) -> Result<bool, DbErr> {
    Ok(match end {
        FinishResult::Succeeded => succeed(&**txn, f, now, delete_tried).await?,
        FinishResult::Retry { at, error } => {
            lease_update(&f.lease, now)
                .col_expr(task::Column::State, Expr::value(TaskState::Pending.code()))
                .col_expr(task::Column::RunAt, Expr::value(sql(*at)))
                .col_expr(task::Column::LastError, Expr::value(error.clone()))
                .exec(&**txn)
                .await?
                .rows_affected
                == 1
        }
        FinishResult::Failed { error } => {
            lease_update(&f.lease, now)
                .col_expr(task::Column::State, Expr::value(TaskState::Failed.code()))
                .col_expr(task::Column::RunAt, null_time())
                .col_expr(task::Column::LastError, Expr::value(error.clone()))
                .exec(&**txn)
                .await?
                .rows_affected
                == 1
        }
        FinishResult::Interrupted { at, error } => {
            interrupted(lease_update(&f.lease, now))
                .col_expr(task::Column::RunAt, Expr::value(sql(*at)))
                .col_expr(task::Column::LastError, Expr::value(error.clone()))
                .exec(&**txn)
                .await?
                .rows_affected
                == 1
        }
        FinishResult::Cancelled { error } => {
            lease_update(&f.lease, now)
                .col_expr(
                    task::Column::State,
                    Expr::value(TaskState::Cancelled.code()),
                )
                .col_expr(task::Column::RunAt, null_time())
                .col_expr(task::Column::LastError, Expr::value(error.clone()))
                .exec(&**txn)
                .await?
                .rows_affected
                == 1
        }
    })
}

/// Applies a run's success to its task, guarded by its lease: deletes the row (tasks deleted
/// on success, unless `delete_tried` says a grouped delete already looked) or marks it
/// succeeded. Whether it applied.
pub(crate) async fn succeed<C: ConnectionTrait>(
    conn: &C,
    f: &Finish,
    now: DateTime<Utc>,
    delete_tried: bool,
) -> Result<bool, DbErr> {
    let deleted = !delete_tried
        && task::Entity::delete_many()
            .filter(lease_condition(&f.lease))
            .filter(task::Column::OnSuccess.eq(OnSuccess::Delete.code()))
            .exec(conn)
            .await?
            .rows_affected
            == 1;
    Ok(deleted
        || lease_update(&f.lease, now)
            .filter(task::Column::OnSuccess.ne(OnSuccess::Delete.code()))
            .col_expr(
                task::Column::State,
                Expr::value(TaskState::Succeeded.code()),
            )
            .col_expr(task::Column::RunAt, null_time())
            .exec(conn)
            .await?
            .rows_affected
            == 1)
}

/// What an interrupted run does to its task besides its due time and error: pending, the
/// attempt given back, one more interruption.
fn interrupted(q: sea_orm::UpdateMany<task::Entity>) -> sea_orm::UpdateMany<task::Entity> {
    q.col_expr(task::Column::State, Expr::value(TaskState::Pending.code()))
        .col_expr(task::Column::Attempts, attempt_given_back())
        .col_expr(
            task::Column::Interruptions,
            Expr::col(task::Column::Interruptions).add(1),
        )
}

/// The log row already written for each of `runs` (task id, claim token), if any: its id and
/// outcome code. One query per [`INSERT_CHUNK_ROWS`] runs.
async fn logged_runs(
    txn: &WriteTxn,
    runs: &[(i64, i64)],
) -> Result<HashMap<(i64, i64), (i64, i16)>, DbErr> {
    let mut found = HashMap::new();
    for chunk in runs.chunks(INSERT_CHUNK_ROWS) {
        let wanted: HashSet<(i64, i64)> = chunk.iter().copied().collect();
        let rows: Vec<(i64, i64, Option<i64>, i16)> = task_log::Entity::find()
            .select_only()
            .column(task_log::Column::Id)
            .column(task_log::Column::TaskId)
            .column(task_log::Column::ClaimToken)
            .column(task_log::Column::Outcome)
            .filter(task_log::Column::TaskId.is_in(chunk.iter().map(|r| r.0)))
            .filter(task_log::Column::ClaimToken.is_in(chunk.iter().map(|r| r.1)))
            .into_tuple()
            .all(&**txn)
            .await?;
        for (id, task_id, token, outcome) in rows {
            let Some(run) = token.map(|t| (task_id, t)) else {
                continue;
            };
            if wanted.contains(&run) {
                found.insert(run, (id, outcome));
            }
        }
    }
    Ok(found)
}

/// A state code read by a count, or `None` (with a warning) for one this version does not
/// know: counts leave such rows out, and [`TaskStore::unreadable`] lists them.
fn state_of_count(state: i16, of: &str) -> Option<TaskState> {
    let known = TaskState::from_code(state);
    if known.is_none() {
        tracing::warn!(
            state,
            of,
            "taskrow: tasks with an unknown state are left out of the counts; `taskrow list` shows them"
        );
    }
    known
}

/// Rows holding a value [`task::Model::into_record`] refuses that SQL can see: a code out of
/// range or a negative count. (A retry policy that is not JSON is only found by decoding.)
fn unreadable_condition() -> Condition {
    Condition::any()
        .add(task::Column::State.is_not_in(TaskState::ALL.iter().map(|s| s.code())))
        .add(task::Column::Priority.is_not_in([0i16, 1, 2]))
        .add(task::Column::OnSuccess.is_not_in([0i16, 1]))
        .add(task::Column::Dispatch.is_not_in([0i16, 1, 2]))
        .add(task::Column::Attempts.lt(0))
        .add(task::Column::Interruptions.lt(0))
        .add(task::Column::MaxAttempts.lt(1))
        .add(task::Column::TimeoutMs.lt(0))
}

/// A row as [`TaskStore::list_rows`] shows it: the task, or why it cannot be read.
fn listed(m: task::Model) -> Result<ListedRow> {
    let (id, code, task_type) = (m.id, m.code.clone(), m.task_type.clone());
    match m.into_record() {
        Ok(t) => Ok(ListedRow::Task(Box::new(t))),
        Err(Error::CorruptRow { reason, .. }) => Ok(ListedRow::Unreadable(UnreadableRow::new(
            id, code, task_type, reason,
        ))),
        Err(e) => Err(e),
    }
}

/// The condition of a [`TaskFilter`].
fn task_condition(filter: &TaskFilter, backend: DbBackend) -> Condition {
    let mut c = Condition::all();
    if !filter.states.is_empty() {
        c = c.add(task::Column::State.is_in(filter.states.iter().map(|s| s.code())));
    }
    if !filter.biz_types.is_empty() {
        c = c.add(task::Column::BizType.is_in(filter.biz_types.iter().cloned()));
    }
    if !filter.task_types.is_empty() {
        c = c.add(task::Column::TaskType.is_in(filter.task_types.iter().cloned()));
    }
    if !filter.queues.is_empty() {
        c = c.add(task::Column::Queue.is_in(filter.queues.iter().cloned()));
    }
    if let Some(p) = &filter.code_prefix {
        // `INSTR(code, p) = 1` (PostgreSQL: `STRPOS`, the same with another name): a
        // case-sensitive prefix test on every database, with nothing to escape (SQLite's LIKE
        // ignores ASCII case; `_` and `%` would need escaping).
        let position = match backend {
            DbBackend::Postgres => "STRPOS",
            _ => "INSTR",
        };
        c = c.add(
            Expr::expr(
                Func::cust(Alias::new(position))
                    .arg(Expr::col(task::Column::Code))
                    .arg(p.clone()),
            )
            .eq(1),
        );
        // SQLite and MySQL compare codes byte by byte (binary collations): every code that
        // starts with `p` lies in `[p, next)`, a range of the unique index on `code`, so the
        // test above reads that range instead of every row (430 ms → about 1 ms at a million
        // tasks on SQLite). PostgreSQL's collation is the database's, whose order may ignore
        // punctuation: a range there could miss codes, so it keeps the test alone.
        if backend != DbBackend::Postgres && !p.is_empty() {
            c = c.add(task::Column::Code.gte(p.as_str()));
            if let Some(next) = prefix_successor(p) {
                c = c.add(task::Column::Code.lt(next));
            }
        }
    }
    if let Some(t) = filter.due_before {
        // Pending rows keep their next run time in `run_at`, running rows their lease expiry,
        // finished rows NULL: exactly `TaskFilter::matches`.
        c = c.add(task::Column::RunAt.lte(sql(t)));
    }
    c
}

/// The least string greater than every string that starts with `p` (in code point order,
/// which is UTF-8's byte order): `p` with its last character that can grow grown by one and
/// what follows it cut; `None` when no character can grow.
fn prefix_successor(p: &str) -> Option<String> {
    let chars: Vec<char> = p.chars().collect();
    for i in (0..chars.len()).rev() {
        let mut n = u32::from(chars[i]) + 1;
        if (0xD800..=0xDFFF).contains(&n) {
            n = 0xE000;
        }
        if let Some(grown) = char::from_u32(n) {
            let mut next: String = chars[..i].iter().collect();
            next.push(grown);
            return Some(next);
        }
    }
    None
}

fn log_condition(filter: &LogFilter) -> Condition {
    let mut c = Condition::all();
    if let Some(id) = filter.task_id {
        c = c.add(task_log::Column::TaskId.eq(id));
    }
    if let Some(code) = &filter.code {
        c = c.add(task_log::Column::Code.eq(code.as_str()));
    }
    if !filter.outcomes.is_empty() {
        c = c.add(task_log::Column::Outcome.is_in(filter.outcomes.iter().map(|o| o.code())));
    }
    if let Some(t) = filter.since {
        c = c.add(task_log::Column::StartedAt.gte(sql(t)));
    }
    c
}

/// The steps of each operation, on an open write transaction.
impl<D: Dialect> SqlStore<D> {
    /// [`Dialect::notify_due`] after a change made tasks due. The change is committed; a
    /// notification that fails costs only a poll interval elsewhere, so it is logged, not
    /// answered.
    async fn notify_due(&self) {
        if let Err(e) = self.dialect.notify_due(&self.db).await {
            tracing::debug!(error = %e, "taskrow: telling other processes' workers failed; they poll");
        }
    }

    async fn insert_many_in(&self, txn: &WriteTxn, tasks: &[NewTask]) -> Step<u64> {
        // Codes already taken, checked first so the error can name one.
        for chunk in tasks.chunks(INSERT_CHUNK_ROWS) {
            if let Some(code) = first_taken(&**txn, chunk).await? {
                return Err(Fail::Task(Error::DuplicateCode(code)));
            }
        }
        let mut n = 0;
        let mut start = 0;
        while start < tasks.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < tasks.len()
                && end - start < INSERT_CHUNK_ROWS
                && (end == start || bytes + tasks[end].payload.len() <= INSERT_CHUNK_BYTES)
            {
                bytes += tasks[end].payload.len();
                end += 1;
            }
            let chunk = &tasks[start..end];
            let rows = chunk
                .iter()
                .map(|t| task::Model::new_row(t).into_insert_new());
            match task::Entity::insert_many(rows)
                .exec_without_returning(&**txn)
                .await
            {
                Ok(k) => n += k,
                Err(e) if self.dialect.classify(&e) == ErrorKind::UniqueViolation => {
                    // Another writer took a code since the check (MySQL); name it.
                    let code = first_taken(&**txn, chunk)
                        .await
                        .ok()
                        .flatten()
                        .unwrap_or_else(|| chunk[0].code.clone());
                    return Err(Fail::Task(Error::DuplicateCode(code)));
                }
                Err(e) => return Err(e.into()),
            }
            start = end;
        }
        Ok(n)
    }

    /// [`TaskStore::claim_one`] of a pending task (immediate dispatch, run-now of a waiting
    /// task: the common case) in one statement on its own, where the database returns the
    /// row an `UPDATE` changed (SQLite, PostgreSQL): `UPDATE … SET <the claim> WHERE <the
    /// task> AND state = pending RETURNING *`. A pending task has no lost run to settle and
    /// nothing to refuse, so the read, the version check and the transaction around them
    /// (three more round trips) are not needed. `None`: the task was not pending (or the
    /// database cannot return the row): the caller reads it and decides.
    async fn claim_pending_one(
        &self,
        target: &TaskRef,
        req: &ClaimOne,
    ) -> Result<Option<Result<TaskRecord>>> {
        let caps = self
            .dialect
            .capabilities(&self.db)
            .await
            .map_err(|e| self.map_db_error(e))?;
        if !caps.update_returning {
            return Ok(None);
        }
        let now = stored(req.now);
        let claim = Claim::new(req.worker.clone(), now, stored(add(now, req.lease)));
        let update = claim_update(&claim).filter(task::Column::State.eq(TaskState::Pending.code()));
        let update = match target {
            TaskRef::Id(id) => update.filter(task::Column::Id.eq(*id)),
            TaskRef::Code(code) => update.filter(task::Column::Code.eq(code.as_str())),
        };
        let update = &update;
        let rows = self
            .retrying(|| async move {
                let _writer = self.dialect.write_lock().await?;
                Ok(update.clone().exec_with_returning(&self.db).await?)
            })
            .await?;
        let Some(row) = rows.into_iter().next() else {
            return Ok(None);
        };
        Ok(Some(match row.clone().into_record() {
            Ok(r) => Ok(r),
            // Claimed, but unreadable: failed on its own, as a batch claim does.
            Err(e) => {
                let id = row.id;
                if let Err(fail) = self.fail_unreadable(row, &e, &req.worker, now).await {
                    tracing::error!(id, error = %fail, "taskrow: cannot fail an unreadable claimed task row; a later claim will try again after its lease");
                }
                Err(e)
            }
        }))
    }

    /// The claim of [`TaskStore::claim_one`]. A refusal that changed the task (an expired run
    /// at its last attempt failed for `only_pending`) comes back as `Ok(Err(_))`, so that the
    /// change commits.
    async fn claim_one_in(
        &self,
        txn: &WriteTxn,
        target: &TaskRef,
        req: &ClaimOne,
    ) -> Step<Result<TaskRecord>> {
        let now = stored(req.now);
        let claim = Claim::new(req.worker.clone(), now, stored(add(now, req.lease)));
        for _ in 0..OPTIMISTIC_TRIES {
            let m = find(&**txn, target).await?;
            let found = m.clone().into_record()?;
            found.check_claim_one(req.only_pending, now)?;
            // Run-now (an operator's decision) runs a lost run's task again even past its last
            // attempt; immediate dispatch (`only_pending`) fails it as a claim would.
            let fails =
                req.only_pending && found.lease_expired_at(now) && found.attempts_exhausted();
            let write = if fails {
                fail_lost_run(&found, now)
            } else {
                claim_update(&claim)
                    .filter(task::Column::Id.eq(m.id))
                    .filter(task::Column::Version.eq(m.version))
            };
            if write.exec(&**txn).await?.rows_affected != 1 {
                // Another claimant or operator changed the row since it was read: decide again.
                continue;
            }
            log_lost_run(&**txn, &found, now, fails).await?;
            if fails {
                return Ok(Err(Error::WrongState {
                    code: found.code,
                    state: TaskState::Failed,
                    what: "its worker was lost during its last attempt, so it failed and is not \
                           dispatched; run it now by hand, or reset it to let the scheduler run it"
                        .into(),
                }));
            }
            return Ok(Ok(as_claimed(m, &claim).into_record()?));
        }
        Err(lost_races())
    }

    /// Applies a batch of results: grouped statements where the dialect's [`Capabilities`]
    /// say which rows they changed, one guarded statement per item for the rest. Answers and
    /// log rows follow the batch's order.
    ///
    /// An item not applied is answered by the log row of its run (its task id and claim
    /// token), read for all such items at once: the item's own outcome there means an earlier
    /// try of the same finish was applied (its reply lost): applied, nothing written. A
    /// worker-lost row becomes the item's lease-lost row; any other row means the run was
    /// answered already: lease lost, nothing written. Without a row, the item's lease-lost row
    /// is inserted. A run named twice in one batch is answered the same way by the row its
    /// first item wrote. So each run has one log row, as the unique index on `(task_id,
    /// claim_token)` holds.
    async fn finish_in(
        &self,
        txn: &WriteTxn,
        batch: &[Finish],
        ends: &[FinishResult],
        now: DateTime<Utc>,
        caps: Capabilities,
    ) -> Step<Vec<FinishStatus>> {
        // A cancel requested changes only the results that are not successes: a batch of
        // successes (the common drain) needs no read of the marks. That read, with its row
        // locks, made a MariaDB drain of successes 1.5-2.5 times slower.
        if ends.iter().all(|e| e.when_cancel_requested().is_none()) {
            return self.finish_applying(txn, batch, ends, now, caps).await;
        }
        // The runs whose task has a cancel requested, read with the rows locked (SQLite: under
        // its one writer), so that no cancel marks a task between this read and the write.
        let mut asked: HashSet<(i64, i64)> = HashSet::new();
        let mut ids: Vec<i64> = batch.iter().map(|f| f.lease.id).collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(INSERT_CHUNK_ROWS) {
            let rows: Vec<(i64, Option<i64>, i16, Option<chrono::NaiveDateTime>)> =
                task::Entity::find()
                    .select_only()
                    .column(task::Column::Id)
                    .column(task::Column::ClaimToken)
                    .column(task::Column::State)
                    .column(task::Column::CancelRequestedAt)
                    .filter(task::Column::Id.is_in(chunk.iter().copied()))
                    .order_by_asc(task::Column::Id)
                    .lock_exclusive()
                    .into_tuple()
                    .all(&**txn)
                    .await?;
            for (id, token, state, requested) in rows {
                if let (Some(token), Some(_)) = (token, requested)
                    && state == TaskState::Running.code()
                {
                    asked.insert((id, token));
                }
            }
        }
        if asked.is_empty() {
            return self.finish_applying(txn, batch, ends, now, caps).await;
        }
        // Their non-successes end the task cancelled (`FinishResult::when_cancel_requested`).
        let mut batch = batch.to_vec();
        let mut ends = ends.to_vec();
        for (f, end) in batch.iter_mut().zip(ends.iter_mut()) {
            if asked.contains(&(f.lease.id, f.lease.token))
                && let Some(changed) = end.when_cancel_requested()
            {
                f.result = changed.clone();
                *end = changed;
            }
        }
        self.finish_applying(txn, &batch, &ends, now, caps).await
    }

    /// [`SqlStore::finish_in`] once the results are final.
    async fn finish_applying(
        &self,
        txn: &WriteTxn,
        batch: &[Finish],
        ends: &[FinishResult],
        now: DateTime<Utc>,
        caps: Capabilities,
    ) -> Step<Vec<FinishStatus>> {
        // Per item: applied or not, once known.
        let mut applied: Vec<Option<bool>> = vec![None; batch.len()];
        // A grouped statement names each task once; a batch naming a task twice (the first
        // finish may apply, the later ones then find the version moved on) goes item by item,
        // in order.
        let mut seen = HashSet::with_capacity(batch.len());
        let grouped = batch.iter().all(|f| seen.insert(f.lease.id));
        let deletes_tried = grouped && caps.delete_returning;
        if grouped {
            self.finish_grouped(txn, batch, ends, now, caps, &mut applied)
                .await?;
        }
        let mut done = Vec::with_capacity(batch.len());
        for ((f, end), applied) in batch.iter().zip(ends).zip(applied) {
            done.push(match applied {
                Some(a) => a,
                None => finish_one(txn, f, end, now, deletes_tried).await?,
            });
        }
        let refused: Vec<(i64, i64)> = batch
            .iter()
            .zip(&done)
            .filter(|(_, applied)| !**applied)
            .map(|(f, _)| (f.lease.id, f.lease.token))
            .collect();
        let logged = if refused.is_empty() {
            HashMap::new()
        } else {
            logged_runs(txn, &refused).await?
        };
        let mut answers = Vec::with_capacity(batch.len());
        let mut logs = Vec::with_capacity(batch.len());
        // The outcome each run of this batch was logged with, so far.
        let mut this_batch: HashMap<(i64, i64), i16> = HashMap::new();
        for (f, applied) in batch.iter().zip(done) {
            let run = (f.lease.id, f.lease.token);
            if applied {
                logs.push(task_log::Model::insert_for(f, f.outcome(), f.error()));
                this_batch.insert(run, f.outcome().code());
                answers.push(FinishStatus::Applied);
                continue;
            }
            // The run's log row: written by an earlier item of this batch, or stored (with
            // its id).
            let earlier = match this_batch.get(&run) {
                Some(&outcome) => Some((None, outcome)),
                None => logged.get(&run).map(|&(id, outcome)| (Some(id), outcome)),
            };
            answers.push(match earlier {
                Some((_, outcome)) if outcome == f.outcome().code() => FinishStatus::Applied,
                // A non-success of a task with a cancel requested was logged cancelled.
                Some((_, outcome))
                    if outcome == Outcome::Cancelled.code()
                        && f.result.when_cancel_requested().is_some() =>
                {
                    FinishStatus::Applied
                }
                Some((Some(log_id), outcome)) if outcome == Outcome::WorkerLost.code() => {
                    task_log::Entity::update_many()
                        .set(task_log::Model::from_log(&TaskLog::of_finish(
                            log_id, f, false,
                        )))
                        .filter(task_log::Column::Id.eq(log_id))
                        .exec(&**txn)
                        .await?;
                    this_batch.insert(run, Outcome::LeaseLost.code());
                    FinishStatus::LeaseLost
                }
                Some(_) => FinishStatus::LeaseLost,
                None => {
                    let error = f.lease_lost_error();
                    logs.push(task_log::Model::insert_for(
                        f,
                        Outcome::LeaseLost,
                        Some(&error),
                    ));
                    this_batch.insert(run, Outcome::LeaseLost.code());
                    FinishStatus::LeaseLost
                }
            });
        }
        for chunk in logs.chunks(INSERT_CHUNK_ROWS) {
            task_log::Entity::insert_many(chunk.iter().cloned())
                .exec_without_returning(&**txn)
                .await?;
        }
        Ok(answers)
    }

    /// The grouped statements of [`SqlStore::finish_in`], for a batch naming each task once:
    /// with `DELETE … RETURNING`, one delete of the successes (of tasks deleted on success);
    /// with `UPDATE … RETURNING` too, one update each for the other successes, the failures,
    /// the retries and the interruptions. Sets `applied` for every item they decide.
    async fn finish_grouped(
        &self,
        txn: &WriteTxn,
        batch: &[Finish],
        ends: &[FinishResult],
        now: DateTime<Utc>,
        caps: Capabilities,
        applied: &mut [Option<bool>],
    ) -> Step<()> {
        if !caps.delete_returning {
            return Ok(());
        }
        let backend = txn.get_database_backend();
        let of = |pick: fn(&FinishResult) -> bool| -> Vec<usize> {
            (0..batch.len()).filter(|&i| pick(&ends[i])).collect()
        };
        let successes = of(|e| matches!(e, FinishResult::Succeeded));
        for chunk in successes.chunks(GROUP_ROWS) {
            let leases: Vec<Lease> = chunk.iter().map(|&i| batch[i].lease).collect();
            let done = match self.dialect.delete_succeeded(txn, &leases).await {
                Some(done) => done?,
                None => {
                    let q = task::Entity::delete_many()
                        .filter(task::Column::State.eq(TaskState::Running.code()))
                        .filter(task::Column::OnSuccess.eq(OnSuccess::Delete.code()))
                        .filter(leases_condition(leases.iter()));
                    returning_ids(txn, q.build(backend)).await?
                }
            };
            for &i in chunk {
                if done.contains(&batch[i].lease.id) {
                    applied[i] = Some(true);
                }
            }
        }
        if !caps.update_returning {
            return Ok(());
        }
        // Successes not deleted: kept as succeeded, or lease lost.
        let kept: Vec<usize> = successes
            .into_iter()
            .filter(|&i| applied[i].is_none())
            .collect();
        for chunk in kept.chunks(GROUP_ROWS) {
            let q = leases_update(chunk.iter().map(|&i| &batch[i].lease), now)
                .filter(task::Column::OnSuccess.ne(OnSuccess::Delete.code()))
                .col_expr(
                    task::Column::State,
                    Expr::value(TaskState::Succeeded.code()),
                )
                .col_expr(task::Column::RunAt, null_time());
            mark(
                applied,
                batch,
                chunk,
                &returning_ids(txn, q.build(backend)).await?,
            );
        }
        for chunk in of(|e| matches!(e, FinishResult::Failed { .. })).chunks(GROUP_ROWS) {
            let q = leases_update(chunk.iter().map(|&i| &batch[i].lease), now)
                .col_expr(task::Column::State, Expr::value(TaskState::Failed.code()))
                .col_expr(task::Column::RunAt, null_time())
                .col_expr(
                    task::Column::LastError,
                    by_id(chunk.iter().map(|&i| match &ends[i] {
                        FinishResult::Failed { error } => {
                            (batch[i].lease.id, Expr::value(error.clone()))
                        }
                        _ => unreachable!("picked failures only"),
                    })),
                );
            mark(
                applied,
                batch,
                chunk,
                &returning_ids(txn, q.build(backend)).await?,
            );
        }
        for chunk in of(|e| matches!(e, FinishResult::Retry { .. })).chunks(GROUP_ROWS) {
            let retry = |i: usize| match &ends[i] {
                FinishResult::Retry { at, error } => (batch[i].lease.id, *at, error),
                _ => unreachable!("picked retries only"),
            };
            let q = leases_update(chunk.iter().map(|&i| &batch[i].lease), now)
                .col_expr(task::Column::State, Expr::value(TaskState::Pending.code()))
                .col_expr(
                    task::Column::RunAt,
                    by_id(chunk.iter().map(|&i| {
                        let (id, at, _) = retry(i);
                        (id, Expr::value(sql(at)))
                    })),
                )
                .col_expr(
                    task::Column::LastError,
                    by_id(chunk.iter().map(|&i| {
                        let (id, _, error) = retry(i);
                        (id, Expr::value(error.clone()))
                    })),
                );
            mark(
                applied,
                batch,
                chunk,
                &returning_ids(txn, q.build(backend)).await?,
            );
        }
        for chunk in of(|e| matches!(e, FinishResult::Interrupted { .. })).chunks(GROUP_ROWS) {
            let interruption = |i: usize| match &ends[i] {
                FinishResult::Interrupted { at, error } => (batch[i].lease.id, *at, error),
                _ => unreachable!("picked interruptions only"),
            };
            let q = interrupted(leases_update(chunk.iter().map(|&i| &batch[i].lease), now))
                .col_expr(
                    task::Column::RunAt,
                    by_id(chunk.iter().map(|&i| {
                        let (id, at, _) = interruption(i);
                        (id, Expr::value(sql(at)))
                    })),
                )
                .col_expr(
                    task::Column::LastError,
                    by_id(chunk.iter().map(|&i| {
                        let (id, _, error) = interruption(i);
                        (id, Expr::value(error.clone()))
                    })),
                );
            mark(
                applied,
                batch,
                chunk,
                &returning_ids(txn, q.build(backend)).await?,
            );
        }
        Ok(())
    }

    async fn release_in(
        &self,
        txn: &WriteTxn,
        leases: &[Lease],
        now: DateTime<Utc>,
    ) -> Step<Vec<FinishStatus>> {
        let mut answers = Vec::with_capacity(leases.len());
        for lease in leases {
            let mut n = lease_update(lease, now)
                .filter(task::Column::CancelRequestedAt.is_null())
                .col_expr(task::Column::State, Expr::value(TaskState::Pending.code()))
                .col_expr(task::Column::RunAt, Expr::value(sql(now)))
                .col_expr(task::Column::Attempts, attempt_given_back())
                .exec(&**txn)
                .await?
                .rows_affected;
            if n == 0 {
                // Never started, and cancelled meanwhile: nothing to run again.
                n = lease_update(lease, now)
                    .filter(task::Column::CancelRequestedAt.is_not_null())
                    .col_expr(
                        task::Column::State,
                        Expr::value(TaskState::Cancelled.code()),
                    )
                    .col_expr(task::Column::RunAt, null_time())
                    .col_expr(task::Column::Attempts, attempt_given_back())
                    .exec(&**txn)
                    .await?
                    .rows_affected;
            }
            answers.push(if n == 1 {
                FinishStatus::Applied
            } else {
                FinishStatus::LeaseLost
            });
        }
        Ok(answers)
    }

    async fn reset_in(
        &self,
        txn: &WriteTxn,
        target: &ResetTarget,
        now: DateTime<Utc>,
    ) -> Step<u64> {
        let rerun = |q: sea_orm::UpdateMany<task::Entity>| {
            q.col_expr(task::Column::State, Expr::value(TaskState::Pending.code()))
                .col_expr(task::Column::Attempts, Expr::value(0))
                .col_expr(task::Column::Interruptions, Expr::value(0))
                .col_expr(task::Column::RunAt, Expr::value(sql(now)))
                .col_expr(task::Column::LastError, Expr::value(Option::<String>::None))
                .col_expr(task::Column::CancelRequestedAt, null_time())
        };
        match target {
            ResetTarget::One(t) => {
                for _ in 0..OPTIMISTIC_TRIES {
                    let m = find(&**txn, t).await?;
                    let r = m.clone().into_record()?;
                    r.check_reset(now)?;
                    let n = rerun(guarded_update(m.id, m.version, now))
                        .exec(&**txn)
                        .await?
                        .rows_affected;
                    if n == 1 {
                        log_lost_run(&**txn, &r, now, false).await?;
                        return Ok(1);
                    }
                }
                Err(lost_races())
            }
            ResetTarget::Matching(filter) => {
                let resettable = [TaskState::Failed, TaskState::Cancelled];
                let states: Vec<TaskState> = if filter.states.is_empty() {
                    resettable.to_vec()
                } else {
                    resettable
                        .into_iter()
                        .filter(|s| filter.states.contains(s))
                        .collect()
                };
                if states.is_empty() {
                    return Ok(0);
                }
                let mut f = filter.clone();
                f.states = states;
                let n = rerun(
                    task::Entity::update_many()
                        .col_expr(
                            task::Column::Version,
                            Expr::col(task::Column::Version).add(1),
                        )
                        .col_expr(task::Column::UpdatedAt, Expr::value(sql(now))),
                )
                .filter(task_condition(&f, txn.get_database_backend()))
                .exec(&**txn)
                .await?
                .rows_affected;
                Ok(n)
            }
            other => Err(Fail::Task(Error::InvalidInput(format!(
                "taskrow-sql cannot reset {other:?}: update taskrow-sql"
            )))),
        }
    }

    async fn cancel_in(
        &self,
        txn: &WriteTxn,
        target: &TaskRef,
        now: DateTime<Utc>,
    ) -> Step<TaskRecord> {
        for _ in 0..OPTIMISTIC_TRIES {
            let m = find(&**txn, target).await?;
            let r = m.clone().into_record()?;
            match r.check_cancel(now)? {
                CancelAction::Cancel => {}
                CancelAction::Mark => {
                    // Running under a live lease: its worker stops it at its next heartbeat.
                    let n = guarded_update(m.id, m.version, now)
                        .col_expr(task::Column::CancelRequestedAt, Expr::value(sql(now)))
                        .exec(&**txn)
                        .await?
                        .rows_affected;
                    if n == 1 {
                        let marked = task::Model {
                            cancel_requested_at: Some(sql(now)),
                            version: m.version + 1,
                            updated_at: sql(now),
                            ..m
                        };
                        return Ok(marked.into_record()?);
                    }
                    continue;
                }
                _ => return Ok(r),
            }
            let n = guarded_update(m.id, m.version, now)
                .col_expr(
                    task::Column::State,
                    Expr::value(TaskState::Cancelled.code()),
                )
                .col_expr(task::Column::RunAt, null_time())
                .exec(&**txn)
                .await?
                .rows_affected;
            if n == 1 {
                log_lost_run(&**txn, &r, now, false).await?;
                let cancelled = task::Model {
                    state: TaskState::Cancelled.code(),
                    run_at: None,
                    version: m.version + 1,
                    updated_at: sql(now),
                    ..m
                };
                return Ok(cancelled.into_record()?);
            }
        }
        Err(lost_races())
    }

    async fn delete_in(
        &self,
        txn: &WriteTxn,
        target: &TaskRef,
        now: DateTime<Utc>,
    ) -> Step<TaskRecord> {
        for _ in 0..OPTIMISTIC_TRIES {
            let m = find(&**txn, target).await?;
            let r = m.clone().into_record()?;
            r.check_delete(now)?;
            let n = task::Entity::delete_many()
                .filter(task::Column::Id.eq(m.id))
                .filter(task::Column::Version.eq(m.version))
                .exec(&**txn)
                .await?
                .rows_affected;
            if n == 1 {
                log_lost_run(&**txn, &r, now, false).await?;
                return Ok(r);
            }
        }
        Err(lost_races())
    }
}

/// A read-decide-write operation lost every race for its row.
fn lost_races() -> Fail {
    Fail::Task(Error::backend(
        true,
        "the task kept changing while being updated (other writers won every try); retry",
    ))
}

/// The first code of `chunk` that the table holds already.
async fn first_taken<C: ConnectionTrait>(
    conn: &C,
    chunk: &[NewTask],
) -> Result<Option<String>, DbErr> {
    let taken: HashSet<String> = task::Entity::find()
        .select_only()
        .column(task::Column::Code)
        .filter(task::Column::Code.is_in(chunk.iter().map(|t| t.code.clone())))
        .into_tuple::<String>()
        .all(conn)
        .await?
        .into_iter()
        .collect();
    Ok(chunk
        .iter()
        .find(|t| taken.contains(&t.code))
        .map(|t| t.code.clone()))
}

#[async_trait]
impl<D: Dialect> TaskStore for SqlStore<D> {
    async fn insert(&self, task: NewTask) -> Result<TaskRecord> {
        validate(&task)?;
        let task = &task;
        // One statement is atomic on its own: an autocommit `INSERT`, no transaction around
        // it (on SQLite under the store's writer lock, as every write of the store).
        self.retrying(|| async move {
            let _writer = self.dialect.write_lock().await?;
            insert_row(&*self.dialect, &self.db, task, false).await
        })
        .await
    }

    async fn insert_many(&self, tasks: Vec<NewTask>) -> Result<u64> {
        for t in &tasks {
            validate(t)?;
        }
        let mut seen = HashSet::with_capacity(tasks.len());
        if let Some(dup) = tasks.iter().find(|t| !seen.insert(t.code.as_str())) {
            return Err(Error::DuplicateCode(dup.code.clone()));
        }
        if tasks.is_empty() {
            return Ok(0);
        }
        let tasks = &tasks[..];
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = self.insert_many_in(&txn, tasks).await;
            end(txn, r).await
        })
        .await
    }

    async fn insert_if_absent(&self, task: NewTask) -> Result<(TaskRecord, bool)> {
        validate(&task)?;
        let target = TaskRef::Code(task.code.clone());
        let (task, target) = (&task, &target);
        let r = self
            .retrying(|| async move {
                let txn = self.begin().await?;
                let r = match find(&*txn, target).await {
                    Ok(m) => m.into_record().map(|r| (r, false)).map_err(Fail::Task),
                    Err(Fail::Task(Error::NotFound(_))) => {
                        insert_row(&*self.dialect, &*txn, task, true)
                            .await
                            .map(|r| (r, true))
                    }
                    Err(f) => Err(f),
                };
                end(txn, r).await
            })
            .await;
        match r {
            // Inserted by someone else between the read and the insert (MySQL).
            Err(Error::DuplicateCode(_)) => Ok((self.get(target).await?, false)),
            other => other,
        }
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Vec<TaskRecord>> {
        validate_worker_id(&req.worker)?;
        if req.limit == 0 {
            return Ok(Vec::new());
        }
        let now = stored(req.now);
        let until = stored(add(now, req.lease));
        let rows = self
            .retrying(|| async move {
                // A new fencing token for every try: a try that rolled back never used its own.
                let claim = Claim::new(req.worker.clone(), now, until);
                let txn = self.begin().await?;
                let r = crate::claim::claim(&*self.dialect, &txn, req, &claim)
                    .await
                    .map_err(Fail::Db);
                end(txn, r).await
            })
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            match row.clone().into_record() {
                Ok(r) => claimed.push(r),
                // One unreadable row must not hold back the batch it was claimed with (nor
                // come back with it after every lease expiry): fail it on its own. Should
                // that fail too, the rest of the batch (committed as claimed) still goes to
                // the worker, and a later claim, after this lease, tries the row again.
                Err(e) => {
                    let id = row.id;
                    if let Err(fail) = self.fail_unreadable(row, &e, &req.worker, now).await {
                        tracing::error!(id, error = %fail, "taskrow: cannot fail an unreadable claimed task row; a later claim will try again after its lease");
                    }
                }
            }
        }
        Ok(claimed)
    }

    async fn claim_one(&self, target: &TaskRef, req: &ClaimOne) -> Result<TaskRecord> {
        validate_worker_id(&req.worker)?;
        if let Some(claimed) = self.claim_pending_one(target, req).await? {
            return claimed;
        }
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = self.claim_one_in(&txn, target, req).await;
            end(txn, r).await
        })
        .await?
    }

    async fn finish(&self, batch: Vec<Finish>, now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        let ends = batch
            .iter()
            .map(|f| f.result.normalized())
            .collect::<Vec<_>>();
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let now = stored(now);
        let caps = self
            .dialect
            .capabilities(&self.db)
            .await
            .map_err(|e| self.map_db_error(e))?;
        let (batch, ends) = (&batch[..], &ends[..]);
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = self.finish_in(&txn, batch, ends, now, caps).await;
            end(txn, r).await
        })
        .await
    }

    async fn release(&self, leases: &[Lease], now: DateTime<Utc>) -> Result<Vec<FinishStatus>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let now = stored(now);
        let answers = self
            .retrying(|| async move {
                let txn = self.begin().await?;
                let r = self.release_in(&txn, leases, now).await;
                end(txn, r).await
            })
            .await?;
        if answers.contains(&FinishStatus::Applied) {
            self.notify_due().await;
        }
        Ok(answers)
    }

    async fn extend_lease(
        &self,
        lease: Lease,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<ExtendStatus> {
        let (until, now) = (stored(until), stored(now));
        // Guarded by the claim token, which a heartbeat leaves as it is: a repeat (after a
        // lost reply) holds as well.
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = async {
                let n = lease_update(&lease, now)
                    .col_expr(task::Column::RunAt, Expr::value(sql(until)))
                    .exec(&*txn)
                    .await?
                    .rows_affected;
                if n != 1 {
                    return Err(Fail::Task(Error::LeaseLost { id: lease.id }));
                }
                // The row is locked by the update (SQLite: the writer is held): a cancel
                // commits before it or after this transaction.
                let requested: Option<Option<chrono::NaiveDateTime>> = task::Entity::find()
                    .select_only()
                    .column(task::Column::CancelRequestedAt)
                    .filter(task::Column::Id.eq(lease.id))
                    .into_tuple()
                    .one(&*txn)
                    .await?;
                Ok(match requested.flatten() {
                    Some(_) => ExtendStatus::CancelRequested,
                    None => ExtendStatus::Extended,
                })
            }
            .await;
            end(txn, r).await
        })
        .await
    }

    async fn get(&self, target: &TaskRef) -> Result<TaskRecord> {
        let m = find(&self.db, target).await.map_err(|f| self.error(f))?;
        m.into_record()
    }

    async fn list(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<TaskRecord>> {
        let mut q = task::Entity::find()
            .filter(task_condition(filter, self.db.get_database_backend()))
            .order_by_asc(task::Column::Id)
            .limit(page.limit);
        if let Some(after) = page.after_id {
            q = q.filter(task::Column::Id.gt(after));
        }
        let rows = q.all(&self.db).await.map_err(|e| self.error(e.into()))?;
        rows.into_iter().map(task::Model::into_record).collect()
    }

    async fn list_rows(&self, filter: &TaskFilter, page: &Page) -> Result<Vec<ListedRow>> {
        let mut q = task::Entity::find()
            .filter(task_condition(filter, self.db.get_database_backend()))
            .order_by_asc(task::Column::Id)
            .limit(page.limit);
        if let Some(after) = page.after_id {
            q = q.filter(task::Column::Id.gt(after));
        }
        let rows = q.all(&self.db).await.map_err(|e| self.error(e.into()))?;
        rows.into_iter().map(listed).collect()
    }

    async fn unreadable(&self, page: &Page) -> Result<Vec<UnreadableRow>> {
        let mut q = task::Entity::find()
            .filter(unreadable_condition())
            .order_by_asc(task::Column::Id)
            .limit(page.limit);
        if let Some(after) = page.after_id {
            q = q.filter(task::Column::Id.gt(after));
        }
        let rows = q.all(&self.db).await.map_err(|e| self.error(e.into()))?;
        let mut found = Vec::new();
        for m in rows {
            if let ListedRow::Unreadable(u) = listed(m)? {
                found.push(u);
            }
        }
        Ok(found)
    }

    async fn logs(&self, filter: &LogFilter) -> Result<Vec<TaskLog>> {
        let tail = filter.newest && filter.limit.is_some();
        let mut q = task_log::Entity::find().filter(log_condition(filter));
        q = if tail {
            q.order_by_desc(task_log::Column::Id)
        } else {
            q.order_by_asc(task_log::Column::Id)
        };
        if let Some(n) = filter.limit {
            q = q.limit(n);
        }
        let mut rows = q.all(&self.db).await.map_err(|e| self.error(e.into()))?;
        if tail {
            rows.reverse();
        }
        rows.into_iter().map(task_log::Model::into_log).collect()
    }

    async fn counts(&self) -> Result<Vec<StateCount>> {
        let rows: Vec<(String, String, i16, i16, i64)> = task::Entity::find()
            .select_only()
            .column(task::Column::TaskType)
            .column(task::Column::Queue)
            .column(task::Column::Priority)
            .column(task::Column::State)
            // `COUNT(*)`, not of a column: the counting index (type, queue, priority, state)
            // answers alone, in its own order (PostgreSQL would read every row for `id`).
            .column_as(Expr::cust("COUNT(*)"), "count")
            .group_by(task::Column::TaskType)
            .group_by(task::Column::Queue)
            .group_by(task::Column::Priority)
            .group_by(task::Column::State)
            .order_by_asc(task::Column::TaskType)
            .order_by_asc(task::Column::Queue)
            .order_by_asc(task::Column::Priority)
            .order_by_asc(task::Column::State)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(|e| self.error(e.into()))?;
        Ok(rows
            .into_iter()
            .filter_map(|(task_type, queue, priority, state, count)| {
                let state = state_of_count(state, &task_type)?;
                let Some(priority) = Priority::from_code(priority) else {
                    tracing::warn!(priority, task_type, "taskrow: tasks with an unknown priority are left out of the counts; `taskrow list` shows them");
                    return None;
                };
                Some(StateCount {
                    state,
                    priority,
                    task_type,
                    queue,
                    count: u64::try_from(count).unwrap_or(0),
                })
            })
            .collect())
    }

    async fn set_queue_paused(
        &self,
        queue_name: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<()> {
        validate_queue(queue_name)?;
        let now = sql(stored(now));
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r: Step<()> = async {
                // A queue seen for the first time gets its row (in the state asked); an
                // existing row changes only when its state does, so its time says when it
                // last changed.
                queue::Entity::insert(queue::ActiveModel {
                    name: Set(queue_name.to_owned()),
                    paused: Set(paused),
                    changed_at: Set(now),
                })
                .on_conflict(
                    // `name = name` on a taken name: a no-op every database accepts (MariaDB
                    // has no `DO NOTHING`).
                    OnConflict::column(queue::Column::Name)
                        .update_column(queue::Column::Name)
                        .to_owned(),
                )
                .exec_without_returning(&*txn)
                .await?;
                queue::Entity::update_many()
                    .col_expr(queue::Column::Paused, Expr::value(paused))
                    .col_expr(queue::Column::ChangedAt, Expr::value(now))
                    .filter(queue::Column::Name.eq(queue_name))
                    .filter(queue::Column::Paused.ne(paused))
                    .exec(&*txn)
                    .await?;
                Ok(())
            }
            .await;
            end(txn, r).await
        })
        .await?;
        if !paused {
            self.notify_due().await;
        }
        Ok(())
    }

    async fn queues(&self) -> Result<Vec<QueueInfo>> {
        let counts: Vec<(String, i16, i64)> = task::Entity::find()
            .select_only()
            .column(task::Column::Queue)
            .column(task::Column::State)
            .column_as(task::Column::Id.count(), "count")
            .group_by(task::Column::Queue)
            .group_by(task::Column::State)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(|e| self.error(e.into()))?;
        let rows = queue::Entity::find()
            .all(&self.db)
            .await
            .map_err(|e| self.error(e.into()))?;
        let mut by_name: std::collections::BTreeMap<String, QueueInfo> = rows
            .into_iter()
            .map(|q| {
                let info = QueueInfo::new(
                    q.name.clone(),
                    q.paused,
                    Some(crate::time::from_sql(q.changed_at)),
                    Vec::new(),
                );
                (q.name, info)
            })
            .collect();
        for (name, state, count) in counts {
            let Some(state) = state_of_count(state, &name) else {
                continue;
            };
            by_name
                .entry(name.clone())
                .or_insert_with(|| QueueInfo::new(name, false, None, Vec::new()))
                .counts
                .push((state, u64::try_from(count).unwrap_or(0)));
        }
        Ok(by_name
            .into_values()
            .map(|mut q| {
                q.counts.sort();
                q
            })
            .collect())
    }

    async fn reset(&self, target: &ResetTarget, now: DateTime<Utc>) -> Result<u64> {
        let now = stored(now);
        let n = self
            .retrying(|| async move {
                let txn = self.begin().await?;
                let r = self.reset_in(&txn, target, now).await;
                end(txn, r).await
            })
            .await?;
        if n > 0 {
            self.notify_due().await;
        }
        Ok(n)
    }

    async fn cancel(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
        let now = stored(now);
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = self.cancel_in(&txn, target, now).await;
            end(txn, r).await
        })
        .await
    }

    async fn delete(&self, target: &TaskRef, now: DateTime<Utc>) -> Result<TaskRecord> {
        let now = stored(now);
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = self.delete_in(&txn, target, now).await;
            end(txn, r).await
        })
        .await
    }

    async fn delete_unreadable(&self, target: &TaskRef) -> Result<UnreadableRow> {
        self.retrying(|| async move {
            let _writer = self.dialect.write_lock().await?;
            let m = find(&self.db, target).await?;
            let (id, version) = (m.id, m.version);
            let row = match listed(m)? {
                ListedRow::Unreadable(u) => u,
                ListedRow::Task(t) => {
                    return Err(Fail::Task(UnreadableRow::readable(t.id, &t.code)));
                }
            };
            // Guarded by the version read: a row fixed meanwhile is not deleted.
            let n = task::Entity::delete_many()
                .filter(task::Column::Id.eq(id))
                .filter(task::Column::Version.eq(version))
                .exec(&self.db)
                .await?
                .rows_affected;
            if n == 1 { Ok(row) } else { Err(lost_races()) }
        })
        .await
    }

    async fn purge(&self, purge: &Purge) -> Result<PurgeReport> {
        if let Some(s) = purge.states.iter().find(|s| {
            !matches!(
                s,
                TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled
            )
        }) {
            return Err(Error::InvalidInput(format!(
                "purge removes finished tasks only (succeeded, failed, cancelled), not {s} ones: \
                 cancel or delete those instead"
            )));
        }
        let before = stored(purge.before);
        if purge.dry_run {
            return self.purge_count(purge, before).await;
        }
        self.retrying(|| async move {
            let txn = self.begin().await?;
            let r = async {
                let mut report = PurgeReport::default();
                if !purge.states.is_empty() {
                    let old = Condition::all()
                        .add(task::Column::State.is_in(purge.states.iter().map(|s| s.code())))
                        .add(task::Column::UpdatedAt.lt(sql(before)));
                    let mut q = task::Entity::delete_many().filter(old.clone());
                    if let Some(n) = purge.limit {
                        // The oldest ids first; the delete repeats the condition, so a row
                        // changed since the select stays.
                        let ids: Vec<i64> = task::Entity::find()
                            .select_only()
                            .column(task::Column::Id)
                            .filter(old)
                            .order_by_asc(task::Column::Id)
                            .limit(n)
                            .into_tuple()
                            .all(&*txn)
                            .await?;
                        q = q.filter(task::Column::Id.is_in(ids));
                    }
                    report.tasks = q.exec(&*txn).await?.rows_affected;
                }
                if purge.logs {
                    let old = task_log::Column::StartedAt.lt(sql(before));
                    let mut q = task_log::Entity::delete_many().filter(old.clone());
                    if let Some(n) = purge.limit {
                        let ids: Vec<i64> = task_log::Entity::find()
                            .select_only()
                            .column(task_log::Column::Id)
                            .filter(old)
                            .order_by_asc(task_log::Column::Id)
                            .limit(n)
                            .into_tuple()
                            .all(&*txn)
                            .await?;
                        q = q.filter(task_log::Column::Id.is_in(ids));
                    }
                    report.logs = q.exec(&*txn).await?.rows_affected;
                }
                Ok(report)
            }
            .await;
            end(txn, r).await
        })
        .await
    }

    /// Reads taskrow's migration history: see [`crate::schema`]'s rules (both history tables,
    /// `NotMigrated` without tables, a warning when tables exist without history).
    async fn check_schema(&self) -> Result<()> {
        crate::schema::check(&self.db)
            .await
            .map_err(|e| self.error(Fail::Db(e)))?
    }

    fn has_database_time(&self) -> bool {
        D::DATABASE_TIME.is_some()
    }

    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.dialect.wakeups()
    }

    /// The dialect's [`Dialect::DATABASE_TIME`] query, on the pool.
    async fn database_time(&self) -> Result<Option<DateTime<Utc>>> {
        let Some(sql) = D::DATABASE_TIME else {
            return Ok(None);
        };
        let row = self
            .db
            .query_one_raw(Statement::from_string(self.db.get_database_backend(), sql))
            .await
            .map_err(|e| self.error(Fail::Db(e)))?
            .ok_or_else(|| Error::backend(true, "the database's time query returned no row"))?;
        let t: chrono::NaiveDateTime = row.try_get("", "t").map_err(|e| self.error(Fail::Db(e)))?;
        Ok(Some(crate::time::from_sql(t)))
    }

    async fn register_schedule(&self, schedule: &NewSchedule) -> Result<ScheduleRecord> {
        self.register_schedule_sql(schedule).await
    }

    async fn advance_schedule(&self, advance: &ScheduleAdvance) -> Result<AdvanceStatus> {
        self.advance_schedule_sql(advance).await
    }

    async fn schedules(&self) -> Result<Vec<ScheduleRecord>> {
        self.schedules_sql().await
    }

    async fn remove_schedule(&self, name: &str) -> Result<ScheduleRecord> {
        self.remove_schedule_sql(name).await
    }

    async fn beat_worker(&self, beat: &WorkerBeat) -> Result<()> {
        self.beat_worker_sql(beat).await
    }

    async fn workers(&self, now: DateTime<Utc>) -> Result<Vec<WorkerRecord>> {
        self.workers_sql(now).await
    }

    async fn remove_worker(&self, id: &str) -> Result<bool> {
        self.remove_worker_sql(id).await
    }

    async fn prune_workers(&self, gone_before: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.prune_workers_sql(gone_before, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_grows_the_last_character_that_can() {
        assert_eq!(prefix_successor("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_successor("a-").as_deref(), Some("a."));
        assert_eq!(prefix_successor("ü").as_deref(), Some("ý"));
        assert_eq!(prefix_successor("订单").as_deref(), Some("订卖"));
        assert_eq!(prefix_successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(
            prefix_successor(&format!("a{}", char::MAX)).as_deref(),
            Some("b")
        );
        assert_eq!(prefix_successor(&char::MAX.to_string()), None);
    }
}

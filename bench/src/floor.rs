//! The floor: the same workloads with plain SQL through `sea_orm::sqlx`, on taskrow's own tables
//! and indexes, with the best statements for each database and nothing else.
//!
//! - SQLite: one in-process writer lock (as taskrow keeps; without it concurrent writers meet
//!   `SQLITE_BUSY` and sleep in the busy handler); the claim is one
//!   `UPDATE … WHERE id IN (SELECT … ORDER BY priority, run_at, id LIMIT n) RETURNING …`.
//! - MariaDB: a pool whose sessions are `READ COMMITTED` (set once per connection); the claim is
//!   `BEGIN; SELECT … ORDER BY priority, run_at, id LIMIT n FOR UPDATE SKIP LOCKED; UPDATE … WHERE id IN
//!   (…); COMMIT` — the locking `SELECT` reads everything a runner needs.
//! - PostgreSQL: a pool of 10 connections without the ping before each use; the claim is one
//!   autocommit statement, `UPDATE … WHERE id IN (SELECT id … ORDER BY priority, run_at, id LIMIT n FOR
//!   UPDATE SKIP LOCKED) RETURNING …`; deletes take an array, `DELETE … WHERE id = ANY($1)`;
//!   a `LISTEN` on taskrow's channel (the table's insert trigger notifies it) wakes the floor's
//!   claimer in the cross-process pickup.
//! - Delete of a finished batch: one `DELETE … WHERE id IN (…)` (`= ANY($1)` on PostgreSQL).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use taskrow::NewTask;
use taskrow::chrono::{DateTime, NaiveDateTime, Utc};
use taskrow_sql::sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use taskrow_sql::sea_orm::sqlx::postgres::{
    PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow,
};
use taskrow_sql::sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use taskrow_sql::sea_orm::sqlx::{self, AssertSqlSafe, Executor, Row};
use taskrow_sql::time::sql;
use tokio::sync::Mutex;

use crate::BoxResult;

/// One row to insert, in the form taskrow stores it (built from a [`NewTask`]).
#[derive(Debug, Clone)]
pub struct FloorRow {
    pub code: String,
    pub task_type: String,
    pub payload: String,
    pub name: String,
    pub description: Option<String>,
    pub biz_type: String,
    pub max_attempts: Option<i32>,
    pub retry_policy: String,
    pub timeout_ms: Option<i64>,
    pub on_success: i16,
    pub dispatch: i16,
    pub run_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
    pub queue: String,
    pub priority: i16,
}

impl FloorRow {
    pub fn of(t: &NewTask) -> Self {
        Self {
            code: t.code.clone(),
            task_type: t.task_type.clone(),
            payload: t.payload.clone(),
            name: t.name.clone(),
            description: t.description.clone(),
            biz_type: t.biz_type.clone(),
            max_attempts: t.max_attempts.map(|m| i32::try_from(m).unwrap_or(i32::MAX)),
            retry_policy: t.retry.to_json(),
            timeout_ms: t
                .timeout
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            on_success: t.on_success.code(),
            dispatch: t.dispatch.code(),
            run_at: sql(t.run_at),
            created_at: sql(t.created_at),
            queue: t.queue.clone(),
            priority: t.priority.code(),
        }
    }
}

/// A claimed row: what a runner needs to run the task and log the run.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: i64,
    pub code: String,
    pub task_type: String,
    pub payload: String,
    pub attempts: i32,
}

const INSERT_HEAD: &str = "INSERT INTO taskrow_task (code, task_type, payload, name, description, \
     biz_type, state, attempts, max_attempts, retry_policy, timeout_ms, on_success, dispatch, \
     run_at, lease_owner, last_error, version, created_at, updated_at, queue, priority) VALUES ";
const INSERT_VALUES: &str = "(?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?, NULL, NULL, 0, ?, ?, ?, ?)";
const CLAIM_COLUMNS: &str = "id, code, task_type, payload, attempts";
const LOG_HEAD: &str = "INSERT INTO taskrow_task_log (task_id, code, task_type, attempt, \
     started_at, duration_ms, outcome, error, worker) VALUES ";
const LOG_VALUES: &str = "(?, ?, ?, ?, ?, 0, 1, NULL, ?)";
/// Most rows in one multi-row `INSERT`.
pub const CHUNK: usize = 500;

macro_rules! bind_row {
    ($q:expr, $r:expr) => {
        $q.bind($r.code.as_str())
            .bind($r.task_type.as_str())
            .bind($r.payload.as_str())
            .bind($r.name.as_str())
            .bind($r.description.as_deref())
            .bind($r.biz_type.as_str())
            .bind($r.max_attempts)
            .bind($r.retry_policy.as_str())
            .bind($r.timeout_ms)
            .bind($r.on_success)
            .bind($r.dispatch)
            .bind($r.run_at)
            .bind($r.created_at)
            .bind($r.created_at)
            .bind($r.queue.as_str())
            .bind($r.priority)
    };
}

macro_rules! bind_log {
    ($q:expr, $c:expr, $now:expr, $worker:expr) => {
        $q.bind($c.id)
            .bind($c.code.as_str())
            .bind($c.task_type.as_str())
            .bind($c.attempts)
            .bind($now)
            .bind($worker)
    };
}

fn insert_sql(rows: usize) -> String {
    let mut s = String::with_capacity(INSERT_HEAD.len() + rows * (INSERT_VALUES.len() + 2));
    s.push_str(INSERT_HEAD);
    for i in 0..rows {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(INSERT_VALUES);
    }
    s
}

fn log_sql(rows: usize) -> String {
    let mut s = String::from(LOG_HEAD);
    for i in 0..rows {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(LOG_VALUES);
    }
    s
}

fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 3);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('?');
    }
    s
}

fn claimed_of_sqlite(r: &sqlx::sqlite::SqliteRow) -> Result<Claimed, sqlx::Error> {
    Ok(Claimed {
        id: r.try_get(0)?,
        code: r.try_get(1)?,
        task_type: r.try_get(2)?,
        payload: r.try_get(3)?,
        attempts: r.try_get(4)?,
    })
}

/// `sql` with PostgreSQL's numbered parameters (`$1`, `$2`, …) for `?` (the floor's statements
/// have no `?` elsewhere).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 4);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

fn claimed_of_postgres(r: &PgRow) -> Result<Claimed, sqlx::Error> {
    Ok(Claimed {
        id: r.try_get(0)?,
        code: r.try_get(1)?,
        task_type: r.try_get(2)?,
        payload: r.try_get(3)?,
        attempts: r.try_get(4)?,
    })
}

fn claimed_of_mysql(r: &sqlx::mysql::MySqlRow) -> Result<Claimed, sqlx::Error> {
    Ok(Claimed {
        id: r.try_get(0)?,
        code: r.try_get(1)?,
        task_type: r.try_get(2)?,
        payload: r.try_get(3)?,
        attempts: r.try_get(4)?,
    })
}

/// Plain SQL on one database.
#[derive(Debug, Clone)]
pub enum Floor {
    Sqlite {
        pool: SqlitePool,
        writer: Arc<Mutex<()>>,
    },
    Mysql {
        pool: MySqlPool,
    },
    Postgres {
        pool: PgPool,
    },
}

impl Floor {
    /// A pool on the SQLite file at `url`, tuned as taskrow tunes its own (WAL,
    /// `synchronous = NORMAL`, 10 s busy timeout, 8 connections).
    pub async fn sqlite(url: &str) -> BoxResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .busy_timeout(Duration::from_secs(10))
            .synchronous(SqliteSynchronous::Normal)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        Ok(Floor::Sqlite {
            pool,
            writer: Arc::new(Mutex::new(())),
        })
    }

    /// A pool on the MariaDB/MySQL database at `url` (10 connections, as taskrow's), each
    /// session `READ COMMITTED`.
    pub async fn mysql(url: &str) -> BoxResult<Self> {
        let options = MySqlConnectOptions::from_str(url)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(10)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Floor::Mysql { pool })
    }

    /// A pool on the PostgreSQL database at `url` (10 connections, as taskrow's), whose
    /// connections are handed out without a ping (as taskrow's are, unless idle for 1 s), at
    /// the server's default isolation, `READ COMMITTED`.
    pub async fn postgres(url: &str) -> BoxResult<Self> {
        let options = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Floor::Postgres { pool })
    }

    pub async fn close(&self) {
        match self {
            Floor::Sqlite { pool, .. } => pool.close().await,
            Floor::Mysql { pool } => pool.close().await,
            Floor::Postgres { pool } => pool.close().await,
        }
    }

    /// PostgreSQL only: a connection listening on taskrow's notify channel, which every insert
    /// into `taskrow_task` notifies (at commit), the floor's inserts included.
    pub async fn listen(&self) -> BoxResult<PgListener> {
        match self {
            Floor::Postgres { pool } => {
                let options = (*pool.connect_options()).clone();
                let mut listener = PgListener::connect_with(
                    &PgPoolOptions::new()
                        .max_connections(1)
                        .connect_lazy_with(options),
                )
                .await?;
                listener.listen(taskrow_migration::NOTIFY_CHANNEL).await?;
                Ok(listener)
            }
            _ => Err("LISTEN/NOTIFY is PostgreSQL's".into()),
        }
    }

    /// PostgreSQL only: the number of connections to this database with `application_name`.
    pub async fn sessions_named(&self, application_name: &str) -> BoxResult<i64> {
        match self {
            Floor::Postgres { pool } => Ok(sqlx::query_scalar(
                "SELECT COUNT(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = $1",
            )
            .bind(application_name)
            .fetch_one(pool)
            .await?),
            _ => Err("pg_stat_activity is PostgreSQL's".into()),
        }
    }

    /// Runs one statement without parameters.
    pub async fn exec(&self, statement: &str) -> BoxResult<u64> {
        let sql = AssertSqlSafe(statement.to_owned());
        Ok(match self {
            Floor::Sqlite { pool, writer } => {
                let _w = writer.lock().await;
                sqlx::query(sql).execute(pool).await?.rows_affected()
            }
            Floor::Mysql { pool } => sqlx::query(sql).execute(pool).await?.rows_affected(),
            Floor::Postgres { pool } => sqlx::query(sql).execute(pool).await?.rows_affected(),
        })
    }

    /// An empty write transaction (`BEGIN IMMEDIATE; COMMIT` on SQLite, under the writer lock).
    pub async fn empty_transaction(&self) -> BoxResult<()> {
        match self {
            Floor::Sqlite { pool, writer } => {
                let _w = writer.lock().await;
                pool.begin_with("BEGIN IMMEDIATE").await?.commit().await?;
            }
            Floor::Mysql { pool } => pool.begin().await?.commit().await?,
            Floor::Postgres { pool } => pool.begin().await?.commit().await?,
        }
        Ok(())
    }

    /// `SELECT COUNT(*)` of a table.
    pub async fn count(&self, table: &str) -> BoxResult<i64> {
        let q = format!("SELECT COUNT(*) FROM {table}");
        Ok(match self {
            Floor::Sqlite { pool, .. } => {
                sqlx::query_scalar(AssertSqlSafe(q)).fetch_one(pool).await?
            }
            Floor::Mysql { pool } => sqlx::query_scalar(AssertSqlSafe(q)).fetch_one(pool).await?,
            Floor::Postgres { pool } => {
                sqlx::query_scalar(AssertSqlSafe(q)).fetch_one(pool).await?
            }
        })
    }

    /// Empties both taskrow tables (`TRUNCATE` on PostgreSQL, which leaves no dead rows for
    /// the next workload to step over).
    pub async fn clear(&self) -> BoxResult<()> {
        if let Floor::Postgres { .. } = self {
            self.exec("TRUNCATE taskrow_task, taskrow_task_log").await?;
            return Ok(());
        }
        self.exec("DELETE FROM taskrow_task").await?;
        self.exec("DELETE FROM taskrow_task_log").await?;
        Ok(())
    }

    /// Removes every row but the filler (whose `run_at` is at or after `filler_at`), and the log.
    pub async fn clear_all_but_filler(&self, filler_at: DateTime<Utc>) -> BoxResult<()> {
        let at = sql(filler_at);
        match self {
            Floor::Sqlite { pool, writer } => {
                let _w = writer.lock().await;
                sqlx::query("DELETE FROM taskrow_task WHERE run_at < ? OR run_at IS NULL")
                    .bind(at)
                    .execute(pool)
                    .await?;
            }
            Floor::Mysql { pool } => {
                sqlx::query("DELETE FROM taskrow_task WHERE run_at < ? OR run_at IS NULL")
                    .bind(at)
                    .execute(pool)
                    .await?;
            }
            Floor::Postgres { pool } => {
                sqlx::query("DELETE FROM taskrow_task WHERE run_at < $1 OR run_at IS NULL")
                    .bind(at)
                    .execute(pool)
                    .await?;
            }
        }
        self.exec("DELETE FROM taskrow_task_log").await?;
        Ok(())
    }

    /// One row, in its own (autocommit) transaction. Returns its id.
    pub async fn insert_one(&self, r: &FloorRow) -> BoxResult<i64> {
        let sql = AssertSqlSafe(insert_sql(1));
        Ok(match self {
            Floor::Sqlite { pool, writer } => {
                let _w = writer.lock().await;
                bind_row!(sqlx::query(sql), r)
                    .execute(pool)
                    .await?
                    .last_insert_rowid()
            }
            Floor::Mysql { pool } => {
                let id = bind_row!(sqlx::query(sql), r)
                    .execute(pool)
                    .await?
                    .last_insert_id();
                i64::try_from(id)?
            }
            Floor::Postgres { pool } => {
                let sql = AssertSqlSafe(format!("{} RETURNING id", numbered(&insert_sql(1))));
                let row = bind_row!(sqlx::query(sql), r).fetch_one(pool).await?;
                row.try_get(0)?
            }
        })
    }

    /// One row in an explicit transaction (`BEGIN; INSERT; COMMIT`), as an application's
    /// transaction carries a task. Returns its id.
    pub async fn insert_in_transaction(&self, r: &FloorRow) -> BoxResult<i64> {
        let sql = AssertSqlSafe(insert_sql(1));
        Ok(match self {
            Floor::Sqlite { pool, writer } => {
                let _w = writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let id = bind_row!(sqlx::query(sql), r)
                    .execute(&mut *tx)
                    .await?
                    .last_insert_rowid();
                tx.commit().await?;
                id
            }
            Floor::Mysql { pool } => {
                let mut tx = pool.begin().await?;
                let id = bind_row!(sqlx::query(sql), r)
                    .execute(&mut *tx)
                    .await?
                    .last_insert_id();
                tx.commit().await?;
                i64::try_from(id)?
            }
            Floor::Postgres { pool } => {
                let sql = AssertSqlSafe(format!("{} RETURNING id", numbered(&insert_sql(1))));
                let mut tx = pool.begin().await?;
                let row = bind_row!(sqlx::query(sql), r).fetch_one(&mut *tx).await?;
                tx.commit().await?;
                row.try_get(0)?
            }
        })
    }

    /// Many rows in one transaction, [`CHUNK`] rows per `INSERT`.
    pub async fn insert_batch(&self, rows: &[FloorRow]) -> BoxResult<()> {
        match self {
            Floor::Sqlite { pool, writer } => {
                let _w = writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                for chunk in rows.chunks(CHUNK) {
                    let mut q = sqlx::query(AssertSqlSafe(insert_sql(chunk.len())));
                    for r in chunk {
                        q = bind_row!(q, r);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Floor::Mysql { pool } => {
                let mut tx = pool.begin().await?;
                for chunk in rows.chunks(CHUNK) {
                    let mut q = sqlx::query(AssertSqlSafe(insert_sql(chunk.len())));
                    for r in chunk {
                        q = bind_row!(q, r);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Floor::Postgres { pool } => {
                let mut tx = pool.begin().await?;
                for chunk in rows.chunks(CHUNK) {
                    let mut q = sqlx::query(AssertSqlSafe(numbered(&insert_sql(chunk.len()))));
                    for r in chunk {
                        q = bind_row!(q, r);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Claims up to `limit` due rows (highest priority, then oldest due, first) for `worker` with a lease of `lease`.
    pub async fn claim(
        &self,
        limit: usize,
        worker: &str,
        lease: Duration,
    ) -> BoxResult<Vec<Claimed>> {
        let now = Utc::now();
        let (now_sql, until) = (sql(now), sql(now + lease));
        let limit = i64::try_from(limit)?;
        match self {
            Floor::Sqlite { pool, writer } => {
                let q = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE taskrow_task SET state = 1, attempts = attempts + 1, \
                     version = version + 1, lease_owner = ?, run_at = ?, updated_at = ? \
                     WHERE id IN (SELECT id FROM taskrow_task WHERE priority IN (0, 1, 2) \
                     AND run_at <= ? AND state IN (0, 1) \
                     ORDER BY priority, run_at, id LIMIT ?) RETURNING {CLAIM_COLUMNS}"
                )))
                .bind(worker)
                .bind(until)
                .bind(now_sql)
                .bind(now_sql)
                .bind(limit);
                let rows = {
                    let _w = writer.lock().await;
                    q.fetch_all(pool).await?
                };
                Ok(rows
                    .iter()
                    .map(claimed_of_sqlite)
                    .collect::<Result<_, _>>()?)
            }
            Floor::Mysql { pool } => {
                let mut tx = pool.begin().await?;
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "SELECT {CLAIM_COLUMNS} FROM taskrow_task WHERE priority IN (0, 1, 2) \
                     AND run_at <= ? AND state IN (0, 1) \
                     ORDER BY priority, run_at, id LIMIT ? FOR UPDATE SKIP LOCKED"
                )))
                .bind(now_sql)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                if rows.is_empty() {
                    tx.commit().await?;
                    return Ok(Vec::new());
                }
                let claimed = rows
                    .iter()
                    .map(claimed_of_mysql)
                    .collect::<Result<Vec<_>, _>>()?;
                let mut q = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE taskrow_task SET state = 1, attempts = attempts + 1, \
                     version = version + 1, lease_owner = ?, run_at = ?, updated_at = ? \
                     WHERE id IN ({})",
                    placeholders(claimed.len())
                )))
                .bind(worker)
                .bind(until)
                .bind(now_sql);
                for c in &claimed {
                    q = q.bind(c.id);
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(claimed
                    .into_iter()
                    .map(|mut c| {
                        c.attempts += 1;
                        c
                    })
                    .collect())
            }
            Floor::Postgres { pool } => {
                let rows = sqlx::query(AssertSqlSafe(format!(
                    "UPDATE taskrow_task SET state = 1, attempts = attempts + 1, \
                     version = version + 1, lease_owner = $1, run_at = $2, updated_at = $3 \
                     WHERE id IN (SELECT id FROM taskrow_task WHERE priority IN (0, 1, 2) \
                     AND run_at <= $3 AND state IN (0, 1) ORDER BY priority, run_at, id LIMIT $4 \
                     FOR UPDATE SKIP LOCKED) \
                     RETURNING {CLAIM_COLUMNS}"
                )))
                .bind(worker)
                .bind(until)
                .bind(now_sql)
                .bind(limit)
                .fetch_all(pool)
                .await?;
                Ok(rows
                    .iter()
                    .map(claimed_of_postgres)
                    .collect::<Result<_, _>>()?)
            }
        }
    }

    /// Claims one pending row by id (immediate dispatch); whether it was still pending.
    pub async fn claim_by_id(&self, id: i64, worker: &str, lease: Duration) -> BoxResult<bool> {
        let now = Utc::now();
        let (now_sql, until) = (sql(now), sql(now + lease));
        const Q: &str = "UPDATE taskrow_task SET state = 1, attempts = attempts + 1, \
             version = version + 1, lease_owner = ?, run_at = ?, updated_at = ? \
             WHERE id = ? AND state = 0";
        let n = match self {
            Floor::Sqlite { pool, writer } => {
                let _w = writer.lock().await;
                sqlx::query(Q)
                    .bind(worker)
                    .bind(until)
                    .bind(now_sql)
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
            Floor::Mysql { pool } => sqlx::query(Q)
                .bind(worker)
                .bind(until)
                .bind(now_sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
            Floor::Postgres { pool } => sqlx::query(AssertSqlSafe(numbered(Q)))
                .bind(worker)
                .bind(until)
                .bind(now_sql)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
        };
        Ok(n == 1)
    }

    /// Deletes finished rows: one `DELETE … WHERE id IN (…)`.
    pub async fn delete(&self, ids: &[i64]) -> BoxResult<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "DELETE FROM taskrow_task WHERE id IN ({})",
            placeholders(ids.len())
        );
        match self {
            Floor::Sqlite { pool, writer } => {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in ids {
                    q = q.bind(*id);
                }
                let _w = writer.lock().await;
                q.execute(pool).await?;
            }
            Floor::Mysql { pool } => {
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in ids {
                    q = q.bind(*id);
                }
                q.execute(pool).await?;
            }
            Floor::Postgres { pool } => {
                sqlx::query("DELETE FROM taskrow_task WHERE id = ANY($1)")
                    .bind(ids)
                    .execute(pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Deletes finished rows and writes their log rows, in one transaction: one `DELETE … IN`
    /// and one multi-row `INSERT` into the log.
    pub async fn delete_and_log(&self, done: &[Claimed], worker: &str) -> BoxResult<()> {
        if done.is_empty() {
            return Ok(());
        }
        let now = sql(Utc::now());
        let del = format!(
            "DELETE FROM taskrow_task WHERE id IN ({})",
            placeholders(done.len())
        );
        let log = log_sql(done.len());
        match self {
            Floor::Sqlite { pool, writer } => {
                let _w = writer.lock().await;
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let mut q = sqlx::query(AssertSqlSafe(del));
                for c in done {
                    q = q.bind(c.id);
                }
                q.execute(&mut *tx).await?;
                let mut q = sqlx::query(AssertSqlSafe(log));
                for c in done {
                    q = bind_log!(q, c, now, worker);
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Floor::Mysql { pool } => {
                let mut tx = pool.begin().await?;
                let mut q = sqlx::query(AssertSqlSafe(del));
                for c in done {
                    q = q.bind(c.id);
                }
                q.execute(&mut *tx).await?;
                let mut q = sqlx::query(AssertSqlSafe(log));
                for c in done {
                    q = bind_log!(q, c, now, worker);
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Floor::Postgres { pool } => {
                let ids: Vec<i64> = done.iter().map(|c| c.id).collect();
                let mut tx = pool.begin().await?;
                sqlx::query("DELETE FROM taskrow_task WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await?;
                let mut q = sqlx::query(AssertSqlSafe(numbered(&log)));
                for c in done {
                    q = bind_log!(q, c, now, worker);
                }
                q.execute(&mut *tx).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }
}

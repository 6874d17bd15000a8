//! [`MysqlDialect`]: `READ COMMITTED` transactions, MySQL's error numbers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use async_trait::async_trait;
use sea_orm::sqlx;
use sea_orm::sqlx::mysql::MySqlDatabaseError;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, IsolationLevel, RuntimeErr, Statement,
    TransactionTrait,
};
use taskrow::{ClaimRequest, Error, Result};
use taskrow_sql::claim::{Claim, Due};
use taskrow_sql::dialect::BeginError;
use taskrow_sql::entity::task;
use taskrow_sql::{Capabilities, Dialect, ErrorKind, WriteTxn};
use tokio::sync::OnceCell;

use taskrow_sql::wakeups::Wakeups;

/// MySQL's and MariaDB's side of the store.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct MysqlDialect {
    /// What the server can do, asked once (MariaDB has `DELETE … RETURNING`, MySQL does not).
    capabilities: Arc<OnceCell<Capabilities>>,
    /// The wake-ups for idle workers (none on a dialect made without a pool).
    wakeups: Arc<Wakeups>,
}

impl MysqlDialect {
    /// This dialect without wake-ups from other processes (see `listen.rs`): idle workers find
    /// other processes' tasks at their poll only, and the store holds no connection of its
    /// own for the check.
    pub fn without_wakeups(mut self) -> Self {
        self.wakeups = Arc::default();
        self
    }
}

/// A future that runs to its end even when its caller stops waiting: polled in place, and, if
/// dropped before it finished, finished on a task of its own (its output dropped). For steps
/// that must not stop halfway.
struct ToTheEnd<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    fut: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> Future for ToTheEnd<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let fut = self.fut.as_mut().expect("ToTheEnd polled after it ended");
        let out = ready!(fut.as_mut().poll(cx));
        self.fut = None;
        Poll::Ready(out)
    }
}

impl<F: Future + Send + 'static> Drop for ToTheEnd<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move { drop(fut.await) });
        }
    }
}

impl MysqlDialect {
    /// This dialect, taking the server to have `caps` instead of asking it: for a server that
    /// names itself oddly, or to run a MariaDB server the way taskrow runs MySQL 8
    /// (`Capabilities::NONE`: a statement per item where MariaDB could group them).
    pub fn assuming(mut self, caps: Capabilities) -> Self {
        self.capabilities = Arc::new(OnceCell::new_with(Some(caps)));
        self
    }
}

/// What a server of this `VERSION()` can do: MariaDB (which names itself in its version)
/// deletes with `RETURNING` since 10.0; MySQL has no `RETURNING`; neither updates with it.
pub(crate) fn capabilities_of(version: &str) -> Capabilities {
    Capabilities::NONE.delete_returning(version.to_ascii_lowercase().contains("mariadb"))
}

#[async_trait]
impl Dialect for MysqlDialect {
    const DATABASE_TIME: Option<&'static str> = Some("SELECT UTC_TIMESTAMP(6) AS t");

    const NAME: &'static str = "MySQL";

    async fn connect(url: &str) -> Result<DatabaseConnection> {
        crate::connect::open(url).await
    }

    fn for_connection(db: &DatabaseConnection) -> Result<Self> {
        match db.get_database_backend() {
            DbBackend::MySql => Ok(Self {
                wakeups: Arc::new(crate::listen::for_server(
                    (*db.get_mysql_connection_pool().connect_options()).clone(),
                )),
                ..Self::default()
            }),
            other => Err(Error::Config(format!(
                "MysqlStore needs a MySQL connection, not {other:?}: use the store for that database"
            ))),
        }
    }

    fn wakeups(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        self.wakeups.receiver()
    }

    /// `READ COMMITTED`, for this transaction only: a guarded update sees the latest committed
    /// version, and the claim's locking read takes no gap locks that would hide due rows from a
    /// second claimer or make writers wait for each other. `SET TRANSACTION ISOLATION LEVEL
    /// READ COMMITTED` goes before the `BEGIN` (one round trip more than a plain `BEGIN`), and
    /// the session keeps its own level: the pool is the application's too.
    ///
    /// The two statements run to the end even if the caller stops waiting between them (a
    /// timeout, a hard stop): a `SET TRANSACTION` without its `BEGIN` would leave the level
    /// pending for the connection's next transaction, which may be the application's.
    async fn begin_write(&self, db: &DatabaseConnection) -> Result<WriteTxn, BeginError> {
        let db = db.clone();
        let txn = ToTheEnd {
            fut: Some(Box::pin(async move {
                db.begin_with_config(Some(IsolationLevel::ReadCommitted), None)
                    .await
            })),
        }
        .await?;
        Ok(WriteTxn::new(txn, None))
    }

    /// A plain `BEGIN`: the application's transaction, at its session's level.
    async fn begin_task_transaction(
        &self,
        db: &DatabaseConnection,
    ) -> Result<WriteTxn, BeginError> {
        Ok(WriteTxn::begin(db, None).await?)
    }

    async fn capabilities(&self, db: &DatabaseConnection) -> Result<Capabilities, DbErr> {
        self.capabilities
            .get_or_try_init(|| async {
                let row = db
                    .query_one_raw(Statement::from_string(
                        DbBackend::MySql,
                        "SELECT CAST(VERSION() AS CHAR) AS v",
                    ))
                    .await?
                    .ok_or_else(|| DbErr::Custom("SELECT VERSION() returned no row".into()))?;
                let version: String = row.try_get("", "v")?;
                Ok(capabilities_of(&version))
            })
            .await
            .copied()
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

    fn classify(&self, err: &DbErr) -> ErrorKind {
        if let Some(kind) = ErrorKind::common(err) {
            return kind;
        }
        let (DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
        else {
            return ErrorKind::Other;
        };
        match &**e {
            sqlx::Error::Database(db) => match db.try_downcast_ref::<MySqlDatabaseError>() {
                Some(my) => kind_of(my.number()),
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

/// What a MySQL error number means for taskrow.
fn kind_of(number: u16) -> ErrorKind {
    match number {
        // Deadlock found; lock wait timeout exceeded.
        1213 | 1205 => ErrorKind::Contention,
        // Duplicate entry (and its older forms).
        1062 | 1022 | 1169 | 1586 => ErrorKind::UniqueViolation,
        // Table doesn't exist.
        1146 => ErrorKind::MissingTable,
        // Too many connections; server shutdown; connection killed; server gone away; lost
        // connection during query.
        1040 | 1053 | 1927 | 2006 | 2013 => ErrorKind::Connection,
        _ => ErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_deletes_with_returning_and_mysql_does_not() {
        for (version, delete) in [
            ("10.11.19-MariaDB-0+deb12u1", true),
            ("11.4.2-MariaDB", true),
            ("5.5.5-10.6.12-MariaDB-log", true),
            ("8.0.36", false),
            ("8.4.0-commercial", false),
        ] {
            let caps = capabilities_of(version);
            assert_eq!(caps.delete_returning, delete, "{version}");
            assert!(!caps.update_returning, "{version}");
        }
    }
}

//! Opening a MySQL pool for taskrow.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions};
use sea_orm::sqlx::{self, Connection};
use sea_orm::{DatabaseConnection, SqlxMySqlConnector};
use taskrow::{Error, Result};
use taskrow_sql::url::redact;

/// Most connections in the pool.
pub const POOL_SIZE: u32 = 10;

/// How long a call waits for a connection (and connecting waits for the server).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

fn bad_url(url: &str, reason: impl Into<String>) -> Error {
    Error::BadUrl {
        url: redact(url),
        reason: reason.into(),
    }
}

/// A pooled connection idle this long is pinged before it is used again; one used more recently
/// is handed out as it is (a connection that broke meanwhile fails that call with a transient
/// error, and is dropped from the pool).
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

/// Opens the pool for `url`, which must name a database. The sessions keep the server's
/// settings (its isolation level among them): the pool is the application's too, and
/// taskrow's own transactions set their level themselves (see `MysqlDialect::begin_write`).
pub(crate) async fn open(url: &str) -> Result<DatabaseConnection> {
    if !(url.starts_with("mysql://") || url.starts_with("mariadb://")) {
        return Err(bad_url(
            url,
            "taskrow-mysql opens `mysql://user:password@host:3306/database` URLs",
        ));
    }
    let options = MySqlConnectOptions::from_str(url).map_err(|e| bad_url(url, e.to_string()))?;
    if options.get_database().is_none() {
        return Err(bad_url(
            url,
            "no database named: add it to the URL's path (`mysql://user:password@host:3306/app`)",
        ));
    }
    let unreachable = |e: sqlx::Error| Error::Unreachable {
        url: redact(url),
        source: Box::new(e),
    };
    // One connection first, so that a wrong host, port, password or database fails at once
    // (the pool would keep trying until its acquire timeout).
    let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, MySqlConnection::connect_with(&options))
        .await
        .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
        .map_err(unreachable)?;
    let _ = probe.close().await;
    let pool = MySqlPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sqlx pings every connection before handing it out: a round trip before every store
        // call. Ping only one that sat idle long enough to have been dropped (a server
        // restart, `wait_timeout`, a proxy); a failed ping discards it and takes another.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_AFTER_IDLE {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(unreachable)?;
    Ok(SqlxMySqlConnector::from_sqlx_mysql_pool(pool))
}

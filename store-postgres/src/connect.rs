//! Opening a PostgreSQL pool for taskrow.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, PgSslMode};
use sea_orm::sqlx::{self, Connection};
use sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use taskrow::{Error, Result};
use taskrow_sql::url::redact;

/// Most connections in the pool (the LISTEN connection of [`crate::PostgresDialect`]'s
/// wake-ups is one more, outside it).
pub const POOL_SIZE: u32 = 10;

/// How long a call waits for a connection (and connecting waits for the server).
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection idle this long is pinged before it is used again; one used more recently
/// is handed out as it is (a connection that broke meanwhile fails that call with a transient
/// error, and is dropped from the pool).
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(1);

fn bad_url(url: &str, reason: impl Into<String>) -> Error {
    Error::BadUrl {
        url: redact(url),
        reason: reason.into(),
    }
}

/// Whether `url` is one this crate opens: `postgres://` or `postgresql://`.
pub fn is_postgres_url(url: &str) -> bool {
    let lower = url.get(..13).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// Opens the pool for `url`, which must name a database. The sessions keep the server's
/// settings (its default isolation level among them): the pool is the application's too, and
/// taskrow's own transactions are `READ COMMITTED` whatever the default is (see
/// `PostgresDialect::begin_write`).
///
/// **TLS** is set in the URL, as libpq sets it: `sslmode=disable|prefer|require|verify-ca|
/// verify-full` (`prefer`, the default, uses TLS where the server offers it), `sslrootcert=`
/// (the CA file that `verify-ca` and `verify-full` check the server's certificate against; the
/// webpki roots without it), `sslcert=` and `sslkey=` (a client certificate). It needs a TLS
/// implementation in sqlx: this crate's `rustls` feature (or any other crate of the build
/// turning sqlx's TLS on). Without one, `prefer` connects in plain text and the modes that
/// require TLS fail with [`Error::Config`] saying so. The LISTEN connection of the wake-ups
/// takes the pool's options, TLS included.
pub(crate) async fn open(url: &str) -> Result<DatabaseConnection> {
    if !is_postgres_url(url) {
        return Err(bad_url(
            url,
            "taskrow-postgres opens `postgres://user:password@host:5432/database` URLs \
             (`postgresql://` too)",
        ));
    }
    let options = PgConnectOptions::from_str(url).map_err(|e| bad_url(url, e.to_string()))?;
    if !names_database(url) {
        return Err(bad_url(
            url,
            "no database named: add it to the URL's path (`postgres://user:password@host:5432/app`)",
        ));
    }
    let unreachable = |e: sqlx::Error| Error::Unreachable {
        url: redact(url),
        source: Box::new(e),
    };
    // One connection first, so that a wrong host, port, password or database fails at once
    // (the pool would keep trying until its acquire timeout).
    let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
        .map_err(|e| match no_tls(&options, &e) {
            Some(config) => config,
            None => unreachable(e),
        })?;
    let _ = probe.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        // sqlx pings every connection before handing it out: a round trip before every store
        // call. Ping only one that sat idle long enough to have been dropped (a server
        // restart, `idle_session_timeout`, a proxy); a failed ping discards it and takes
        // another.
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
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

/// The error for a URL that requires TLS when sqlx was built without any: say which feature
/// turns it on, rather than report an unreachable server.
fn no_tls(options: &PgConnectOptions, e: &sqlx::Error) -> Option<Error> {
    let requires_tls = matches!(
        options.get_ssl_mode(),
        PgSslMode::Require | PgSslMode::VerifyCa | PgSslMode::VerifyFull
    );
    match e {
        sqlx::Error::Tls(inner)
            if requires_tls && inner.to_string().contains("without TLS support") =>
        {
            Some(Error::Config(format!(
                "the URL's `sslmode` requires TLS, and this build has no TLS: enable the \
                 `rustls` feature of taskrow-postgres (`taskrow-postgres = {{ version = \"…\", \
                 features = [\"rustls\"] }}`) ({inner})"
            )))
        }
        _ => None,
    }
}

/// Whether `url` names its database: in its path (`…:5432/app`) or as a `dbname` parameter.
/// Without one, PostgreSQL would pick the database named after the user, which is rarely where
/// the application's tables are.
fn names_database(url: &str) -> bool {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let rest = base.split_once("://").map_or(base, |(_, r)| r);
    let in_path = rest
        .split_once('/')
        .is_some_and(|(_, path)| !path.trim_matches('/').is_empty());
    in_path
        || query
            .split('&')
            .any(|kv| kv.strip_prefix("dbname=").is_some_and(|v| !v.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_its_urls() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://u@h/db"));
        assert!(is_postgres_url("POSTGRES://u@h/db"));
        assert!(!is_postgres_url("mysql://u@h/db"));
        assert!(!is_postgres_url("sqlite::memory:"));
        assert!(!is_postgres_url("pg"));
    }

    #[cfg(not(feature = "rustls"))]
    #[tokio::test]
    async fn tls_without_the_feature_says_which_feature() {
        // sqlx finds it has no TLS once connected, before it sends anything: a socket that
        // accepts connections (the kernel's backlog does, unanswered) is server enough.
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let url = format!("postgres://u@127.0.0.1:{port}/app?sslmode=require");
        match open(&url).await {
            Err(Error::Config(why)) => assert!(why.contains("`rustls` feature"), "{why}"),
            other => panic!("expected the feature's name, got {other:?}"),
        }
    }

    #[test]
    fn a_database_must_be_named() {
        assert!(names_database("postgres://u:p@h:5432/app"));
        assert!(names_database("postgres://u@h/app?sslmode=disable"));
        assert!(names_database("postgres://u@h?dbname=app"));
        assert!(!names_database("postgres://u@h:5432"));
        assert!(!names_database("postgres://u@h:5432/"));
        assert!(!names_database("postgres://u@h:5432?sslmode=disable"));
    }
}

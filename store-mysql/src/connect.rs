//! Opening a MySQL pool for taskrow.

use std::str::FromStr;
use std::time::Duration;

use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlPoolOptions, MySqlSslMode};
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

/// What a failed connection means: a refused login (1045, 1044), a database that does not exist
/// (1049), or a server that cannot be reached — three causes, three messages.
fn connect_error(url: &str, e: sqlx::Error) -> Error {
    let number = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|d| d.number());
    match number {
        Some(1045 | 1044) => Error::AccessDenied {
            url: redact(url),
            source: Box::new(e),
        },
        Some(1049) => Error::NoSuchDatabase {
            url: redact(url),
            hint: "create it (`CREATE DATABASE name`) or fix the database name in the URL's path"
                .to_owned(),
            source: Box::new(e),
        },
        _ => Error::Unreachable {
            url: redact(url),
            source: Box::new(e),
        },
    }
}

/// Opens the pool for `url`, which must name a database. The sessions keep the server's
/// settings (its isolation level among them): the pool is the application's too, and
/// taskrow's own transactions set their level themselves (see `MysqlDialect::begin_write`).
///
/// **TLS** is set in the URL, as the `mysql` client sets it: `ssl-mode=DISABLED|PREFERRED|
/// REQUIRED|VERIFY_CA|VERIFY_IDENTITY` (`PREFERRED`, the default, uses TLS where the server
/// offers it, without checking its certificate), `ssl-ca=` (the CA file that `VERIFY_CA` and
/// `VERIFY_IDENTITY` check the server's certificate against; the webpki roots without it),
/// `ssl-cert=` and `ssl-key=` (a client certificate). It needs a TLS implementation in sqlx:
/// this crate's `rustls` feature (or any other crate of the build turning sqlx's TLS on).
/// Without one, `PREFERRED` connects in plain text and the modes that require TLS fail with
/// [`Error::Config`] saying so. MariaDB refuses a login in plain text under
/// `require_secure_transport=ON` as it refuses a wrong password (1045): where the login may
/// have gone in plain text, the [`Error::AccessDenied`] says so too.
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
    let unreachable = |e: sqlx::Error| connect_error(url, e);
    // One connection first, so that a wrong host, port, password or database fails at once
    // (the pool would keep trying until its acquire timeout).
    let probe = tokio::time::timeout(ACQUIRE_TIMEOUT, MySqlConnection::connect_with(&options))
        .await
        .map_err(|_| unreachable(sqlx::Error::PoolTimedOut))?
        .map_err(|e| tls_error(url, &options, e))?;
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

/// The error for a failed connection, where TLS explains it: a URL that requires TLS when sqlx
/// was built without any (say which feature turns it on, rather than report an unreachable
/// server), a server that requires TLS refusing a login in plain text (MySQL's 3159; MariaDB's
/// 1045, as for a wrong password, gets a note); [`connect_error`] for the others.
fn tls_error(url: &str, options: &MySqlConnectOptions, e: sqlx::Error) -> Error {
    let enable = "enable the `rustls` feature of taskrow-mysql (`taskrow-mysql = { version = \
                  \"…\", features = [\"rustls\"] }`)";
    let requires_tls = matches!(
        options.get_ssl_mode(),
        MySqlSslMode::Required | MySqlSslMode::VerifyCa | MySqlSslMode::VerifyIdentity
    );
    if let sqlx::Error::Tls(inner) = &e
        && requires_tls
        && inner.to_string().contains("without TLS support")
    {
        return Error::Config(format!(
            "the URL's `ssl-mode` requires TLS, and this build has no TLS: {enable} ({inner})"
        ));
    }
    // A note for a refused login that may have gone in plain text (a Unix socket counts as
    // secure: the server refuses no login on it for want of TLS).
    let plain = match options.get_ssl_mode() {
        _ if options.get_socket().is_some() => None,
        MySqlSslMode::Disabled => Some(
            "sent without TLS (`ssl-mode=DISABLED`): a server with \
             `require_secure_transport=ON` refuses such a login with this same error; if yours \
             does, drop `ssl-mode=DISABLED` from the URL"
                .to_owned(),
        ),
        MySqlSslMode::Preferred if !cfg!(feature = "rustls") => Some(format!(
            "sent without TLS, taskrow-mysql's `rustls` feature being off: a server with \
             `require_secure_transport=ON` refuses such a login with this same error; if yours \
             does, {enable} and add `ssl-mode=VERIFY_CA&ssl-ca=/path/to/ca.pem` to the URL"
        )),
        _ => None,
    };
    let number = e
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|d| d.number());
    match (number, plain) {
        // MySQL's ER_SECURE_TRANSPORT_REQUIRED: the server says it requires TLS.
        (Some(3159), _) => Error::Config(format!(
            "the database at `{}` requires TLS: {enable} and add \
             `ssl-mode=VERIFY_CA&ssl-ca=/path/to/ca.pem` to the URL ({e})",
            redact(url)
        )),
        (Some(1045), Some(note)) => Error::AccessDenied {
            url: redact(url),
            source: Box::new(RefusedInPlainText { source: e, note }),
        },
        _ => connect_error(url, e),
    }
}

/// A login refused (1045) that may have gone in plain text: the driver's error, with a note on
/// TLS.
#[derive(Debug)]
struct RefusedInPlainText {
    source: sqlx::Error,
    note: String,
}

impl std::fmt::Display for RefusedInPlainText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.source, self.note)
    }
}

impl std::error::Error for RefusedInPlainText {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    /// The test server's URL naming database `mysql` (every server has it), with `params`;
    /// as user `user` (with password `wrong`) instead of the URL's if given.
    fn server(user: Option<&str>, params: &str) -> Option<String> {
        let Some(mut server) = testing::server_url() else {
            println!("skipped: {} not set", testing::URL_VAR);
            return None;
        };
        if let Some(user) = user {
            let rest = server.split_once("://").map_or(server.as_str(), |(_, r)| r);
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            server = format!("mysql://{user}:wrong@{host}");
        }
        let url = testing::url_with_database(&server, "mysql");
        let sep = if url.contains('?') { '&' } else { '?' };
        Some(format!("{url}{sep}{params}"))
    }

    #[cfg(not(feature = "rustls"))]
    #[tokio::test]
    async fn tls_without_the_feature_says_which_feature() {
        let Some(url) = server(None, "ssl-mode=REQUIRED") else {
            return;
        };
        match open(&url).await {
            Err(Error::Config(why)) => assert!(why.contains("`rustls` feature"), "{why}"),
            other => panic!("expected the feature's name, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_refused_login_in_plain_text_mentions_tls() {
        let Some(url) = server(Some("taskrow_no_such_user"), "ssl-mode=DISABLED") else {
            return;
        };
        match open(&url).await {
            Err(e @ Error::AccessDenied { .. }) => {
                let why = e.to_string();
                assert!(why.contains("ssl-mode=DISABLED"), "{why}");
                assert!(why.contains("check the user and password"), "{why}");
            }
            other => panic!("expected the login refused, got {other:?}"),
        }
    }
}

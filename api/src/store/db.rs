//! The connection pools: SQLite (one writer, several readers) or PostgreSQL.
//!
//! One enum of native pools rather than sqlx's `Any` driver: every query is written
//! once (the SQL uses `$N` placeholders, which both accept) and compiled for each
//! backend by the [`on_writer!`]/[`on_reader!`] macros, so each runs with its native types,
//! statement cache and connect options (WAL, `synchronous`, busy timeout), without
//! `Any`'s per-value conversions and narrow type set.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use sqlx::ConnectOptions;

use super::writer::SqliteWriter;
use crate::config::{redact_url, ApiConfig, Backend};
use crate::error::Result;
use crate::startup::{StartError, StartResult};

/// How long a request waits for a pooled connection before answering 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long SQLite waits on a lock held by another process (a CLI, a backup).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The pools of one database.
#[derive(Clone, Debug)]
pub(crate) enum Pools {
    /// SQLite allows one writer at a time: one group-committing writer task queues
    /// writes in-process (no busy-waiting on the file lock); WAL lets readers run beside it.
    Sqlite {
        writer: SqliteWriter,
        reader: SqlitePool,
    },
    /// PostgreSQL: one pool for everything.
    Postgres(PgPool),
}

/// Runs `move |$conn| $body` on the writing connection and evaluates to
/// `Result<T, Error>`; `$body` is a `Result<T, sqlx::Error>` over `$conn`
/// (`&mut SqliteConnection` or `&mut PgConnection`) and owns what it uses.
///
/// SQLite: one operation of the group-committing [`SqliteWriter`]; PostgreSQL: a pooled
/// connection.
macro_rules! on_writer {
    ($pools:expr, move |$conn:ident| $body:expr) => {
        match $pools {
            $crate::store::db::Pools::Sqlite { writer, .. } => {
                writer
                    .run(move |$conn: &mut ::sqlx::SqliteConnection| {
                        ::std::boxed::Box::pin(async move { $body })
                    })
                    .await
            }
            $crate::store::db::Pools::Postgres(pool) => {
                let pool = pool.clone();
                async move {
                    let mut held = pool.acquire().await?;
                    let $conn: &mut ::sqlx::PgConnection = &mut held;
                    $body
                }
                .await
                .map_err($crate::error::Error::from)
            }
        }
    };
}

/// Runs `$body` with `$pool` bound to a pool that reads.
macro_rules! on_reader {
    ($pools:expr, |$pool:ident| $body:expr) => {
        match $pools {
            $crate::store::db::Pools::Sqlite { reader: $pool, .. } => $body,
            $crate::store::db::Pools::Postgres($pool) => $body,
        }
    };
}

pub(crate) use {on_reader, on_writer};

impl Pools {
    /// Connects to the configured database and applies the embedded migrations.
    ///
    /// # Errors
    /// [`StartError::DatabaseOpen`] or [`StartError::Migrate`], naming the URL without its password.
    pub(crate) async fn open(config: &ApiConfig) -> StartResult<Pools> {
        let url = config.database_url.trim();
        let open_err = |source| StartError::DatabaseOpen {
            url: redact_url(url),
            source,
        };
        let migrate_err = |source| StartError::Migrate {
            url: redact_url(url),
            source,
        };
        match config.backend() {
            Some(Backend::Sqlite) => {
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(open_err)?
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(BUSY_TIMEOUT)
                    .foreign_keys(true)
                    .pragma("temp_store", "memory")
                    .statement_cache_capacity(256);
                // Migrate on a short-lived pool: the migrator's `Acquire` on a bare
                // connection makes the serving future not `Send`.
                let migrating = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(open_err)?;
                sqlx::migrate!("migrations/sqlite")
                    .run(&migrating)
                    .await
                    .map_err(migrate_err)?;
                migrating.close().await;
                let writer = SqliteWriter::start(options.connect().await.map_err(open_err)?);
                let reader = SqlitePoolOptions::new()
                    .max_connections(config.database_max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options.create_if_missing(false))
                    .await
                    .map_err(open_err)?;
                Ok(Pools::Sqlite { writer, reader })
            }
            Some(Backend::Postgres) => {
                let options = PgConnectOptions::from_str(url)
                    .map_err(open_err)?
                    .application_name("drover-api")
                    .statement_cache_capacity(256);
                let pool = PgPoolOptions::new()
                    .max_connections(config.database_max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await
                    .map_err(open_err)?;
                sqlx::migrate!("migrations/postgres")
                    .run(&pool)
                    .await
                    .map_err(migrate_err)?;
                Ok(Pools::Postgres(pool))
            }
            None => Err(StartError::InvalidConfig {
                key: "api.database_url".into(),
                reason: "names no supported database".into(),
            }),
        }
    }

    /// Closes every connection, waiting for those in use.
    pub(crate) async fn close(&self) {
        match self {
            Pools::Sqlite { writer, reader } => {
                writer.close().await;
                reader.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }

    /// Whether the database answers a trivial query.
    pub(crate) async fn ping(&self) -> Result<()> {
        on_reader!(self, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}

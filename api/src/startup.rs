//! What can stop the API from starting: its configuration, its listen address, its
//! database.

/// A start-up failure. Each message says what was wrong and how to fix it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A configuration value is unusable.
    #[error("invalid configuration `{key}`: {reason}")]
    InvalidConfig {
        /// Dotted key, such as `api.tokens[0].token`.
        key: String,
        /// What is wrong and how to fix it.
        reason: String,
    },

    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another process using it? change api.listen)")]
    Bind {
        /// The address from `api.listen`.
        addr: std::net::SocketAddr,
        /// The IO failure.
        #[source]
        source: std::io::Error,
    },

    /// The database could not be opened or migrated at start-up.
    #[error("cannot open the database {url}: {source} (check api.database_url and that the database is running)")]
    DatabaseOpen {
        /// The URL, password removed.
        url: String,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },

    /// The embedded migrations could not be applied.
    #[error("cannot migrate the database {url}: {source}")]
    Migrate {
        /// The URL, password removed.
        url: String,
        /// What the migrator reported.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// The HTTP server failed.
    #[error("the http server failed: {0}")]
    Serve(#[source] std::io::Error),

    /// Something that should never fail did (a bug).
    #[error("internal error at start-up: {0}")]
    Internal(String),
}

/// The result of starting (and serving until shutdown).
pub type StartResult<T> = Result<T, StartError>;

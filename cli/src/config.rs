//! The `drover` configuration: one file for every role, `DROVER_*` variables on top.

use std::path::Path;

use anyhow::Context;
use drover_api::ApiConfig;
use drover_client::ApiClient;
use drover_coordination::ZkSettings;
use drover_core::LogFormat;
use serde::Deserialize;

use crate::exit::UsageError;

/// Everything `drover` reads from its configuration file and `DROVER_*` variables.
///
/// Every role reads the same file and uses its own section; unknown keys are rejected
/// so that a misspelt key or variable is an error, not a silent default.
/// ```toml
/// log_format = "json"
/// url = "http://drover-api:8080"   # how executors and distributors reach the API
/// token = "..."                    # their bearer token
/// [zookeeper]
/// hosts = "zk1:2181,zk2:2181,zk3:2181"
/// [api]
/// # see drover_api::ApiConfig
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Config {
    /// How to reach ZooKeeper (`[zookeeper]`, `DROVER_ZOOKEEPER__HOSTS`, ...).
    pub(crate) zookeeper: ZkSettings,
    /// The API role (`[api]`, `DROVER_API__...`).
    pub(crate) api: ApiConfig,
    /// The executor role (`[executor]`, `DROVER_EXECUTOR__...`).
    pub(crate) executor: drover_executor::ExecutorConfig,
    /// The distributor role (`[distributor]`, `DROVER_DISTRIBUTOR__...`).
    pub(crate) distributor: drover_distributor::DistributorConfig,
    /// The API's base URL for roles that call it (`DROVER_URL`, also read by the
    /// client commands).
    pub(crate) url: Option<String>,
    /// The bearer token those roles send (`DROVER_TOKEN`, also read by the client
    /// commands).
    pub(crate) token: Option<String>,
    /// How log lines are written to stderr (`DROVER_LOG_FORMAT`); `--log-format`
    /// overrides it.
    pub(crate) log_format: LogFormat,
}

impl Config {
    /// Loads the file (if any), then the process's `DROVER_*` variables, and validates.
    ///
    /// # Errors
    ///
    /// A [`drover_core::Error`] naming the key and its source, or a [`UsageError`]
    /// from validation.
    pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let config: Config = drover_core::load_config_from_process_env(file)
            .context("cannot load the configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the values that serde cannot, once, at start-up.
    fn validate(&self) -> anyhow::Result<()> {
        // Each error already says "invalid ..." and names the key.
        let invalid = |err: &dyn std::fmt::Display| UsageError(err.to_string());
        self.zookeeper.validate().map_err(|err| invalid(&err))?;
        self.api.validate().map_err(|err| invalid(&err))?;
        self.executor.validate().map_err(|err| invalid(&err))?;
        // The actions directory is only read by the distributor role itself.
        self.distributor
            .validate_fields()
            .map_err(|err| invalid(&format!("invalid configuration {err}")))?;
        if let Some(url) = &self.url {
            ApiClient::new(url, None).map_err(|err| invalid(&err))?;
        }
        Ok(())
    }

    /// The `[distributor]` settings as the role runs them: without its own
    /// `actions_dir`, it knows the actions of `executor.actions_dir` from the same file.
    pub(crate) fn distributor_config(&self) -> drover_distributor::DistributorConfig {
        let mut config = self.distributor.clone();
        if config.actions_dir.is_none() {
            config.actions_dir.clone_from(&self.executor.actions_dir);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn client_variables_are_valid_keys() {
        let vars = env(&[
            ("DROVER_URL", "http://api:8080"),
            ("DROVER_TOKEN", "t"),
            ("DROVER_LOG_FORMAT", "JSON"),
            ("DROVER_ZOOKEEPER__HOSTS", "zk:2181"),
        ]);
        let config: Config = drover_core::load_config(None, &vars).unwrap();
        assert_eq!(config.url.as_deref(), Some("http://api:8080"));
        assert_eq!(config.token.as_deref(), Some("t"));
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.zookeeper.hosts, "zk:2181");
        config.validate().unwrap();
    }

    #[test]
    fn misspelt_keys_and_bad_values_are_rejected() {
        let err =
            drover_core::load_config::<Config>(None, &env(&[("DROVER_URLS", "x")])).unwrap_err();
        assert!(err.to_string().contains("urls"), "{err}");

        let config: Config =
            drover_core::load_config(None, &env(&[("DROVER_URL", "api:8080")])).unwrap();
        let err = config.validate().unwrap_err();
        assert!(
            err.is::<UsageError>() && err.to_string().contains("api:8080"),
            "{err}"
        );
    }
}

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tempfile::TempDir;

use super::*;
use crate::{LogFormat, Priority};

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct NodeConfig {
    name: String,
    slots: u16,
    verbose: bool,
    priority: Priority,
    log_format: LogFormat,
    #[serde(with = "crate::duration")]
    drain_deadline: Duration,
    zookeeper: ZooKeeper,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
struct ZooKeeper {
    #[serde(with = "crate::comma_separated")]
    hosts: Vec<String>,
    port: u16,
    #[serde(with = "crate::duration")]
    session_timeout: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: "node".into(),
            slots: 1,
            verbose: false,
            priority: Priority::default(),
            log_format: LogFormat::Text,
            drain_deadline: Duration::from_secs(120),
            zookeeper: ZooKeeper::default(),
        }
    }
}

impl Default for ZooKeeper {
    fn default() -> Self {
        Self {
            hosts: vec!["127.0.0.1".into()],
            port: 2181,
            session_timeout: Duration::from_secs(30),
        }
    }
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn load(file: Option<&Path>, pairs: &[(&str, &str)]) -> Result<NodeConfig, Error> {
    load_config(file, &env(pairs))
}

const TOML: &str = r#"
name = "from-file"
drain_deadline = "2m"

[zookeeper]
hosts = ["zk1", "zk2"]
session_timeout = "10s"
"#;

#[test]
fn defaults_fill_what_nothing_sets() {
    let config = load(None, &[("PATH", "/bin"), ("HOME", "/root")]).unwrap();
    assert_eq!(config, NodeConfig::default());
}

#[test]
fn file_and_environment_layer_over_defaults() {
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "drover.toml", TOML);
    let config = load(
        Some(&file),
        &[("DROVER_SLOTS", "4"), ("DROVER_VERBOSE", "true")],
    )
    .unwrap();
    assert_eq!(config.name, "from-file");
    assert_eq!(config.drain_deadline, Duration::from_secs(120));
    assert_eq!(config.zookeeper.hosts, ["zk1", "zk2"]);
    assert_eq!(config.zookeeper.session_timeout, Duration::from_secs(10));
    assert_eq!(config.slots, 4);
    assert!(config.verbose);
    assert_eq!(config.zookeeper.port, 2181, "untouched default");
    assert_eq!(config.priority, Priority::default(), "untouched default");
}

#[test]
fn environment_overrides_the_file_including_nested_keys() {
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "drover.toml", TOML);
    let config = load(
        Some(&file),
        &[
            ("DROVER_NAME", "from-env"),
            ("DROVER_ZOOKEEPER__HOSTS", "a:2181, b:2181"),
            ("DROVER_ZOOKEEPER__SESSION_TIMEOUT", "1m 30s"),
            ("DROVER_ZOOKEEPER__PORT", "2182"),
            ("DROVER_LOG_FORMAT", "json"),
            ("DROVER_PRIORITY", "7"),
        ],
    )
    .unwrap();
    assert_eq!(config.name, "from-env");
    assert_eq!(config.zookeeper.hosts, ["a:2181", "b:2181"]);
    assert_eq!(config.zookeeper.session_timeout, Duration::from_secs(90));
    assert_eq!(config.zookeeper.port, 2182);
    assert_eq!(config.log_format, LogFormat::Json);
    assert_eq!(config.priority.get(), 7);
    assert_eq!(config.drain_deadline, Duration::from_secs(120), "from file");
}

#[test]
fn variable_names_are_case_insensitive_and_empty_values_unset() {
    let config = load(None, &[("drover_name", "lower"), ("DROVER_SLOTS", "")]).unwrap();
    assert_eq!(config.name, "lower");
    assert_eq!(config.slots, 1);
}

#[test]
fn yaml_and_json_files_read_like_toml() {
    let dir = TempDir::new().unwrap();
    let toml = write(&dir, "a.toml", TOML);
    let yaml = write(
        &dir,
        "b.yml",
        "name: from-file\ndrain_deadline: 2m\nzookeeper:\n  hosts: [zk1, zk2]\n  session_timeout: 10s\n",
    );
    let json = write(
        &dir,
        "c.JSON",
        r#"{"name": "from-file", "drain_deadline": "2m",
            "zookeeper": {"hosts": ["zk1", "zk2"], "session_timeout": "10s"}}"#,
    );
    let expected = load(Some(&toml), &[]).unwrap();
    assert_eq!(load(Some(&yaml), &[]).unwrap(), expected);
    assert_eq!(load(Some(&json), &[]).unwrap(), expected);
}

#[test]
fn unknown_file_key_names_the_key_and_the_file() {
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "drover.toml", "[zookeeper]\nhostz = \"zk1\"\n");
    let err = load(Some(&file), &[]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`zookeeper.hostz`"), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("unknown field `hostz`"), "{message}");
    assert!(
        message.contains("remove it or fix its spelling"),
        "{message}"
    );
    let Error::InvalidConfig { key, .. } = err else {
        panic!("wrong variant: {err:?}");
    };
    assert_eq!(key, "zookeeper.hostz");
}

#[test]
fn unknown_variable_names_the_variable() {
    let err = load(None, &[("DROVER_ZOOKEPER__HOSTS", "zk1")]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("`zookeper`"), "{message}");
    assert!(
        message.contains("environment variable DROVER_ZOOKEPER__HOSTS"),
        "{message}"
    );
}

#[test]
fn wrong_type_names_the_key_and_its_source() {
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "drover.toml", "[zookeeper]\nport = \"high\"\n");
    let message = load(Some(&file), &[]).unwrap_err().to_string();
    assert!(message.contains("`zookeeper.port`"), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("\"high\""), "{message}");
    assert!(!message.contains("for key"), "no duplicate key: {message}");

    let message = load(None, &[("DROVER_SLOTS", "many")])
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("`slots` (from environment variable DROVER_SLOTS)"),
        "{message}"
    );
}

#[test]
fn value_checks_of_the_field_type_name_the_key() {
    let err = load(None, &[("DROVER_PRIORITY", "1000")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid configuration key `priority` (from environment variable DROVER_PRIORITY): \
         priority 1000 is out of range: use 0 (runs first) to 999"
    );
    let message = load(None, &[("DROVER_DRAIN_DEADLINE", "soon")])
        .unwrap_err()
        .to_string();
    assert!(message.contains("`drain_deadline`"), "{message}");
}

#[test]
fn missing_required_key_says_how_to_set_it() {
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only the error matters
    struct Required {
        database: Database,
    }
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Database {
        url: String,
    }
    let err = load_config::<Required>(None, &HashMap::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing configuration key `database`: set it in the configuration file \
         or with the environment variable DROVER_DATABASE"
    );
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "drover.toml", "[database]\n");
    let err = load_config::<Required>(Some(&file), &HashMap::new()).unwrap_err();
    let Error::MissingConfig { key, env_var } = err else {
        panic!("wrong variant: {err:?}");
    };
    assert_eq!(key, "database.url");
    assert_eq!(env_var, "DROVER_DATABASE__URL");
}

#[test]
fn unreadable_or_unparsable_files_are_named() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("absent.toml");
    let err = load(Some(&missing), &[]).unwrap_err();
    assert!(matches!(err, Error::ConfigFileRead { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let broken = write(&dir, "broken.toml", "name = \n");
    let message = load(Some(&broken), &[]).unwrap_err().to_string();
    assert!(
        message.starts_with(&format!(
            "configuration file {} is not valid TOML: ",
            broken.display()
        )),
        "{message}"
    );
    assert!(message.contains("line 1"), "{message}");

    let ini = write(&dir, "drover.ini", "name = x\n");
    let message = load(Some(&ini), &[]).unwrap_err().to_string();
    assert!(message.contains(".toml, .yaml, .yml or .json"), "{message}");
}

#[test]
fn variable_names_follow_the_key_path() {
    assert_eq!(env_var_name("zookeeper.hosts"), "DROVER_ZOOKEEPER__HOSTS");
    assert_eq!(env_var_name("drain_deadline"), "DROVER_DRAIN_DEADLINE");
    assert_eq!(
        env_var_name("zookeeper.hosts[1]"),
        "DROVER_ZOOKEEPER__HOSTS"
    );
}

#[test]
fn process_environment_variant_reads_the_file() {
    // Tolerant target: whatever DROVER_ variables the test runner has must not fail it.
    let dir = TempDir::new().unwrap();
    let file = write(&dir, "drover.json", r#"{"marker": 42}"#);
    let loaded: serde_json::Value = load_config_from_process_env(Some(&file)).unwrap();
    assert_eq!(loaded["marker"], 42);
}

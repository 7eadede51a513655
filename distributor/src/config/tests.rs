use super::*;

fn parse(toml_text: &str) -> Result<DistributorConfig, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        distributor: DistributorConfig,
    }
    toml::from_str::<File>(toml_text)
        .map(|f| f.distributor)
        .map_err(|e| e.to_string())
}

#[test]
fn defaults_are_valid_and_run_reconcile() {
    let config = DistributorConfig {
        id: Some("d1".into()),
        ..DistributorConfig::default()
    };
    let plans = config.plans().unwrap();
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].name, RECONCILE);
    assert_eq!(plans[0].schedule.to_string(), "every 5s");
}

#[test]
fn a_full_distribution_parses() {
    let config = parse(
        r#"
[distributor]
id = "d1"
reconcile = false
[[distributor.distributions]]
name = "nightly-cleanup"
action = "cleanup_jobs"
params = { older_than = "7d" }
priority = 200
cron = "0 2 * * *"
jitter = "30s"
[[distributor.distributions]]
action = "noop"
every = "1h"
catch_up = "all"
[[distributor.distributions]]
action = "sleep"
every = "1m"
enabled = false
"#,
    )
    .unwrap();
    let plans = config.plans().unwrap();
    assert_eq!(plans.len(), 2, "disabled ones do not run");
    assert_eq!(plans[0].name, "nightly-cleanup");
    assert_eq!(plans[0].jitter, Duration::from_secs(30));
    assert_eq!(plans[1].name, "noop");
    assert_eq!(plans[1].catch_up, CatchUp::All);
}

#[test]
fn errors_name_the_field() {
    let base = "[distributor]\nid = \"d1\"\n[[distributor.distributions]]\naction = \"noop\"\nevery = \"1s\"\n";
    let cases = [
        (
            "action = \"noop\"\ncron = \"61 * * * *\"",
            "distributor.distributions[1].cron",
        ),
        (
            "action = \"noop\"\nevery = \"0s\"",
            "distributor.distributions[1].every",
        ),
        (
            "action = \"noop\"\nevery = \"1s\"\ncron = \"* * * * *\"",
            "distributor.distributions[1]: both",
        ),
        ("action = \"noop\"", "distributor.distributions[1]: neither"),
        (
            "action = \"frobnicate\"\nevery = \"1s\"",
            "distributor.distributions[1].action: unknown action \"frobnicate\"",
        ),
        (
            "action = \"no such\"\nevery = \"1s\"",
            "distributor.distributions[1].action",
        ),
        (
            "action = \"noop\"\nname = \"noop\"\nevery = \"1s\"",
            "distributor.distributions[1].name",
        ),
        (
            "action = \"noop\"\nname = \"reconcile\"\nevery = \"1s\"",
            "reserved",
        ),
        (
            "action = \"noop\"\nevery = \"1s\"\njitter = \"2s\"",
            "distributor.distributions[1].jitter",
        ),
        (
            "action = \"noop\"\nevery = \"1s\"\npriority = 1000",
            "distributor.distributions[1].priority",
        ),
        (
            "action = \"cleanup_jobs\"\nevery = \"1s\"\nparams = { older_than = \"soon\" }",
            "distributor.distributions[1].params",
        ),
        (
            "action = \"noop\"\nevery = \"1s\"\nmax_attempts = 0",
            "distributor.distributions[1].max_attempts",
        ),
        (
            "action = \"noop\"\nevery = \"300000y\"",
            "distributor.distributions[1].every: 300000years is out of range: use 100ms to 366d",
        ),
        (
            "action = \"noop\"\nevery = \"367d\"",
            "distributor.distributions[1].every",
        ),
        (
            "action = \"noop\"\ncron = \"0 2 * * *\"\njitter = \"300000y\"",
            "distributor.distributions[1].jitter: 300000years is out of range: use at most 366d",
        ),
    ];
    for (extra, needle) in cases {
        let text = format!("{base}[[distributor.distributions]]\n{extra}\n");
        let err = parse(&text).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} should contain {needle:?}");
    }
    let err = parse(&format!("{base}colour = \"red\"\n")).unwrap_err();
    assert!(err.contains("unknown field `colour`"), "{err}");
    let zero = DistributorConfig {
        reconcile_every: Duration::ZERO,
        ..DistributorConfig::default()
    };
    assert!(zero
        .validate()
        .unwrap_err()
        .to_string()
        .contains("distributor.reconcile_every"));
}

#[test]
fn the_longest_accepted_interval_and_jitter_are_fine() {
    let config = parse(
        "[distributor]\nid = \"d1\"\n[[distributor.distributions]]\naction = \"noop\"\nevery = \"366d\"\njitter = \"365d\"\n[[distributor.distributions]]\nname = \"yearly\"\naction = \"noop\"\ncron = \"0 0 1 1 *\"\njitter = \"366d\"\n",
    )
    .unwrap();
    assert_eq!(config.plans().unwrap().len(), 3);
}

#[test]
fn actions_from_the_directory_are_known() {
    let dir = tempdir();
    std::fs::write(
        dir.join("echo.toml"),
        "name = \"echo\"\nimage = \"busybox\"\n[secrets]\nTOKEN = { env = \"UNSET_HERE\" }\n",
    )
    .unwrap();
    let config = DistributorConfig {
        id: Some("d1".into()),
        actions_dir: Some(dir.clone()),
        distributions: vec![every_second("echo")],
        ..DistributorConfig::default()
    };
    config.validate().unwrap();
    let mut other = config.clone();
    other.distributions[0].action = Some("missing".into());
    let err = other.validate().unwrap_err().to_string();
    assert!(
        err.contains(&dir.display().to_string()) && err.contains("echo"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A distribution of `action` every second, everything else defaulted.
fn every_second(action: &str) -> DistributionConfig {
    DistributionConfig {
        name: None,
        action: Some(action.into()),
        pipeline: None,
        params: BTreeMap::new(),
        priority: None,
        every: Some(Duration::from_secs(1)),
        cron: None,
        jitter: None,
        enabled: true,
        catch_up: CatchUp::Latest,
        max_attempts: None,
        timeout: None,
        requires: Vec::new(),
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "drover-distributor-test-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn field_checks_skip_the_actions_directory() {
    let config = DistributorConfig {
        id: Some("d1".into()),
        actions_dir: Some(PathBuf::from("/nonexistent/actions")),
        distributions: vec![every_second("docker-thing")],
        ..DistributorConfig::default()
    };
    config.validate_fields().unwrap();
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("distributor.actions_dir") && err.contains("/nonexistent/actions"),
        "{err}"
    );
    let mut builtins_only = config.clone();
    builtins_only.distributions[0].action = Some("noop".into());
    builtins_only.validate().unwrap();
}

#[test]
fn a_pipeline_distribution_reads_its_project_file_at_start_up() {
    let dir = tempdir();
    let file = dir.join("drover.yaml");
    std::fs::write(
        &file,
        "version: 5\nactions:\n  prep: {action: noop}\n  report: {action: noop, needs: [prep]}\n",
    )
    .unwrap();
    let text = format!(
        "[distributor]\nid = \"d1\"\nreconcile = false\n[[distributor.distributions]]\nname = \"nightly\"\ncron = \"0 2 * * *\"\npriority = 50\n[distributor.distributions.pipeline]\nfile = \"{}\"\nactions = [\"report\"]\n",
        file.display()
    );
    let config = parse(&text).unwrap();
    let plans = config.plans().unwrap();
    let Work::Pipeline(work) = &plans[0].work else {
        panic!("a pipeline: {:?}", plans[0].work)
    };
    assert_eq!(
        work.workspace, "nightly",
        "the name is the default workspace"
    );
    assert_eq!(work.actions, ["report"]);
    assert_eq!(work.priority.map(Priority::get), Some(50));
    assert!(work.project.contains("needs: [prep]"));
    assert_eq!(plans[0].action(), "pipeline drover.yaml: report");

    let check = |edit: &dyn Fn(&mut DistributionConfig)| {
        let mut bad = config.clone();
        edit(&mut bad.distributions[0]);
        bad.validate().unwrap_err().to_string()
    };
    let err = check(&|d| d.action = Some("noop".into()));
    assert!(
        err.contains("distributions[0].action: is set with pipeline"),
        "{err}"
    );
    let err = check(&|d| d.name = None);
    assert!(
        err.contains("distributions[0].name: is required with pipeline"),
        "{err}"
    );
    let err = check(&|d| {
        if let Some(p) = d.pipeline.as_mut() {
            p.actions = vec!["publish".into()];
        }
    });
    assert!(
        err.contains("pipeline.file") && err.contains("no action `publish`"),
        "{err}"
    );
    let err = check(&|d| {
        if let Some(p) = d.pipeline.as_mut() {
            p.file = dir.join("missing.yaml");
        }
    });
    assert!(
        err.contains("cannot read") && err.contains("missing.yaml"),
        "{err}"
    );
    std::fs::write(
        &file,
        "version: 5\nactions:\n  a: {action: noop, needs: [a]}\n",
    )
    .unwrap();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("drover.yaml:3"), "the file's own line: {err}");
    let mut neither = config.clone();
    neither.distributions[0].pipeline = None;
    let err = neither.validate().unwrap_err().to_string();
    assert!(err.contains("action: is missing"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

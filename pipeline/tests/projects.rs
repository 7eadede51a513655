//! Project files, good and bad: each bad one with the exact error it gets.

use drover_pipeline::{Level, Project, Run};

/// (what the case is, file text, the error's exact text).
const BAD: &[(&str, &str, &str)] = &[
    (
        "no version",
        "actions:\n  a:\n    run: python:v1 a.py\n",
        "drover.yaml:1: the file has no `version`; write `version: 5` (the current format) at the top of the file",
    ),
    (
        "a version newer than this drover",
        "version: 6\nactions:\n  a:\n    run: python:v1 a.py\n",
        "drover.yaml:1: format version 6 is newer than this drover reads (up to 5); upgrade drover, or write `version: 5`",
    ),
    (
        "a version that is not a number",
        "version: five\nactions:\n  a:\n    run: python:v1 a.py\n",
        "drover.yaml:1: `version` must be a number from 1 to 5; write `version: 5` (the current format) at the top of the file",
    ),
    (
        "the file is a list",
        "- version: 5\n- actions: {}\n",
        "drover.yaml:1: a project file is a mapping with `version` and `actions`, but this one is a list; start the file with `version: 5` and an `actions:` mapping",
    ),
    (
        "invalid YAML",
        "version: 5\nactions:\n  a:\n    run: [python:v1 a.py\n  b:\n    run: python:v1 b.py\n",
        "drover.yaml:5: this is not valid YAML: invalid indentation; check the indentation and quoting around that line",
    ),
    (
        "an action twice",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n  a:\n    run: python:v1 b.py\n",
        "drover.yaml:5: the key `a` appears twice in one mapping (first on line 3); remove or rename one: YAML would silently keep only one of them",
    ),
    (
        "a key twice in an action",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    needs: []\n    run: python:v1 b.py\n",
        "drover.yaml:6: the key `run` appears twice in one mapping (first on line 4); remove or rename one: YAML would silently keep only one of them",
    ),
    (
        "an unknown top-level key",
        "version: 5\naction:\n  a:\n    run: python:v1 a.py\n",
        "drover.yaml:2: unknown key `action` at the top of the file; did you mean `actions`? The keys allowed here are `version`, `actions`, `expectations`",
    ),
    (
        "an unknown action key",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n  b:\n    run: python:v1 b.py\n    need: [a]\n",
        "drover.yaml:7: action `b`: unknown key `need` in an action; did you mean `needs`? The keys allowed here are `run`, `action`, `params`, `needs`, `config`, `outputs`, `timeout`, `cpus`, `memory`, `requires` and 2 more",
    ),
    (
        "an action that is not a mapping",
        "version: 5\nactions:\n  a: python:v1 a.py\n",
        "drover.yaml:3: action `a`: an action is a mapping of keys such as `run` and `needs`, but this one is a single value; indent the action's keys under its name, like `run: python:v2 analysis/model.py`",
    ),
    (
        "an action without run",
        "version: 5\nactions:\n  a:\n    needs: []\n",
        "drover.yaml:3: action `a`: the action has no `run`; add `run: IMAGE:TAG ARGS…` (or `action: NAME` for an action of the executors' catalogue)",
    ),
    (
        "both run and action",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    action: noop\n",
        "drover.yaml:4: action `a`: the action has both `run` and `action`; keep one: `run` for an image, `action` for an action of the executors' catalogue",
    ),
    (
        "an image without a tag",
        "version: 5\nactions:\n  a:\n    run: python analysis/a.py\n",
        "drover.yaml:4: action `a`: the image `python` in `run` has no tag; name a version, like `python:v1`: a tag makes a rerun run the same code",
    ),
    (
        "latest in version 5",
        "version: 5\nactions:\n  a:\n    run: python:latest analysis/a.py\n",
        "drover.yaml:4: action `a`: the image `python:latest` in `run` uses the tag `latest`, which format version 5 refuses; name the version to run, like `:v1`: `latest` changes under a rerun, so its results cannot be reproduced",
    ),
    (
        "needs an unknown action",
        "version: 5\nactions:\n  prepare:\n    run: python:v1 p.py\n  model:\n    run: python:v1 m.py\n    needs: [prepar]\n",
        "drover.yaml:7: action `model`: `needs` names `prepar`, which is not an action of this file; did you mean `prepare`?",
    ),
    (
        "needs as one string",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n  b:\n    run: python:v1 b.py\n  c:\n    run: python:v1 c.py\n    needs: a, b\n",
        "drover.yaml:9: action `c`: `needs` must be a list, but it is the single value `a, b`; write `needs: [a, b]`",
    ),
    (
        "needs with a space-separated item",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n  b:\n    run: python:v1 b.py\n  c:\n    run: python:v1 c.py\n    needs: [a b]\n",
        "drover.yaml:9: action `c`: `needs` lists `a b` as one name; separate the names with commas: `needs: [a, b]`",
    ),
    (
        "a cycle of three",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    needs: [c]\n  b:\n    run: python:v1 b.py\n    needs: [a]\n  c:\n    run: python:v1 c.py\n    needs: [b]\n",
        "drover.yaml:3: action `a`: `needs` make a cycle (each needs the next): a -> c -> b -> a; remove a need from each cycle so the actions can run in order",
    ),
    (
        "an action that needs itself",
        "version: 5\nactions:\n  start:\n    run: python:v1 s.py\n  a:\n    run: python:v1 a.py\n    needs: [start, a]\n",
        "drover.yaml:5: action `a`: `needs` make a cycle (each needs the next): a -> a; remove a need from each cycle so the actions can run in order",
    ),
    (
        "two cycles",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    needs: [b]\n  b:\n    run: python:v1 b.py\n    needs: [a]\n  c:\n    run: python:v1 c.py\n    needs: [d]\n  d:\n    run: python:v1 d.py\n    needs: [c]\n",
        "drover.yaml:3: action `a`: `needs` make cycles (each needs the next): a -> b -> a; c -> d -> c; remove a need from each cycle so the actions can run in order",
    ),
    (
        "a cycle behind a good chain",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n  b:\n    run: python:v1 b.py\n    needs: [a, d]\n  c:\n    run: python:v1 c.py\n    needs: [b]\n  d:\n    run: python:v1 d.py\n    needs: [c]\n",
        "drover.yaml:5: action `b`: `needs` make a cycle (each needs the next): b -> d -> c -> b; remove a need from each cycle so the actions can run in order",
    ),
    (
        "the same run twice",
        "version: 5\nactions:\n  a:\n    run: python:v1 analysis/a.py\n  b:\n    run: python:v1   analysis/a.py\n  c:\n    run: python:v1 analysis/a.py\n",
        "drover.yaml:5: action `b`: the action runs the same command as `a` (line 3): `python:v1   analysis/a.py`; two actions with one command make the same outputs: remove one, or make their commands differ",
    ),
    (
        "run_all as a name",
        "version: 5\nactions:\n  run_all:\n    run: python:v1 a.py\n",
        "drover.yaml:3: action `run_all`: `run_all` is reserved: it asks for every action; rename the action",
    ),
    (
        "one output path in two actions",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    outputs:\n      moderately_sensitive:\n        table: output/table.csv\n  b:\n    run: python:v1 b.py\n    outputs:\n      highly_sensitive:\n        data: output/table.csv\n",
        "drover.yaml:8: action `b`: the output path `output/table.csv` is also an output of `a` (line 3); each file is the output of one action: rename one of them (a matrix action can use `{matrix.KEY}` in paths)",
    ),
    (
        "an unknown sensitivity level",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    outputs:\n      moderate_sensitive:\n        table: output/table.csv\n",
        "drover.yaml:6: action `a`: unknown key `moderate_sensitive` in `outputs`; did you mean `moderately_sensitive`? The keys allowed here are `highly_sensitive`, `moderately_sensitive`, `minimally_sensitive`",
    ),
    (
        "an output outside the workspace",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    outputs:\n      highly_sensitive:\n        data: ../secret.csv\n",
        "drover.yaml:7: action `a`: the output path `../secret.csv` leaves the workspace with `..`; write a path inside the workspace with `/`, like `output/table.csv`",
    ),
    (
        "an output with `**`",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    outputs:\n      highly_sensitive:\n        data: output/**/table.csv\n",
        "drover.yaml:7: action `a`: the output path `output/**/table.csv` uses `**`, which would match across directories; only `*` is a wildcard, and it matches within one directory, like `output/*.csv`",
    ),
    (
        "an output with `?`",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    outputs:\n      moderately_sensitive:\n        tables: output/table?.csv\n",
        "drover.yaml:7: action `a`: the output path `output/table?.csv` uses `?`, which is not a wildcard here; only `*` is a wildcard, and it matches within one directory, like `output/*.csv`",
    ),
    (
        "an output without an extension",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    outputs:\n      moderately_sensitive:\n        table: output/table\n",
        "drover.yaml:7: action `a`: the output path `output/table` has no file extension; name the file with its type, like `output/table.csv` (or `output/table/*.csv` for the files of a directory)",
    ),
    (
        "an output under metadata/",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    outputs:\n      moderately_sensitive:\n        log: metadata/a.log\n",
        "drover.yaml:7: action `a`: the output path `metadata/a.log` is under `metadata/`, which is reserved for drover's own files; write the file somewhere else, like `output/run.log`",
    ),
    (
        "a matrix reference to no key",
        "version: 5\nactions:\n  test:\n    run: python:{matrix.python} test.py --os {matrix.system}\n    matrix:\n      python: ['3.11', '3.12']\n      os: [linux]\n",
        "drover.yaml:4: action `test`: `{matrix.system}` names no matrix key of this action; the action's matrix keys are `python`, `os`",
    ),
    (
        "a matrix key without values",
        "version: 5\nactions:\n  test:\n    run: python:v1 test.py\n    matrix:\n      python: []\n",
        "drover.yaml:6: action `test`: the matrix key `python` has no values; list at least one value",
    ),
    (
        "a timeout that is not a duration",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    timeout: soon\n",
        "drover.yaml:5: action `a`: `timeout: soon` is not a duration; write seconds or a duration like `90s`, `30m` or `2h`",
    ),
    (
        "a memory size that is not one",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    memory: lots\n",
        "drover.yaml:5: action `a`: memory size \"lots\" is not understood: write a number with k, m or g, like \"64m\" or \"1g\"",
    ),
    (
        "expectations in version 4",
        "version: '4.0'\nexpectations:\n  population_size: 1000\nactions:\n  a:\n    run: python:v1 a.py\n",
        "drover.yaml:3: `expectations` belongs to format versions before 4 (cohort-extractor's dummy data); remove the `expectations` section",
    ),
    (
        "params with run",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    params: {n: 1}\n",
        "drover.yaml:5: action `a`: `params` goes with `action:`; an image's action takes `config`; rename `params` to `config`",
    ),
    (
        "no actions",
        "version: 5\nactions: {}\n",
        "drover.yaml:2: `actions` is empty; add at least one action with a `run:` line",
    ),
    (
        "an unclosed quote in run",
        "version: 5\nactions:\n  a:\n    run: python:v1 \"a.py\n",
        "drover.yaml:4: action `a`: `run` has an unclosed quote or a trailing backslash: python:v1 \"a.py; close the quote, or escape a literal quote as \\'",
    ),
    (
        "a matrix name that is taken",
        "version: 5\nactions:\n  test-linux:\n    run: python:v1 other.py\n  test:\n    run: python:v1 test.py {matrix.os}\n    matrix:\n      os: [linux, mac]\n",
        "drover.yaml:5: action `test`: the name `test-linux` is taken twice (also on line 3); rename one action: matrix actions are named `action-value-value`",
    ),
    (
        "an alias",
        "version: 5\nactions:\n  a: &base\n    run: python:v1 a.py\n  b: *base\n",
        "drover.yaml:5: anchors and aliases (`*name`) are not supported; write the value out in full",
    ),
    (
        "an action name with a space",
        "version: 5\nactions:\n  my action:\n    run: python:v1 a.py\n",
        "drover.yaml:3: action `my action`: action name \"my action\" contains ' ': use letters, digits, '_', '.' and '-'; rename the action",
    ),
    (
        "requires with a bad tag",
        "version: 5\nactions:\n  a:\n    run: python:v1 a.py\n    requires: [gpu, 'a/b']\n",
        "drover.yaml:5: action `a`: tag name \"a/b\" contains '/': use letters, digits, '_', '.' and '-'; like `requires: [gpu]`",
    ),
];

fn parse(text: &str) -> Result<Project, String> {
    Project::parse("drover.yaml", text).map_err(|e| e.to_string())
}

#[test]
fn every_bad_file_gets_its_error() {
    let mut wrong = Vec::new();
    for (case, text, expected) in BAD {
        match parse(text) {
            Ok(_) => wrong.push(format!("{case}: parsed, expected {expected}")),
            Err(got) if got != *expected => {
                wrong.push(format!("{case}:\n   got {got}\n  want {expected}"))
            }
            Err(_) => {}
        }
    }
    assert!(BAD.len() >= 25, "only {} bad files", BAD.len());
    assert!(
        wrong.is_empty(),
        "{} of {} wrong:\n{}",
        wrong.len(),
        BAD.len(),
        wrong.join("\n")
    );
}

/// OpenSAFELY's own test project (format 4, `:latest` images, quotes in arguments).
const OPENSAFELY_V4: &str = r#"version: '4.0'

actions:
  generate_dataset:
    run: ehrql:v1 generate-dataset analysis/dataset_definition.py --output output/dataset.csv.gz
    outputs:
      highly_sensitive:
        dataset: output/dataset.csv.gz

  prepare_data_m:
    run: python:latest python analysis/filter_by_sex.py M output/input.csv male.csv
    needs: [generate_dataset]
    outputs:
      highly_sensitive:
        male_cohort: male*.csv

  prepare_data_with_quote_in_filename:
    run: python:latest python analysis/filter_by_sex.py F output/input.csv "qu'ote.csv"
    needs: [generate_dataset]
    outputs:
      highly_sensitive:
        quote_cohort: "qu'ote*.csv"

  analyse_data:
    run: python:latest python analysis/count_lines.py counts.txt
    config:
      files: ["male.csv", "qu'ote.csv"]
    needs: [prepare_data_m, prepare_data_with_quote_in_filename]
    outputs:
      moderately_sensitive:
        counts: counts.txt
"#;

/// A format-3 project with cohort-extractor's `expectations` and a block list of needs.
const OPENSAFELY_V3: &str = "version: 3.0

expectations:
  population_size: 1000

actions:
  generate_study_population:
    run: cohortextractor:latest generate_cohort --study-definition study_definition
    outputs:
      highly_sensitive:
        cohort: output/input.csv

  describe:
    run: r:latest analysis/describe.R
    needs:
      - generate_study_population
    outputs:
      moderately_sensitive:
        plot: output/descriptive.png
    dummy_data_file: test-data/dummy.csv
";

#[test]
fn opensafely_projects_parse() {
    let project = parse(OPENSAFELY_V4).unwrap();
    assert_eq!(project.version, 4.0);
    let names: Vec<&str> = project.actions.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "generate_dataset",
            "prepare_data_m",
            "prepare_data_with_quote_in_filename",
            "analyse_data"
        ]
    );
    let quoted = project
        .action("prepare_data_with_quote_in_filename")
        .unwrap();
    let Run::Image(command) = &quoted.run else {
        panic!("not an image: {:?}", quoted.run)
    };
    assert_eq!(command.image, "python:latest");
    assert_eq!(command.args.last().unwrap(), "qu'ote.csv");
    let analyse = project.action("analyse_data").unwrap();
    assert_eq!(
        analyse.needs,
        ["prepare_data_m", "prepare_data_with_quote_in_filename"]
    );
    assert_eq!(
        analyse.config,
        Some(serde_json::json!({"files": ["male.csv", "qu'ote.csv"]}))
    );
    assert_eq!(
        analyse.outputs.0[&Level::ModeratelySensitive]["counts"],
        "counts.txt"
    );
    assert!(
        project
            .warnings
            .iter()
            .any(|w| w.contains("format version 4")),
        "{:?}",
        project.warnings
    );
    assert!(
        project.warnings.iter().any(|w| w.contains("`latest`")),
        "{:?}",
        project.warnings
    );

    let project = parse(OPENSAFELY_V3).unwrap();
    assert_eq!(
        project.action("describe").unwrap().needs,
        ["generate_study_population"]
    );
}

const MATRIX: &str = "version: 5
actions:
  build:
    action: noop
    params: {size: 3}
  test:
    run: python:{matrix.python} -m pytest --os {matrix.os}
    needs: [build]
    matrix:
      python: ['3.11', '3.12', '3.13']
      os: [linux, mac]
    config: {target: '{matrix.os}'}
    outputs:
      moderately_sensitive:
        report: reports/{matrix.python}-{matrix.os}.xml
    timeout: 10m
    cpus: 0.5
    memory: 256m
    requires: [gpu]
  report:
    run: python:3.12 report.py
    needs: [test]
";

#[test]
fn a_matrix_expands_and_its_key_names_every_expansion() {
    let project = parse(MATRIX).unwrap();
    let tests: Vec<&str> = project
        .actions
        .iter()
        .filter(|a| a.template == "test")
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        tests,
        [
            "test-3.11-linux",
            "test-3.11-mac",
            "test-3.12-linux",
            "test-3.12-mac",
            "test-3.13-linux",
            "test-3.13-mac"
        ]
    );
    let one = project.action("test-3.12-mac").unwrap();
    let Run::Image(command) = &one.run else {
        panic!("not an image")
    };
    assert_eq!(command.image, "python:3.12");
    assert_eq!(command.args, ["-m", "pytest", "--os", "mac"]);
    assert_eq!(one.config, Some(serde_json::json!({"target": "mac"})));
    assert_eq!(
        one.outputs.0[&Level::ModeratelySensitive]["report"],
        "reports/3.12-mac.xml"
    );
    assert_eq!(one.timeout, Some(std::time::Duration::from_secs(600)));
    assert_eq!((one.cpus, one.memory), (Some(0.5), Some(256 << 20)));
    assert!(one.requires.contains("gpu"));
    assert_eq!(one.matrix["python"], "3.12");
    assert_eq!(project.action("report").unwrap().needs, tests);
    let build = project.action("build").unwrap();
    assert_eq!(build.run, Run::Catalogue("noop".into()));
    assert_eq!(build.params, serde_json::json!({"size": 3}));
    assert!(project.warnings.is_empty(), "{:?}", project.warnings);
}

const DIAMOND: &str = "version: 5
actions:
  d:
    action: noop
    needs: [b, c]
  b:
    action: noop
    needs: [a]
  c:
    action: noop
    needs: [a]
  a:
    action: noop
  other:
    action: noop
";

#[test]
fn a_request_runs_what_it_needs_in_order() {
    let project = parse(DIAMOND).unwrap();
    let names = |requested: &[&str]| -> Result<Vec<String>, String> {
        let requested: Vec<String> = requested.iter().map(|s| (*s).to_owned()).collect();
        Ok(project
            .resolve(&requested)?
            .iter()
            .map(|a| a.name.clone())
            .collect())
    };
    assert_eq!(names(&["d"]).unwrap(), ["a", "b", "c", "d"]);
    assert_eq!(names(&["c", "b"]).unwrap(), ["a", "c", "b"]);
    assert_eq!(names(&["run_all"]).unwrap(), ["a", "b", "c", "d", "other"]);
    let err = names(&["dd"]).unwrap_err();
    assert!(
        err.starts_with("the project has no action `dd` (did you mean `d`?)"),
        "{err}"
    );

    let matrix = parse(MATRIX).unwrap();
    let requested = vec!["test".to_owned()];
    assert_eq!(matrix.resolve(&requested).unwrap().len(), 7);
}

#[test]
fn a_long_chain_neither_recurses_nor_crawls() {
    let mut text = String::from("version: 5\nactions:\n  a0:\n    action: noop\n");
    for i in 1..2_000 {
        text.push_str(&format!(
            "  a{i}:\n    action: noop\n    needs: [a{}]\n",
            i - 1
        ));
    }
    let project = parse(&text).unwrap();
    let last = vec!["a1999".to_owned()];
    let order = project.resolve(&last).unwrap();
    assert_eq!(order.len(), 2_000);
    assert_eq!(order[0].name, "a0");
    text.push_str("  a0x:\n    action: noop\n");
    let cyclic = text.replacen(
        "  a0:\n    action: noop\n",
        "  a0:\n    action: noop\n    needs: [a1999]\n",
        1,
    );
    let err = parse(&cyclic).unwrap_err();
    assert_eq!(
        err,
        "drover.yaml:3: action `a0`: `needs` make a cycle (each needs the next): \
         a0 -> a1999 -> a1998 -> a1997 -> a1996 -> (1993 more) -> a2 -> a1 -> a0; \
         remove a need from each cycle so the actions can run in order"
    );
}

#[test]
fn a_matrix_value_cannot_lead_an_output_out_of_the_workspace() {
    let text = "version: 5
actions:
  test:
    run: python:3.12 -m pytest
    matrix:
      where: [a, ..]
    outputs:
      moderately_sensitive:
        report: output/{matrix.where}/report.xml
";
    let err = parse(text).unwrap_err();
    assert!(
        err.contains("drover.yaml:9") && err.contains("with `..`") && err.contains("test-.."),
        "{err}"
    );
}

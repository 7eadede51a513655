//! Actions as containers on the real Docker engine (image built by scripts/setup).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use drover_actions::PullPolicy;
use drover_executor::container::{ContainerError, ContainerSpec, DockerRuntime, LABEL_EXECUTOR};
use drover_tests::{init_test_tracing, within};
use futures::StreamExt;

const IMAGE: &str = "drover/busybox:latest";

fn spec(name: &str, command: &[&str]) -> ContainerSpec {
    ContainerSpec {
        name: format!("drover-test-{name}-{}", std::process::id()),
        labels: HashMap::from([(
            LABEL_EXECUTOR.to_owned(),
            format!("test-{}", std::process::id()),
        )]),
        image: IMAGE.to_owned(),
        command: command.iter().map(|s| s.to_string()).collect(),
        network: "none".to_owned(),
        params_json: br#"{"greeting":"hello; rm -rf /"}"#.to_vec(),
        env: vec!["DROVER_PARAM_GREETING=hello; rm -rf /".to_owned()],
        ..ContainerSpec::default()
    }
}

async fn run(
    docker: &DockerRuntime,
    spec: &ContainerSpec,
) -> anyhow::Result<(Vec<String>, drover_executor::container::Exit)> {
    let id = docker.create(spec).await?;
    docker.start(&id).await?;
    let output = docker.output(&id);
    let lines = within(
        "container output",
        Duration::from_secs(30),
        output
            .map(|l| format!("{}: {}", l.stream, l.line))
            .collect::<Vec<_>>(),
    )
    .await?;
    let exit = within("container exit", Duration::from_secs(30), docker.wait(&id)).await??;
    docker.remove(&id).await;
    Ok((lines, exit))
}

#[tokio::test]
async fn params_arrive_as_a_file_and_env_never_through_a_shell() -> anyhow::Result<()> {
    init_test_tracing();
    let docker = DockerRuntime::connect().await?;
    docker.ensure_image(IMAGE, PullPolicy::Never).await?;
    // The first time copied into the container's own filesystem; the second time the
    // same parameters come from a shared read-only volume (here with a read-only root).
    for read_only in [false, true] {
        let mut s = spec(
            "params",
            &[
                "sh",
                "-c",
                "cat /drover/params.json; echo; echo \"$DROVER_PARAM_GREETING\"; echo oops >&2; exit 3",
            ],
        );
        s.read_only = read_only;
        let (lines, exit) = run(&docker, &s).await?;
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("stdout"))
                .cloned()
                .collect::<Vec<_>>(),
            [
                r#"stdout: {"greeting":"hello; rm -rf /"}"#,
                "stdout: hello; rm -rf /"
            ],
            "read_only = {read_only}"
        );
        assert!(lines.contains(&"stderr: oops".to_owned()), "{lines:?}");
        assert_eq!(exit.code, 3);
        assert!(!exit.oom_killed);
    }
    // the same parameters twice: the second run built a shared volume
    docker.remove_params_volumes().await;
    Ok(())
}

#[tokio::test]
async fn a_tiny_memory_limit_is_reported_as_oom() -> anyhow::Result<()> {
    init_test_tracing();
    let docker = DockerRuntime::connect().await?;
    let mut s = spec(
        "oom",
        &[
            "sh",
            "-c",
            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        ],
    );
    s.memory = Some(8 << 20);
    let since = std::time::SystemTime::now() - Duration::from_secs(1);
    let id = docker.create(&s).await?;
    docker.start(&id).await?;
    let exit = within("container exit", Duration::from_secs(30), docker.wait(&id)).await??;
    assert_eq!(exit.code, 137);
    // Docker may lose the flag when it handles the exit first; its `oom` event says it
    assert!(
        exit.oom_killed || docker.oom_reported(&id, since).await,
        "{exit:?}"
    );
    docker.remove(&id).await;
    // a SIGKILL that is not the OOM killer's is not reported as one
    let killed = spec("sigkill", &["sh", "-c", "exit 137"]);
    let since = std::time::SystemTime::now() - Duration::from_secs(1);
    let id = docker.create(&killed).await?;
    docker.start(&id).await?;
    let exit = within("container exit", Duration::from_secs(30), docker.wait(&id)).await??;
    assert_eq!(exit.code, 137);
    assert!(!exit.oom_killed);
    assert!(!docker.oom_reported(&id, since).await);
    docker.remove(&id).await;
    docker.remove_params_volumes().await;
    Ok(())
}

#[tokio::test]
async fn stop_is_graceful_then_forced_and_remove_leaves_nothing() -> anyhow::Result<()> {
    init_test_tracing();
    let docker = DockerRuntime::connect().await?;
    // its own executor label: the other tests' containers run meanwhile
    let executor = format!("test-stop-{}", std::process::id());
    let labelled = |mut s: ContainerSpec| {
        s.labels.insert(LABEL_EXECUTOR.to_owned(), executor.clone());
        s
    };
    let s = labelled(spec(
        "stop",
        &[
            "sh",
            "-c",
            "trap 'echo got TERM; exit 0' TERM; while true; do sleep 0.1; done",
        ],
    ));
    let id = docker.create(&s).await?;
    docker.start(&id).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    docker.stop(&id, Duration::from_secs(5)).await;
    let exit = docker.wait(&id).await?;
    assert_eq!(exit.code, 0, "the TERM trap ran");
    assert!(started.elapsed() < Duration::from_secs(4));
    let stubborn = labelled(spec(
        "stubborn",
        &["sh", "-c", "trap '' TERM; while true; do sleep 0.1; done"],
    ));
    let id2 = docker.create(&stubborn).await?;
    docker.start(&id2).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    docker.stop(&id2, Duration::from_secs(1)).await;
    let exit = docker.wait(&id2).await?;
    assert_eq!(exit.code, 137, "killed after the grace period");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        docker.list_labelled(LABEL_EXECUTOR, &executor).await?.len(),
        2
    );
    docker.remove(&id).await;
    docker.remove(&id2).await;
    docker.remove_params_volumes().await;
    assert!(docker
        .list_labelled(LABEL_EXECUTOR, &executor)
        .await?
        .is_empty());
    Ok(())
}

#[tokio::test]
async fn an_image_that_cannot_be_had_says_which_and_why() -> anyhow::Result<()> {
    init_test_tracing();
    let docker = DockerRuntime::connect().await?;
    let err = docker
        .ensure_image("drover/does-not-exist:1", PullPolicy::Never)
        .await
        .unwrap_err();
    assert!(matches!(err, ContainerError::ImageUnavailable { .. }));
    assert!(
        err.to_string().contains("drover/does-not-exist:1") && err.to_string().contains("never"),
        "{err}"
    );
    let err = docker
        .ensure_image("drover/does-not-exist:1", PullPolicy::IfNotPresent)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pulling it failed"), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_last_line_of_each_stream_arrives_without_its_newline() -> anyhow::Result<()> {
    init_test_tracing();
    let docker = DockerRuntime::connect().await?;
    // Docker's follow often ends before what a container flushes as it exits (about
    // one run in two here): ten runs all miss nothing
    for n in 0..10 {
        let s = spec(
            &format!("unfinished-{n}"),
            &["sh", "-c", "echo first; printf 'x'; printf 'err' >&2"],
        );
        let (lines, _) = run(&docker, &s).await?;
        let mut sorted = lines.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            ["stderr: err", "stdout: first", "stdout: x"],
            "run {n}: {lines:?}"
        );
    }
    docker.remove_params_volumes().await;
    Ok(())
}

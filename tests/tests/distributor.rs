//! Distributors against a real ZooKeeper and a real API: one leader per distribution,
//! fail-over within the session timeout, no tick with two jobs and none lost beyond the
//! catch-up policy across 50 forced leader changes, a paused leader that stops generating,
//! clean SIGTERM, and start-up errors that name the field.

mod distributor_support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use distributor_support::{Cluster, DEADLINE, SESSION};
use drover_tests::{drover_command, wait_until, within};
use nix::sys::signal::Signal;

/// Two distributions ticking every second: one replays every missed tick, one only the
/// latest.
const TICKING: &str = r#"reconcile_every = "1s"
[[distributor.distributions]]
name = "tick-all"
action = "noop"
every = "1s"
catch_up = "all"
[[distributor.distributions]]
name = "tick-latest"
action = "noop"
every = "1s"
"#;

/// The tick times (ms since the epoch) of `name`'s jobs, checking each tick has one job.
async fn ticks(cluster: &Cluster, name: &str) -> anyhow::Result<Vec<u64>> {
    let jobs = cluster.tick_jobs(name).await?;
    let mut ticks = Vec::with_capacity(jobs.len());
    let mut seen = BTreeSet::new();
    for (key, _) in &jobs {
        let text = key
            .strip_prefix(&format!("distribution/{name}/"))
            .context("key prefix")?;
        let tick = chrono_ms(text)?;
        ensure!(
            tick % 1000 == 0,
            "tick {text} of {name} is not on the schedule"
        );
        ensure!(seen.insert(tick), "tick {text} of {name} has two jobs");
        ticks.push(tick);
    }
    ticks.sort_unstable();
    Ok(ticks)
}

/// Milliseconds since the epoch of `2025-01-02T03:04:05.000Z`.
fn chrono_ms(text: &str) -> anyhow::Result<u64> {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("{text:?} is not RFC 3339"))?;
    Ok(u64::try_from(t.unix_timestamp_nanos() / 1_000_000)?)
}

/// The tick (ms since the epoch) a distributor's `tick=…` log field names.
fn logged_tick_ms(line: &str) -> Option<u64> {
    let text = line.split("tick=").nth(1)?.split_whitespace().next()?;
    chrono_ms(text.trim_matches('"')).ok()
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0)
}

/// Ticks missing between the first and the last of `ticks` within `[from, to]`.
fn gaps(ticks: &[u64], from: u64, to: u64) -> Vec<u64> {
    let set: BTreeSet<u64> = ticks.iter().copied().collect();
    let first = from.div_ceil(1000) * 1000;
    (first..=to)
        .step_by(1000)
        .filter(|t| !set.contains(t))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_fails_over_and_fifty_leader_changes_lose_and_duplicate_nothing(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut a = cluster.distributor("dist-a", TICKING).await?;
    for name in ["tick-all", "tick-latest", "reconcile"] {
        cluster.wait_leader(name, "dist-a", DEADLINE).await?;
    }
    let b = cluster.distributor("dist-b", TICKING).await?;
    for name in ["tick-all", "tick-latest", "reconcile"] {
        wait_until(
            &format!("dist-b to contend for {name}"),
            DEADLINE,
            || async { cluster.contenders(name).await.is_ok_and(|c| c.len() == 2) },
        )
        .await?;
    }
    // A few ticks under one leader: only it generates, and `drover distributions` says so.
    wait_until("three tick-latest jobs", DEADLINE, || async {
        cluster
            .tick_jobs("tick-latest")
            .await
            .is_ok_and(|j| j.len() >= 3)
    })
    .await?;
    ensure!(
        b.lines_with(&["tick submitted"]).is_empty(),
        "the follower generated jobs:\n{}",
        b.child.stderr()
    );
    check_distributions_command(&cluster).await?;

    // SIGKILL the leader: the other generates within the session timeout + 1 s.
    let killed_at = Instant::now();
    let killed_ms = now_ms();
    a.child.signal(Signal::SIGKILL)?;
    wait_until(
        "dist-b to submit a tick-latest tick",
        SESSION + Duration::from_secs(5),
        || async {
            !b.lines_with(&["tick submitted", "distribution=tick-latest"])
                .is_empty()
        },
    )
    .await?;
    let failover = killed_at.elapsed();
    eprintln!("fail-over: dist-b generated {failover:?} after dist-a was killed (session timeout {SESSION:?})");
    ensure!(
        failover <= SESSION + Duration::from_secs(1),
        "fail-over took {failover:?}, more than the session timeout + 1 s"
    );
    let _ = a.child.wait().await;

    // Back to two distributors, then 50 forced leader changes: delete the leader's
    // election node, as an operator or a lost session would, and wait for the next one.
    let a = cluster.distributor("dist-a", TICKING).await?;
    for name in ["tick-all", "tick-latest"] {
        wait_until(
            &format!("dist-a to contend for {name}"),
            DEADLINE,
            || async { cluster.contenders(name).await.is_ok_and(|c| c.len() == 2) },
        )
        .await?;
    }
    let churn_from = now_ms();
    let churn_started = Instant::now();
    let mut changes = 0;
    while changes < 50 {
        let name = if changes % 2 == 0 {
            "tick-all"
        } else {
            "tick-latest"
        };
        let contenders = cluster.contenders(name).await?;
        let leader = contenders.first().cloned().context("nobody contends")?;
        let before = cluster.leader(name).await?;
        cluster
            .session
            .client()
            .delete(&format!("/election/{name}/{leader}"), None)
            .await?;
        wait_until(&format!("a new leader of {name}"), DEADLINE, || async {
            let now = cluster.contenders(name).await.unwrap_or_default();
            now.len() == 2 && now.first() != Some(&leader)
        })
        .await?;
        let after = cluster.leader(name).await?;
        ensure!(
            after != before,
            "{name}: the leader did not change ({before:?})"
        );
        changes += 1;
        tokio::time::sleep(Duration::from_millis(fastrand::u64(150..450))).await;
    }
    let churn_to = now_ms();
    eprintln!("50 leader changes in {:?}", churn_started.elapsed());
    // Let the last ticks land, then stop both cleanly.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let checked_to = now_ms() - 1500;
    let mut roles = [b, a];
    for role in &mut roles {
        let (code, took) = role.terminate(Duration::from_secs(15)).await?;
        ensure!(
            code == Some(0),
            "{} exited {code:?} after SIGTERM:\n{}",
            role.id,
            role.child.stderr()
        );
        ensure!(
            took < Duration::from_secs(5),
            "{} took {took:?} to stop",
            role.id
        );
        eprintln!("{} stopped {took:?} after SIGTERM", role.id);
    }
    for name in ["tick-all", "tick-latest", "reconcile"] {
        ensure!(
            cluster.contenders(name).await?.is_empty(),
            "{name}: election nodes left after SIGTERM"
        );
    }

    // No tick has two jobs (checked by `ticks`); none is lost beyond the policy.
    let all = ticks(&cluster, "tick-all").await?;
    let latest = ticks(&cluster, "tick-latest").await?;
    let first = *all.first().context("no tick-all jobs")?;
    let missing_all = gaps(&all, first, checked_to);
    ensure!(
        missing_all.is_empty(),
        "catch_up = all lost ticks {missing_all:?} (kill at {killed_ms})"
    );
    let missing_latest = gaps(&latest, churn_from, churn_to);
    ensure!(
        missing_latest.is_empty(),
        "catch_up = latest lost ticks {missing_latest:?} during the leader changes"
    );
    // Over the SIGKILL gap (about one session timeout without a leader), `latest` runs the
    // latest missed tick and skips the older ones; `all` replayed them (checked above).
    let gap_latest = gaps(&latest, killed_ms, killed_ms + 2_000);
    ensure!(
        gap_latest.len() <= 2,
        "catch_up = latest lost more than the ticks of the leaderless gap: {gap_latest:?}"
    );
    eprintln!(
        "tick-all: {} jobs, tick-latest: {} jobs ({} skipped while nobody led), none twice",
        all.len(),
        latest.len(),
        gap_latest.len()
    );
    Ok(())
}

/// `drover distributions` shows each distribution with its leader and ticks.
async fn check_distributions_command(cluster: &Cluster) -> anyhow::Result<()> {
    let run = |args: &'static [&'static str]| async move {
        let mut command = drover_command().await?;
        command
            .args(args)
            .env("DROVER_URL", &cluster.url)
            .env("DROVER_TOKEN", distributor_support::SUBMITTER);
        let out = within("drover distributions", DEADLINE, command.output()).await??;
        ensure!(
            out.status.success(),
            "drover {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok::<_, anyhow::Error>(String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let json: serde_json::Value =
        serde_json::from_str(&run(&["distributions", "-o", "json"]).await?)?;
    let list = json.as_array().context("a list")?;
    let names: Vec<&str> = list.iter().filter_map(|d| d["name"].as_str()).collect();
    ensure!(names == ["reconcile", "tick-all", "tick-latest"], "{json}");
    for d in list {
        ensure!(d["leader"] == "dist-a", "leader of {d}");
        ensure!(d["next_tick"].is_string(), "next tick of {d}");
    }
    ensure!(
        list[2]["last_tick"].is_string() && list[2]["schedule"] == "every 1s",
        "{json}"
    );
    let table = run(&["distributions"]).await?;
    ensure!(
        table.starts_with("NAME") && table.contains("tick-latest") && table.contains("dist-a"),
        "{table}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_stops_generating_and_creates_nothing_once_resumed() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let body = "reconcile = false\n[[distributor.distributions]]\nname = \"pulse\"\naction = \"noop\"\nevery = \"1s\"\n";
    let a = cluster.distributor("dist-a", body).await?;
    cluster.wait_leader("pulse", "dist-a", DEADLINE).await?;
    let b = cluster.distributor("dist-b", body).await?;
    wait_until("dist-b to contend", DEADLINE, || async {
        cluster
            .contenders("pulse")
            .await
            .is_ok_and(|c| c.len() == 2)
    })
    .await?;
    wait_until("dist-a to generate", DEADLINE, || async {
        !a.lines_with(&["tick submitted"]).is_empty()
    })
    .await?;

    let first = a.lines_with(&["tick submitted"]).remove(0);
    ensure!(
        logged_tick_ms(&first).is_some(),
        "no tick in the log line {first:?}"
    );

    // Freeze the leader past its session timeout: the other takes over.
    let frozen_at_ms = now_ms();
    a.child.signal(Signal::SIGSTOP)?;
    let stopped_at = Instant::now();
    cluster.wait_leader("pulse", "dist-b", SESSION * 5).await?;
    wait_until("dist-b to generate", SESSION * 5, || async {
        b.lines_with(&["tick submitted"]).len() >= 3
    })
    .await?;
    eprintln!(
        "dist-b generating {:?} after dist-a froze",
        stopped_at.elapsed()
    );

    // Thaw it: its timers fire at once, but it must not act on a leadership it lost.
    let before = a.lines_with(&["tick submitted"]).len();
    a.child.signal(Signal::SIGCONT)?;
    wait_until(
        "dist-a to notice its leadership is gone",
        DEADLINE,
        || async { !a.lines_with(&["leadership lost"]).is_empty() },
    )
    .await?;
    wait_until("dist-a to contend again", DEADLINE, || async {
        cluster
            .contenders("pulse")
            .await
            .is_ok_and(|c| c.len() == 2)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A submit the freeze caught in flight (its tick due before the freeze, its
    // leadership checked) may complete on thaw; the tick's key makes it that tick's only
    // job (`ticks` checks). No tick due after the freeze may be acted on.
    let after = a.lines_with(&["tick submitted"]);
    let begun_after_thaw: Vec<&String> = after[before..]
        .iter()
        .filter(|line| logged_tick_ms(line).is_none_or(|tick| tick > frozen_at_ms))
        .collect();
    ensure!(
        begun_after_thaw.is_empty() && after.len() - before <= 1,
        "the thawed ex-leader submitted ticks the new leader owns:\n{}",
        after[before..].join("\n")
    );
    ensure!(cluster.leader("pulse").await?.as_deref() == Some("dist-b"));
    // Every tick since the freeze has exactly one job (`ticks` checks) and none is lost
    // beyond the leaderless gap.
    let all = ticks(&cluster, "pulse").await?;
    let recent = now_ms() - 1500;
    let missing = gaps(&all, recent - 3000, recent);
    ensure!(
        missing.is_empty(),
        "ticks {missing:?} lost after the take-over"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_distributions_stop_start_up_naming_the_field() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let cases = [
        ("cron = \"0 25 * * *\"", "distributor.distributions[1].cron"),
        (
            "every = \"1m\"\ncolour = \"red\"",
            "distributor.distributions[1].colour",
        ),
        ("every = \"0s\"", "distributor.distributions[1].every"),
        (
            "every = \"300000y\"",
            "distributor.distributions[1].every: 300000years is out of range",
        ),
        (
            "every = \"1m\"\ncron = \"0 2 * * *\"",
            "distributor.distributions[1]",
        ),
    ];
    let mut texts: Vec<(String, &str)> = cases
        .iter()
        .map(|(extra, field)| {
            (
                format!("[distributor]\nid = \"d\"\n[[distributor.distributions]]\naction = \"noop\"\nevery = \"1h\"\n[[distributor.distributions]]\nname = \"second\"\naction = \"noop\"\n{extra}\n"),
                *field,
            )
        })
        .collect();
    texts.push((
        "[distributor]\nid = \"d\"\n[[distributor.distributions]]\naction = \"frobnicate\"\nevery = \"1h\"\n".into(),
        "distributor.distributions[0].action: unknown action \"frobnicate\"",
    ));
    texts.push((
        "[distributor]\nid = \"d\"\nreconcile_every = \"0s\"\n".into(),
        "distributor.reconcile_every",
    ));
    for (i, (text, field)) in texts.iter().enumerate() {
        let path = dir.path().join(format!("bad-{i}.toml"));
        std::fs::write(
            &path,
            format!("[zookeeper]\nhosts = \"127.0.0.1:1\"\n{text}"),
        )?;
        let mut command = drover_command().await?;
        command.arg("distributor").arg("--config").arg(&path);
        // A config that is wrongly accepted starts a distributor that never exits.
        command.kill_on_drop(true);
        let out = within(
            "drover distributor with a bad config",
            DEADLINE,
            command.output(),
        )
        .await??;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(2),
            "case {i}: exit {:?}, stderr {stderr}",
            out.status
        );
        ensure!(
            stderr.contains(field),
            "case {i}: {stderr:?} should name {field:?}"
        );
    }
    Ok(())
}

/// `(idempotency_key, request id)` of every request `name`'s ticks made, by key.
async fn tick_requests(cluster: &Cluster, name: &str) -> anyhow::Result<Vec<(String, String)>> {
    let db = cluster.db().await?;
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT idempotency_key, id FROM requests WHERE idempotency_key LIKE $1 ORDER BY idempotency_key",
    )
    .bind(format!("distribution/{name}/%"))
    .fetch_all(&db)
    .await?;
    db.close().await;
    Ok(rows)
}

/// A distribution naming a pipeline: each tick submits one request of the project file
/// (keyed by the tick, so a new leader resubmitting a tick makes nothing new), which
/// runs the requested action and skips the dependency that already succeeded; a SIGKILLed
/// leader's successor goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_distribution_submits_one_request_per_tick_across_a_fail_over(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let file = cluster.dir.path().join("nightly.yaml");
    std::fs::write(
        &file,
        "version: 5\nactions:\n  prep: {action: noop}\n  report: {action: noop, needs: [prep]}\n",
    )?;
    let body = format!(
        "reconcile = false\n[[distributor.distributions]]\nname = \"nightly\"\nevery = \"1s\"\n[distributor.distributions.pipeline]\nfile = \"{}\"\nactions = [\"report\"]\n",
        file.display()
    );
    let _e1 = cluster.executor("e1", 2).await?;
    let a = cluster.distributor("dist-a", &body).await?;
    cluster.wait_leader("nightly", "dist-a", DEADLINE).await?;
    let b = cluster.distributor("dist-b", &body).await?;
    wait_until("three requests", DEADLINE, || async {
        tick_requests(&cluster, "nightly")
            .await
            .is_ok_and(|r| r.len() >= 3)
    })
    .await?;
    a.child.signal(Signal::SIGKILL)?;
    cluster
        .wait_leader("nightly", "dist-b", SESSION * 5)
        .await?;
    let before = tick_requests(&cluster, "nightly").await?.len();
    wait_until("two requests from dist-b", DEADLINE, || async {
        tick_requests(&cluster, "nightly")
            .await
            .is_ok_and(|r| r.len() >= before + 2)
    })
    .await?;
    ensure!(!b.lines_with(&["tick submitted", "request_id"]).is_empty());
    let requests = tick_requests(&cluster, "nightly").await?;
    let keys: BTreeSet<&String> = requests.iter().map(|(key, _)| key).collect();
    ensure!(
        keys.len() == requests.len(),
        "one request per tick: {requests:?}"
    );

    // Every job the ticks made ends SUCCEEDED; `prep` ran once, every request ran `report`.
    let admin = cluster.admin()?;
    let mut reports = 0;
    let mut preps = 0;
    for (_, id) in &requests {
        let detail = admin.request_detail(id).await?;
        for job in &detail.jobs {
            wait_until(&format!("job {} to end", job.id), DEADLINE, || async {
                admin.get(job.id).await.is_ok_and(|j| j.state.is_terminal())
            })
            .await?;
            let job = admin.get(job.id).await?;
            ensure!(
                job.status_code == drover_core::StatusCode::Succeeded,
                "{job:?}"
            );
            match job.pipeline_action.as_deref() {
                Some("prep") => preps += 1,
                Some("report") => reports += 1,
                other => anyhow::bail!("unexpected job {other:?}"),
            }
        }
        ensure!(
            detail.request.workspace == "nightly",
            "{:?}",
            detail.request
        );
    }
    ensure!(
        preps == 1 && reports == requests.len(),
        "prep {preps}, report {reports} over {} requests",
        requests.len()
    );
    Ok(())
}

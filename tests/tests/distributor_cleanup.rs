//! `cleanup_jobs` run by a real executor against a real API: only finished jobs older
//! than the retention go, with their logs, in batches.

mod distributor_support;

use anyhow::ensure;
use distributor_support::{Cluster, DEADLINE, DISTRIBUTOR, EXECUTOR, SUBMITTER};
use drover_client::StatusCode as HttpStatus;
use drover_core::{FencingToken, JobId, State, StatusCode};
use drover_model::{AppendLogs, Claim, Cleanup, Finish, Job, LogLine, SubmitJob};
use drover_tests::wait_until;

const DAY_US: i64 = 86_400 * 1_000_000;

/// A noop job whose entry the test takes and claims (so no executor runs it), with
/// three log lines, finished unless `finish` is false.
async fn finished_job(cluster: &Cluster, _n: i64, finish: bool) -> anyhow::Result<Job> {
    let admin = cluster.admin()?;
    let executor = cluster.client(EXECUTOR)?;
    let job = admin
        .submit(&SubmitJob {
            action: "noop".into(),
            ..SubmitJob::default()
        })
        .await?
        .job;
    let hold = drover_tests::hold_entry(&cluster.session, &job.id.to_string()).await?;
    let token = FencingToken::new(hold.token);
    executor
        .claim(
            job.id,
            &Claim {
                token,
                executor: "hand".into(),
                entry: hold.entry,
            },
        )
        .await?;
    let lines = (0..3)
        .map(|i| LogLine {
            stream: "stdout".into(),
            line: format!("line {i}"),
        })
        .collect();
    executor
        .append_logs(job.id, &AppendLogs { token, lines })
        .await?;
    if !finish {
        return Ok(job);
    }
    Ok(executor
        .finish(
            job.id,
            &Finish {
                token,
                status_code: StatusCode::Succeeded,
                exit_code: Some(0),
                message: None,
            },
        )
        .await?)
}

/// Moves the job's times `days` into the past.
async fn age(cluster: &Cluster, ids: &[JobId], days: i64) -> anyhow::Result<()> {
    let db = cluster.db().await?;
    for id in ids {
        sqlx::query(
            "UPDATE jobs SET created_us = created_us - $2, started_us = started_us - $2, \
             finished_us = finished_us - $2, last_heartbeat_us = last_heartbeat_us - $2 WHERE id = $1",
        )
        .bind(id.to_string())
        .bind(days * DAY_US)
        .execute(&db)
        .await?;
    }
    db.close().await;
    Ok(())
}

async fn log_rows(cluster: &Cluster, id: JobId) -> anyhow::Result<i64> {
    let db = cluster.db().await?;
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM job_logs WHERE job_id = $1")
        .bind(id.to_string())
        .fetch_one(&db)
        .await?;
    db.close().await;
    Ok(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_jobs_deletes_only_old_finished_jobs_with_their_logs_in_batches(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let admin = cluster.admin()?;
    let mut old = Vec::new();
    for n in 0..7 {
        old.push(finished_job(&cluster, n, true).await?.id);
    }
    let recent = finished_job(&cluster, 10, true).await?.id;
    let inside_retention = finished_job(&cluster, 11, true).await?.id;
    let old_running = finished_job(&cluster, 12, false).await?.id;
    let retry = admin.retry(old[0]).await?.id;
    age(&cluster, &old, 8).await?;
    age(&cluster, &[old_running], 8).await?;
    age(&cluster, &[inside_retention], 6).await?;
    ensure!(log_rows(&cluster, old[3]).await? == 3);

    // Only executors (and admins) may delete.
    for token in [SUBMITTER, DISTRIBUTOR] {
        let refused = cluster
            .client(token)?
            .cleanup(&Cleanup {
                older_than_secs: 1,
                batch: None,
            })
            .await;
        ensure!(refused.is_err_and(|e| e.status() == Some(HttpStatus::FORBIDDEN)));
    }

    let params = serde_json::json!({ "older_than": "7d", "batch": 3 });
    let cleanup = admin
        .submit(&SubmitJob {
            action: "cleanup_jobs".into(),
            params: params
                .as_object()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ..SubmitJob::default()
        })
        .await?
        .job;
    let _executor = cluster.executor("exec-clean", 1).await?;
    wait_until("the cleanup job to finish", DEADLINE, || async {
        admin
            .get(cleanup.id)
            .await
            .is_ok_and(|j| j.state.is_terminal())
    })
    .await?;
    let done = admin.get(cleanup.id).await?;
    ensure!(done.status_code == StatusCode::Succeeded, "{done:?}");
    ensure!(
        done.status_message.contains("deleted 7 finished jobs"),
        "{}",
        done.status_message
    );

    wait_until("the cleanup job's batch log lines", DEADLINE, || async {
        admin
            .logs(cleanup.id, 0, None)
            .await
            .is_ok_and(|page| page.lines.iter().filter(|l| l.stream == "stdout").count() >= 3)
    })
    .await?;
    // the executor's own first line (how to re-create the job) is on the drover stream
    let batches: Vec<String> = admin
        .logs(cleanup.id, 0, None)
        .await?
        .lines
        .into_iter()
        .filter(|l| l.stream == "stdout")
        .map(|l| l.line)
        .collect();
    ensure!(batches.len() == 3, "{batches:?}");
    for (line, n) in batches.iter().zip([3, 3, 1]) {
        ensure!(
            line.contains(&format!("deleted {n} jobs and {} log lines", 3 * n)),
            "{line}"
        );
    }
    for id in &old {
        let gone = admin.get(*id).await;
        ensure!(
            gone.is_err_and(|e| e.is_not_found()),
            "old job {id} is still there"
        );
        ensure!(
            log_rows(&cluster, *id).await? == 0,
            "job {id} left log lines"
        );
    }
    for id in [recent, inside_retention, old_running, retry] {
        admin.get(id).await?;
    }
    ensure!(admin.get(old_running).await?.state == State::Running);
    ensure!(log_rows(&cluster, recent).await? == 3);
    ensure!(
        admin.get(retry).await?.retry_of.is_none(),
        "the retry lost its link, nothing else"
    );
    // A second run finds nothing more to delete.
    let again = admin
        .cleanup(&Cleanup {
            older_than_secs: 7 * 86_400,
            batch: Some(3),
        })
        .await?;
    ensure!(again.deleted_jobs == 0 && !again.more, "{again:?}");
    Ok(())
}

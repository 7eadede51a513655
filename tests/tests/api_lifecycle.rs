//! The job API's fenced lifecycle against a real ZooKeeper, on SQLite and PostgreSQL:
//! submit → claim → heartbeat → logs → finish, fencing, concurrent claims,
//! cancellation, kill, release and attempts.

mod api_support;

use std::collections::HashSet;
use std::time::Duration;

use api_support::{assert_api_error, Backend, TestApi, ADMIN, DEADLINE, SUBMITTER};
use drover_coordination::Queue;
use drover_tests::{connect, within, Hold};
use reqwest::StatusCode;
use serde_json::{json, Value};

on_both_databases!(
    full_lifecycle_through_the_real_queue,
    an_old_token_changes_nothing_after_a_reclaim,
    eight_concurrent_claims_one_winner,
    a_job_cancelled_while_queued_never_runs,
    cancel_racing_claim_never_loses_the_cancel,
    cancel_and_kill_of_a_running_job_reach_the_executor,
    release_beyond_max_attempts_fails_the_job,
    claims_are_proven_in_zookeeper_and_a_duplicate_entry_never_takes_over,
    every_run_is_recorded_with_its_executor_times_and_outcome,
);

/// The attempt history (`GET /v1/jobs/{id}/attempts`), kept by the database's triggers:
/// a run given back, a run taken over, a run that succeeded.
async fn every_run_is_recorded_with_its_executor_times_and_outcome(
    backend: Backend,
) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let outcome = runs_are_recorded(&api).await;
    api.stop().await?;
    outcome
}

async fn runs_are_recorded(api: &TestApi) -> anyhow::Result<()> {
    let id = api.submit_noop().await?;
    let path = format!("/v1/jobs/{id}/attempts");
    let attempts = || api.get(&path, SUBMITTER);
    let (status, none) = attempts().await?;
    assert_eq!((status, none), (StatusCode::OK, json!([])));
    let (first, status, _) = api.take_and_claim(&id, "exec-a").await?;
    assert_eq!(status, StatusCode::OK);
    let (_, running) = attempts().await?;
    assert_eq!(running[0]["executor"], "exec-a");
    assert!(
        is_rfc3339(&running[0]["started_at"]) && running[0]["ended_at"].is_null(),
        "{running}"
    );
    let (status, _) = api.release(&id, first.token, "drain deadline").await?;
    assert_eq!(status, StatusCode::OK);
    let second = api.retake(&first).await?;
    let (status, _) = api.claim(&id, &second, "exec-b").await?;
    assert_eq!(status, StatusCode::OK);
    // exec-b vanished: its entry is taken again and the job re-claimed.
    let third = api.retake(&second).await?;
    let (status, _) = api.claim(&id, &third, "exec-c").await?;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .finish(
            &id,
            json!({ "token": third.token, "status_code": "SUCCEEDED", "exit_code": 0 }),
        )
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (_, runs) = attempts().await?;
    let summary: Vec<(Value, Value, Value, Value)> = runs
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            (
                r["attempt"].clone(),
                r["executor"].clone(),
                r["token"].clone(),
                r["outcome"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                json!(1),
                json!("exec-a"),
                json!(first.token),
                json!("ENQUEUED")
            ),
            (
                json!(2),
                json!("exec-b"),
                json!(second.token),
                json!("TAKEN_OVER")
            ),
            (
                json!(3),
                json!("exec-c"),
                json!(third.token),
                json!("SUCCEEDED")
            ),
        ],
        "{runs:#}"
    );
    assert!(
        runs[0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("drain deadline"),
        "{runs:#}"
    );
    for run in runs.as_array().into_iter().flatten() {
        assert!(
            is_rfc3339(&run["ended_at"]) && run["ended_at"].as_str() >= run["started_at"].as_str(),
            "{run}"
        );
    }
    let (status, _) = api
        .get(
            "/v1/jobs/67e55044-10b1-426f-9247-bb680e5fe0c8/attempts",
            SUBMITTER,
        )
        .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    Ok(())
}

fn is_rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|s| s.len() >= 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T')
}

async fn full_lifecycle_through_the_real_queue(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let job = api
        .submit(json!({ "action": "noop", "params": { "n": 1 }, "priority": 5 }))
        .await?;
    // No executor is registered in these tests: the API shows the enqueued job as
    // waiting for one (worked out when read; the record says ENQUEUED).
    assert_eq!(job["state"], "QUEUED");
    assert_eq!(job["status_code"], "WAITING_ON_WORKERS", "{job}");
    assert!(
        job["status_message"]
            .as_str()
            .is_some_and(|m| m.contains("no executor is registered")),
        "{job}"
    );
    assert_eq!(job["enqueued"], true);
    assert_eq!(job["attempts"], 0);
    assert_eq!(job["max_attempts"], 3);
    assert_eq!(job["timeout_secs"], 3600);
    assert_eq!(job["params"], json!({ "n": 1 }));
    assert!(is_rfc3339(&job["created_at"]), "{job}");
    let id = job["id"].as_str().unwrap_or_default().to_owned();

    // An executor takes the entry from the real queue; the taken node's zxid is the token.
    let zk = api
        .zk
        .as_ref()
        .map(|zk| zk.connect_string())
        .unwrap_or_default();
    let session = connect(&zk, Duration::from_secs(4)).await?;
    let queue = Queue::open(&session, "/job").await?;
    let taken = within("take", DEADLINE, queue.take(Some(DEADLINE)))
        .await??
        .expect("the entry");
    assert_eq!(taken.job_id()?.to_string(), id);
    assert!(taken.name().starts_with("entry-005-"), "{}", taken.name());
    let token = taken.token().get();
    let hold = Hold {
        entry: taken.name().to_owned(),
        token,
    };

    let (status, claimed) = api.claim(&id, &hold, "executor-1").await?;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["state"], "RUNNING");
    assert_eq!(claimed["status_code"], "PREPARING");
    assert_eq!(claimed["attempts"], 1);
    assert_eq!(claimed["executor"], "executor-1");
    assert_eq!(claimed["fencing_token"], token);
    assert_eq!(claimed["queue_entry"], taken.name());
    assert!(is_rfc3339(&claimed["started_at"]), "{claimed}");

    let (status, reply) = api
        .heartbeat(
            &id,
            json!({ "token": token, "progress": 50, "status_code": "EXECUTING" }),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        reply,
        json!({ "cancel_requested": false, "kill_requested": false })
    );
    let running = api.job(&id).await?;
    assert_eq!(
        (running["status_code"].clone(), running["progress"].clone()),
        (json!("EXECUTING"), json!(50))
    );
    assert!(is_rfc3339(&running["last_heartbeat"]), "{running}");

    let lines = json!({ "token": token, "lines": [
        { "stream": "stdout", "line": "hello" }, { "stream": "stderr", "line": "world" } ] });
    let (status, appended) = api
        .post(&format!("/v1/jobs/{id}/logs"), api_support::EXECUTOR, lines)
        .await?;
    assert_eq!(status, StatusCode::OK, "{appended}");
    assert_eq!(appended, json!({ "accepted": 2, "truncated": false }));
    let (_, page) = api.get(&format!("/v1/jobs/{id}/logs"), SUBMITTER).await?;
    assert_eq!(
        page["lines"][0],
        json!({ "seq": 1, "stream": "stdout", "line": "hello" })
    );
    assert_eq!(page["next"], 2);
    assert_eq!(page["finished"], false);

    let result = json!({ "token": token, "status_code": "SUCCEEDED", "exit_code": 0 });
    let (status, done) = api.finish(&id, result.clone()).await?;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(
        (done["state"].clone(), done["status_code"].clone()),
        (json!("SUCCESS"), json!("SUCCEEDED"))
    );
    assert_eq!(done["exit_code"], 0);
    assert_eq!(done["progress"], 100);
    assert!(is_rfc3339(&done["finished_at"]), "{done}");
    // The same result again (a retried request) answers the job; another result is a 409.
    let (status, again) = api.finish(&id, result).await?;
    assert_eq!((status, &again), (StatusCode::OK, &done));
    let (status, body) = api
        .finish(
            &id,
            json!({ "token": token, "status_code": "NONZERO_EXIT", "exit_code": 1 }),
        )
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_api_error(&body, "job_finished", &["SUCCESS"]);
    assert_eq!(body["state"], "SUCCESS");
    let (status, body) = api.heartbeat(&id, json!({ "token": token })).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["status_code"], "SUCCEEDED");
    let (_, page) = api
        .get(&format!("/v1/jobs/{id}/logs?after=1"), SUBMITTER)
        .await?;
    assert_eq!(page["lines"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["finished"], true);
    taken.consume().await?;

    let record = api.db_record(&id).await?.expect("the row");
    assert_eq!(record["state"], "SUCCESS");
    assert_eq!(record["fencing_token"], token);
    api.stop().await
}

async fn an_old_token_changes_nothing_after_a_reclaim(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let id = api.submit_noop().await?;
    let (zombie, status, _) = api.take_and_claim(&id, "zombie").await?;
    assert_eq!(status, StatusCode::OK);
    // The first holder's session died, so its entry was taken again: the newer token
    // of the same entry re-claims the job.
    let successor = api.retake(&zombie).await?;
    let (status, reclaimed) = api.claim(&id, &successor, "successor").await?;
    assert_eq!(status, StatusCode::OK, "{reclaimed}");
    assert_eq!(reclaimed["attempts"], 2);
    assert_eq!(reclaimed["executor"], "successor");
    assert_eq!(reclaimed["fencing_token"], successor.token);
    let (old, new) = (zombie.token, successor.token);

    // Every write of the zombie is refused, and nothing changes.
    let stale_writes = [
        (
            "heartbeat",
            json!({ "token": old, "progress": 99, "status_code": "FINALIZING" }),
        ),
        (
            "finish",
            json!({ "token": old, "status_code": "SUCCEEDED", "exit_code": 0 }),
        ),
        ("release", json!({ "token": old, "message": "zombie" })),
        (
            "logs",
            json!({ "token": old, "lines": [{ "stream": "stdout", "line": "zombie" }] }),
        ),
        (
            "claim",
            json!({ "token": new, "executor": "zombie", "entry": successor.entry }),
        ),
    ];
    for (endpoint, body) in stale_writes {
        let (status, answer) = api
            .post(
                &format!("/v1/jobs/{id}/{endpoint}"),
                api_support::EXECUTOR,
                body,
            )
            .await?;
        assert_eq!(status, StatusCode::CONFLICT, "{endpoint}: {answer}");
        assert_api_error(&answer, "stale_token", &[&new.to_string()]);
        assert_eq!(answer["state"], "RUNNING");
    }
    // The zombie's own claim again: ZooKeeper shows its entry taken since.
    let (status, answer) = api.claim(&id, &zombie, "zombie").await?;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_api_error(&answer, "entry_retaken", &[&new.to_string()]);
    assert_eq!(api.job(&id).await?, reclaimed, "the record is unchanged");
    let record = api.db_record(&id).await?.expect("the row");
    assert_eq!(
        (record["fencing_token"].clone(), record["executor"].clone()),
        (json!(new), json!("successor"))
    );
    let (_, logs) = api.get(&format!("/v1/jobs/{id}/logs"), SUBMITTER).await?;
    assert_eq!(logs["lines"], json!([]));

    // A token that never claimed is not the holder either.
    let (status, answer) = api.heartbeat(&id, json!({ "token": new + 1 })).await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_api_error(&answer, "not_holder", &["claim"]);
    // The holder moves forward, never back.
    let (status, _) = api
        .heartbeat(&id, json!({ "token": new, "status_code": "FINALIZING" }))
        .await?;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = api
        .heartbeat(&id, json!({ "token": new, "status_code": "EXECUTING" }))
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_api_error(&answer, "illegal_transition", &["FINALIZING", "EXECUTING"]);
    assert_eq!(answer["status_code"], "FINALIZING");
    api.stop().await
}

async fn eight_concurrent_claims_one_winner(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    for round in 0..5 {
        let id = api.submit_noop().await?;
        let hold = api.take(&id).await?;
        let claims = (0..8).map(|i| {
            let (api, hold) = (&api, &hold);
            let id = id.clone();
            async move { api.claim(&id, hold, &format!("executor-{i}")).await }
        });
        let answers = within("8 claims", DEADLINE, futures::future::join_all(claims)).await?;
        let mut winners = Vec::new();
        for answer in answers {
            let (status, body) = answer?;
            match status {
                StatusCode::OK => winners.push(body),
                StatusCode::CONFLICT => assert_api_error(&body, "stale_token", &[]),
                other => panic!("claim answered {other}: {body}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: exactly one claim wins");
        let job = api.job(&id).await?;
        assert_eq!(job["attempts"], 1);
        assert_eq!(job["executor"], winners[0]["executor"]);
    }
    api.stop().await
}

async fn a_job_cancelled_while_queued_never_runs(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let id = api.submit_noop().await?;
    let (status, canceled) = api
        .post(&format!("/v1/jobs/{id}/cancel"), SUBMITTER, json!({}))
        .await?;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(
        (canceled["state"].clone(), canceled["status_code"].clone()),
        (json!("CANCELED"), json!("CANCELLED_BY_USER"))
    );
    assert!(
        canceled["status_message"]
            .as_str()
            .unwrap_or_default()
            .contains("alice"),
        "{canceled}"
    );
    // Its queue entry is still there; an executor that takes it is refused.
    let (hold, status, answer) = api.take_and_claim(&id, "executor-1").await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_api_error(&answer, "job_finished", &["CANCELED", "consume"]);
    assert_eq!(answer["state"], "CANCELED");
    let (status, answer) = api.heartbeat(&id, json!({ "token": hold.token })).await?;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let (status, answer) = api
        .post(&format!("/v1/jobs/{id}/cancel"), SUBMITTER, json!({}))
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_api_error(&answer, "illegal_transition", &["terminal", "retry"]);
    let job = api.job(&id).await?;
    assert_eq!(
        (job["attempts"].clone(), job["executor"].clone()),
        (json!(0), Value::Null)
    );
    api.stop().await
}

async fn cancel_racing_claim_never_loses_the_cancel(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    for _ in 0..10 {
        let id = api.submit_noop().await?;
        let cancel_path = format!("/v1/jobs/{id}/cancel");
        let hold = api.take(&id).await?;
        let cancel = api.post(&cancel_path, SUBMITTER, json!({}));
        let claim = api.claim(&id, &hold, "racer");
        let ((cancel_status, _), (claim_status, claimed)) = tokio::try_join!(cancel, claim)?;
        assert_eq!(cancel_status, StatusCode::OK);
        let job = api.job(&id).await?;
        if claim_status == StatusCode::OK {
            // The claim won: the executor must learn of the cancel.
            assert_eq!(job["state"], "RUNNING", "{claimed}");
            assert_eq!(job["cancel_requested"], true);
            let (_, reply) = api.heartbeat(&id, json!({ "token": hold.token })).await?;
            assert_eq!(reply["cancel_requested"], true);
        } else {
            assert_eq!(claim_status, StatusCode::CONFLICT);
            assert_eq!(job["state"], "CANCELED");
            assert_eq!(job["attempts"], 0);
        }
    }
    api.stop().await
}

async fn cancel_and_kill_of_a_running_job_reach_the_executor(
    backend: Backend,
) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let id = api.submit_noop().await?;
    let (hold, _, _) = api.take_and_claim(&id, "executor-1").await?;
    let token = hold.token;
    let (status, job) = api
        .post(&format!("/v1/jobs/{id}/cancel"), SUBMITTER, json!({}))
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (job["state"].clone(), job["cancel_requested"].clone()),
        (json!("RUNNING"), json!(true))
    );
    let (_, reply) = api.heartbeat(&id, json!({ "token": token })).await?;
    assert_eq!(
        reply,
        json!({ "cancel_requested": true, "kill_requested": false })
    );
    let (status, body) = api
        .post(&format!("/v1/jobs/{id}/kill"), SUBMITTER, json!({}))
        .await?;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_api_error(&body, "forbidden", &["admin"]);
    let (status, job) = api
        .post(&format!("/v1/jobs/{id}/kill"), ADMIN, json!({}))
        .await?;
    assert_eq!(status, StatusCode::OK, "{job}");
    assert_eq!(job["kill_requested"], true);
    let (_, reply) = api.heartbeat(&id, json!({ "token": token })).await?;
    assert_eq!(
        reply,
        json!({ "cancel_requested": true, "kill_requested": true })
    );
    let (status, done) = api
        .finish(&id, json!({ "token": token, "status_code": "KILLED_BY_ADMIN", "message": "stopped the container" }))
        .await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (done["state"].clone(), done["status_message"].clone()),
        (json!("CANCELED"), json!("stopped the container"))
    );

    // A running job released after a cancel request ends CANCELED instead of requeueing.
    let id = api.submit_noop().await?;
    let (hold, _, _) = api.take_and_claim(&id, "executor-1").await?;
    api.post(&format!("/v1/jobs/{id}/cancel"), SUBMITTER, json!({}))
        .await?;
    let (status, released) = api.release(&id, hold.token, "draining").await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(released["status_code"], "CANCELLED_BY_USER");

    // Retry: a terminal job gives a new one linked to it; a live one is a 409.
    let (status, retried) = api
        .post(&format!("/v1/jobs/{id}/retry"), SUBMITTER, json!({}))
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{retried}");
    assert_eq!(retried["retry_of"], json!(id));
    assert_eq!(
        (retried["action"].clone(), retried["status_code"].clone()),
        (json!("noop"), json!("WAITING_ON_WORKERS"))
    );
    let new_id = retried["id"].as_str().unwrap_or_default();
    let (status, body) = api
        .post(&format!("/v1/jobs/{new_id}/retry"), SUBMITTER, json!({}))
        .await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_api_error(&body, "job_not_finished", &["QUEUED"]);
    api.stop().await
}

async fn release_beyond_max_attempts_fails_the_job(backend: Backend) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let job = api
        .submit(json!({ "action": "noop", "max_attempts": 2 }))
        .await?;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let mut tokens = HashSet::new();
    let mut hold = api.take(&id).await?;
    for attempt in [1, 2] {
        if attempt > 1 {
            // A drained executor releases its marker; the next one takes the entry.
            hold = api.retake(&hold).await?;
        }
        let token = hold.token;
        tokens.insert(token);
        let (status, claimed) = api.claim(&id, &hold, "drainer").await?;
        assert_eq!(status, StatusCode::OK, "{claimed}");
        assert_eq!(claimed["attempts"], attempt);
        let (status, released) = api.release(&id, token, "drain deadline").await?;
        assert_eq!(status, StatusCode::OK, "{released}");
        let message = released["status_message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("attempt {attempt} of 2")),
            "{message}"
        );
        if attempt == 1 {
            assert_eq!(
                (released["state"].clone(), released["status_code"].clone()),
                (json!("QUEUED"), json!("ENQUEUED"))
            );
        } else {
            assert_eq!(
                (released["state"].clone(), released["status_code"].clone()),
                (json!("FAILED"), json!("ATTEMPTS_EXHAUSTED"))
            );
            for why in ["max_attempts", "no attempts are left", "drain deadline"] {
                assert!(message.contains(why), "{message:?} should say {why:?}");
            }
        }
    }
    let hold = api.retake(&hold).await?;
    let (status, body) = api.claim(&id, &hold, "drainer").await?;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_api_error(&body, "job_finished", &["ATTEMPTS_EXHAUSTED"]);

    // A holder that dies on its last attempt: the re-claim ends the job instead.
    let job = api
        .submit(json!({ "action": "noop", "max_attempts": 1 }))
        .await?;
    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let (doomed, _, _) = api.take_and_claim(&id, "doomed").await?;
    let successor = api.retake(&doomed).await?;
    let (status, body) = api.claim(&id, &successor, "successor").await?;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["status_code"], "ATTEMPTS_EXHAUSTED");
    assert_eq!(api.job(&id).await?["status_code"], "ATTEMPTS_EXHAUSTED");
    api.stop().await
}

async fn claims_are_proven_in_zookeeper_and_a_duplicate_entry_never_takes_over(
    backend: Backend,
) -> anyhow::Result<()> {
    let api = TestApi::start(backend).await?;
    let id = api.submit_noop().await?;
    let (holder, status, claimed) = api.take_and_claim(&id, "holder").await?;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    let unchanged = api.job(&id).await?;

    // Any number is not a token: the claim must name a marker that exists with it.
    for (token, code) in [
        (i64::MAX, "entry_not_taken"),
        (holder.token - 1, "entry_retaken"),
    ] {
        let forged = Hold {
            entry: holder.entry.clone(),
            token,
        };
        let (status, answer) = api.claim(&id, &forged, "forger").await?;
        assert_eq!(status, StatusCode::CONFLICT, "{answer}");
        assert_api_error(&answer, code, &[&holder.entry, &holder.token.to_string()]);
    }
    // A duplicate entry of the running job (a late enqueue, a reconciler's repair):
    // its newer token proves nothing about the holder, who is running fine.
    let queue = Queue::producer(api.hands().await?, "/job").await?;
    let duplicate = queue
        .put(id.as_bytes(), drover_core::Priority::DEFAULT)
        .await?;
    let dup = drover_tests::take_named(api.hands().await?, &duplicate).await?;
    assert!(dup.token > holder.token);
    let (status, answer) = api.claim(&id, &dup, "duplicate-taker").await?;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_api_error(
        &answer,
        "held_elsewhere",
        &[&holder.entry, "duplicate", "consume"],
    );
    assert_eq!(answer["state"], "RUNNING");
    // An entry of another job, and one nobody took.
    let other = api.submit_noop().await?;
    let other_hold = api.take(&other).await?;
    let (status, answer) = api.claim(&id, &other_hold, "confused").await?;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_api_error(&answer, "entry_mismatch", &[&other]);
    let untaken = queue
        .put(id.as_bytes(), drover_core::Priority::DEFAULT)
        .await?;
    let guess = Hold {
        entry: untaken,
        token: dup.token + 1,
    };
    let (status, answer) = api.claim(&id, &guess, "guesser").await?;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_api_error(&answer, "entry_not_taken", &["take it before claiming"]);
    let (status, answer) = api
        .post(
            &format!("/v1/jobs/{id}/claim"),
            api_support::EXECUTOR,
            json!({ "token": 1, "executor": "e", "entry": "../taken" }),
        )
        .await?;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_api_error(&answer, "invalid_input", &["entry-100-0000000042"]);
    assert_eq!(
        api.job(&id).await?,
        unchanged,
        "no refused claim changed the job"
    );

    // Tokens only grow, queued or not: after a newer holder released the job, an
    // older take of a duplicate entry cannot claim it.
    let job = api.submit_noop().await?;
    let older = api.take(&job).await?;
    let second = queue
        .put(job.as_bytes(), drover_core::Priority::DEFAULT)
        .await?;
    let newer = drover_tests::take_named(api.hands().await?, &second).await?;
    let (status, answer) = api.claim(&job, &newer, "newer").await?;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, released) = api.release(&job, newer.token, "draining").await?;
    assert_eq!(
        (status, released["state"].clone()),
        (StatusCode::OK, json!("QUEUED"))
    );
    let (status, answer) = api.claim(&job, &older, "older").await?;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_api_error(&answer, "stale_token", &[&newer.token.to_string()]);
    assert_eq!(api.job(&job).await?["state"], "QUEUED");
    api.stop().await
}

//! SQL texts whose compare-and-set conditions come from the transition table.
//!
//! A fenced update is one `UPDATE ... WHERE id = $1 AND <fence> AND status_code IN (..)`
//! whose `IN` list holds exactly the codes from which `drover_core`'s table allows the
//! target, computed here with [`can_transition`] once at start-up. The database checks
//! the current code and writes in one atomic statement, so neither a concurrent change
//! nor a read-then-write race can slip past the table; when no row matches, the caller
//! reads the row and asks [`drover_core::check_transition`] why, for the 409.

use std::collections::HashMap;

use drover_core::{can_transition, State, StatusCode};

use crate::store::record::JOB_COLUMNS;

/// Every SQL text built at start-up.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) claim: String,
    /// Heartbeat without a status change.
    pub(crate) heartbeat: String,
    /// Heartbeat moving to a code, keyed by the target.
    pub(crate) heartbeat_to: HashMap<StatusCode, String>,
    /// Finish, keyed by the terminal target.
    pub(crate) finish: HashMap<StatusCode, String>,
    pub(crate) mark_enqueued: String,
}

/// `'A', 'B'` for the codes in `state` from which `to` is legal (and `also`).
fn codes_into(to: StatusCode, state: State, also: impl Fn(StatusCode) -> bool) -> String {
    let codes: Vec<String> = StatusCode::ALL
        .iter()
        .copied()
        .filter(|&from| from.state() == state && can_transition(from, to) && also(from))
        .map(|code| format!("'{code}'"))
        .collect();
    if codes.is_empty() {
        // No legal source: a condition that never holds, so the update never applies.
        "NULL".to_owned()
    } else {
        codes.join(", ")
    }
}

impl Statements {
    pub(crate) fn new() -> Statements {
        let claimed = StatusCode::Preparing;
        // Tokens only grow: a claim older than the stored token is stale whatever the
        // state. A RUNNING job is re-claimed only through a re-take of the entry its holder
        // claimed through (proof that holder's marker is gone); a re-claim counts as a
        // release (to ENQUEUED) then a claim, so both moves must be legal.
        let reclaimable = codes_into(StatusCode::Enqueued, State::Running, |_| {
            can_transition(StatusCode::Enqueued, claimed)
        });
        let claim = format!(
            "UPDATE jobs SET state = '{running}', status_code = '{claimed}', status_message = $4, \
             progress = 0, attempts = attempts + 1, executor = $3, fencing_token = $2, \
             queue_entry = $6, started_us = $5, last_heartbeat_us = $5, exit_code = NULL, \
             finished_us = NULL \
             WHERE id = $1 AND (fencing_token IS NULL OR fencing_token < $2) \
             AND (status_code IN ({queued}) OR (status_code IN ({reclaimable}) \
             AND (queue_entry IS NULL OR queue_entry = $6) AND attempts < max_attempts \
             AND cancel_requested = FALSE AND kill_requested = FALSE)) \
             RETURNING {JOB_COLUMNS}",
            running = State::Running,
            queued = codes_into(claimed, State::Queued, |_| true),
        );
        let heartbeat =
            "UPDATE jobs SET last_heartbeat_us = $3, progress = COALESCE($4, progress) \
             WHERE id = $1 AND fencing_token = $2 AND state = 'RUNNING' \
             RETURNING cancel_requested, kill_requested"
                .to_owned();
        let heartbeat_to = State::Running
            .codes()
            .map(|to| {
                let sql = format!(
                    "UPDATE jobs SET last_heartbeat_us = $3, progress = COALESCE($4, progress), \
                     status_code = '{to}' WHERE id = $1 AND fencing_token = $2 \
                     AND status_code IN ({from}) RETURNING cancel_requested, kill_requested",
                    from = codes_into(to, State::Running, |_| true),
                );
                (to, sql)
            })
            .collect();
        let finish = StatusCode::ALL
            .iter()
            .copied()
            .filter(|code| code.is_terminal())
            .map(|to| {
                let progress = if to == StatusCode::Succeeded { "100" } else { "progress" };
                let sql = format!(
                    "UPDATE jobs SET state = '{state}', status_code = '{to}', status_message = $3, \
                     exit_code = $4, finished_us = $5, last_heartbeat_us = $5, progress = {progress} \
                     WHERE id = $1 AND fencing_token = $2 AND status_code IN ({from}) \
                     RETURNING {JOB_COLUMNS}",
                    state = to.state(),
                    from = codes_into(to, State::Running, |_| true),
                );
                (to, sql)
            })
            .collect();
        let created = StatusCode::Created;
        let enqueued = StatusCode::Enqueued;
        let mark_enqueued = if can_transition(created, enqueued) {
            format!(
                "UPDATE jobs SET enqueued = TRUE, \
                 status_code = CASE WHEN status_code = '{created}' THEN '{enqueued}' ELSE status_code END, \
                 status_message = CASE WHEN status_code = '{created}' THEN $2 ELSE status_message END \
                 WHERE id = $1 RETURNING {JOB_COLUMNS}"
            )
        } else {
            format!(
                "UPDATE jobs SET enqueued = TRUE WHERE id = $1 AND $2 = $2 RETURNING {JOB_COLUMNS}"
            )
        };
        Statements {
            claim,
            heartbeat,
            heartbeat_to,
            finish,
            mark_enqueued,
        }
    }
}

/// Insert a new record (`CREATED`, not enqueued); a taken idempotency key inserts nothing.
pub(crate) fn insert() -> String {
    format!(
        "INSERT INTO jobs (id, action, params, priority, state, status_code, status_message, \
         max_attempts, timeout_secs, created_us, idempotency_key, retry_of, requires) \
         VALUES ($1, $2, $3, $4, '{queued}', '{created}', $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING {JOB_COLUMNS}",
        queued = State::Queued,
        created = StatusCode::Created,
    )
}

/// The exact compare-and-set of the slow paths (release, cancel, kill): the row must
/// still be exactly as read, so a move computed and checked from that read is applied
/// to that state only.
pub(crate) fn transition_cas() -> String {
    format!(
        "UPDATE jobs SET state = $7, status_code = $8, status_message = $9, finished_us = $10, \
         progress = $11, cancel_requested = $12, kill_requested = $13 \
         WHERE id = $1 AND status_code = $2 AND fencing_token IS NOT DISTINCT FROM $3 \
         AND attempts = $4 AND cancel_requested = $5 AND kill_requested = $6 \
         RETURNING {JOB_COLUMNS}"
    )
}

/// Raise a running job's request flag (`cancel_requested` or `kill_requested`).
pub(crate) fn request(flag: &str) -> String {
    format!(
        "UPDATE jobs SET {flag} = TRUE WHERE id = $1 AND state = '{running}' RETURNING {JOB_COLUMNS}",
        running = State::Running
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_comes_from_queued_codes_and_dead_holders_only() {
        let s = Statements::new();
        assert!(
            s.claim.contains(
                "status_code IN ('CREATED', 'ENQUEUED', 'WAITING_ON_WORKERS', 'WAITING_PAUSED')"
            ),
            "{}",
            s.claim
        );
        assert!(!s.claim.contains("WAITING_ON_DEPENDENCIES"));
        assert!(
            s.claim
                .contains("IN ('PREPARING', 'EXECUTING', 'FINALIZING')"),
            "{}",
            s.claim
        );
    }

    #[test]
    fn heartbeats_only_move_forward_and_finishes_need_a_running_job() {
        let s = Statements::new();
        let to_executing = &s.heartbeat_to[&StatusCode::Executing];
        assert!(
            to_executing.contains("IN ('PREPARING', 'EXECUTING')"),
            "{to_executing}"
        );
        assert_eq!(s.finish.len(), 10);
        let succeeded = &s.finish[&StatusCode::Succeeded];
        assert!(
            succeeded.contains("IN ('PREPARING', 'EXECUTING', 'FINALIZING')"),
            "{succeeded}"
        );
        assert!(s
            .mark_enqueued
            .contains("WHEN status_code = 'CREATED' THEN 'ENQUEUED'"));
    }
}

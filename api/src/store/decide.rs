//! Pure decisions over a read row: what a move should be, or why it is refused.
//!
//! No IO here: the lifecycle operations read the row, ask these functions, and apply
//! the answer with a compare-and-set. Every status change is checked with
//! [`drover_core::check_transition`] (through [`checked`]).

use drover_core::{check_transition, FencingToken, State, StatusCode};

use super::record::JobRow;
use crate::error::Error;

/// Cancel (a user) or kill (an admin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelKind {
    Cancel,
    Kill,
}

/// The move from `code` to `target`, as `check_transition` (the one table) decides.
pub(crate) fn checked(code: StatusCode, target: StatusCode) -> Result<(), Error> {
    check_transition(code, target).map_err(|source| Error::IllegalTransition {
        state: code.state(),
        status_code: code,
        source,
    })
}

/// Whether the job is live and held by `token`.
pub(crate) fn held_by(row: &JobRow, token: FencingToken) -> bool {
    row.token() == Some(token) && row.code().is_ok_and(|code| code.state() == State::Running)
}

/// What an operation concluded.
#[derive(Debug)]
pub(crate) enum Step {
    /// The updated row.
    Done(Box<JobRow>),
    /// A definite refusal for the caller.
    Fail(Error),
    /// The row changed between the statements: try again.
    Retry,
}

/// A computed move: the target and what to write with it.
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub(crate) code: StatusCode,
    pub(crate) message: String,
    pub(crate) progress: i64,
    pub(crate) cancel_requested: bool,
    pub(crate) kill_requested: bool,
    /// Only raise this request flag of a running job; the status stays.
    pub(crate) flag: Option<CancelKind>,
}

fn token_text(token: Option<FencingToken>) -> String {
    token.map_or_else(|| "no token".to_owned(), |t| t.to_string())
}

/// The 409 for a job that is over.
pub(crate) fn finished(row: &JobRow, code: StatusCode, what_now: &str) -> Error {
    Error::Conflict {
        code: "job_finished",
        message: format!(
            "job {} is {} ({code}: {}); {what_now}",
            row.id,
            code.state(),
            row.status_message
        ),
        state: code.state(),
        status_code: code,
    }
}

fn fenced(row_code: StatusCode, kind: &'static str, message: String) -> Step {
    Step::Fail(Error::Fenced {
        code: kind,
        message,
        state: row_code.state(),
        status_code: row_code,
    })
}

fn corrupt(err: Error) -> Step {
    Step::Fail(err)
}

/// Why a claim by `token` through queue entry `entry` matched nothing; `Ok` with a move
/// when the job's holder is gone and the implied release ends the job (cancel/kill
/// requested, attempts used up).
pub(crate) fn claim_refusal(
    row: &JobRow,
    token: FencingToken,
    entry: &str,
) -> Result<(StatusCode, Move), Step> {
    let code = row.code().map_err(corrupt)?;
    if code.is_terminal() {
        return Err(Step::Fail(finished(
            row,
            code,
            "it will not run again: consume the queue entry",
        )));
    }
    let stored = row.token();
    if stored.is_some_and(|stored| stored >= token) {
        return Err(fenced(
            code,
            "stale_token",
            format!(
                "job {} was claimed with fencing token {} (executor {}), which is not older than yours ({token}): your queue entry is stale; consume it and move on",
                row.id,
                token_text(stored),
                row.executor.as_deref().unwrap_or("unknown"),
            ),
        ));
    }
    if code.state() == State::Queued {
        return Err(match checked(code, StatusCode::Preparing) {
            Err(err) => Step::Fail(err),
            Ok(()) => Step::Retry,
        });
    }
    if let Some(held) = row.queue_entry.as_deref().filter(|held| *held != entry) {
        // Another entry of the same job (a duplicate the reconciler or a late enqueue
        // made): it proves nothing about the holder, who may be running fine.
        return Err(fenced(
            code,
            "held_elsewhere",
            format!(
                "job {} is running under queue entry {held} (executor {}, token {}); your entry {entry} is a duplicate: consume it and move on (the job is taken over only through a re-take of {held})",
                row.id,
                row.executor.as_deref().unwrap_or("unknown"),
                token_text(stored),
            ),
        ));
    }
    // RUNNING under an older token of the same entry: the entry was taken again, so its
    // holder's marker is gone. Re-claiming releases first, and that release may end the
    // job instead.
    let Some((end, why)) = ended_by_takeover(row, stored) else {
        return Err(Step::Retry);
    };
    checked(code, end).map_err(Step::Fail)?;
    Ok((
        code,
        Move {
            code: end,
            message: format!("ended when a newer executor claimed it: {why}"),
            progress: row.progress,
            cancel_requested: row.cancel_requested,
            kill_requested: row.kill_requested,
            flag: None,
        },
    ))
}

/// What a takeover of a RUNNING job ends it with instead of running it again (asked to
/// stop, or no attempts left), and why; `None` when it may run again.
fn ended_by_takeover(row: &JobRow, stored: Option<FencingToken>) -> Option<(StatusCode, String)> {
    let ended = if row.kill_requested {
        (
            StatusCode::KilledByAdmin,
            "an admin had asked to kill it".to_owned(),
        )
    } else if row.cancel_requested {
        (
            StatusCode::CancelledByUser,
            "a user had asked to cancel it".to_owned(),
        )
    } else if row.attempts >= row.max_attempts {
        (
            StatusCode::AttemptsExhausted,
            format!(
                "its holder (token {}) was lost after attempt {} of {} (max_attempts), so no attempts are left: retry the job or submit it with a higher max_attempts",
                token_text(stored),
                row.attempts,
                row.max_attempts
            ),
        )
    } else {
        return None;
    };
    Some(ended)
}

/// Why a write by the holder of `token` (moving to `target`, if any) matched nothing.
pub(crate) fn refuse_write(row: &JobRow, token: FencingToken, target: Option<StatusCode>) -> Step {
    let code = match row.code() {
        Ok(code) => code,
        Err(err) => return Step::Fail(err),
    };
    match row.token() {
        Some(stored) if stored > token => {
            return fenced(
                code,
                "stale_token",
                format!(
                    "job {} is held by a newer fencing token ({stored}) than yours ({token}): another executor owns it now; stop working on it and do not report a result",
                    row.id
                ),
            )
        }
        Some(stored) if stored == token => {}
        stored => {
            return fenced(
                code,
                "not_holder",
                format!(
                    "job {} is not held by fencing token {token} (held by {}): claim it first with POST /v1/jobs/{}/claim",
                    row.id,
                    token_text(stored),
                    row.id
                ),
            )
        }
    }
    if code.is_terminal() {
        return Step::Fail(finished(row, code, "it is over: stop working on it"));
    }
    if code.state() != State::Running {
        return fenced(
            code,
            "not_holder",
            format!(
                "job {} is {} ({code}): it was released, so token {token} no longer holds it; claim it again",
                row.id,
                code.state()
            ),
        );
    }
    if let Some(target) = target {
        if let Err(err) = checked(code, target) {
            return Step::Fail(err);
        }
    }
    Step::Retry
}

/// Release by the holder of `token`: back to `ENQUEUED`, or the end it implies.
pub(crate) fn plan_release(row: &JobRow, token: FencingToken, reason: &str) -> Result<Move, Step> {
    if !held_by(row, token) {
        return Err(refuse_write(row, token, Some(StatusCode::Enqueued)));
    }
    let code = row.code().map_err(corrupt)?;
    let executor = row.executor.as_deref().unwrap_or("unknown");
    let (target, message) = if row.kill_requested {
        (
            StatusCode::KilledByAdmin,
            format!("killed by an admin; executor {executor} stopped it ({reason})"),
        )
    } else if row.cancel_requested {
        (
            StatusCode::CancelledByUser,
            format!("canceled by a user; executor {executor} stopped it ({reason})"),
        )
    } else if row.attempts >= row.max_attempts {
        (
            StatusCode::AttemptsExhausted,
            format!(
                "released by executor {executor} after attempt {} of {} (max_attempts), so no attempts are left; last reason: {reason}. Retry the job or submit it with a higher max_attempts",
                row.attempts, row.max_attempts
            ),
        )
    } else {
        (
            StatusCode::Enqueued,
            format!(
                "released by executor {executor} after attempt {} of {}: {reason}; back on the queue",
                row.attempts, row.max_attempts
            ),
        )
    };
    checked(code, target).map_err(Step::Fail)?;
    Ok(Move {
        code: target,
        message,
        progress: if target.is_terminal() {
            row.progress
        } else {
            0
        },
        cancel_requested: row.cancel_requested,
        kill_requested: row.kill_requested,
        flag: None,
    })
}

/// Cancel or kill: a queued job ends now; a running one is flagged for its executor.
pub(crate) fn plan_cancel(row: &JobRow, kind: CancelKind, caller: &str) -> Result<Move, Step> {
    let code = row.code().map_err(corrupt)?;
    let (target, verb) = match kind {
        CancelKind::Cancel => (StatusCode::CancelledByUser, "canceled"),
        CancelKind::Kill => (StatusCode::KilledByAdmin, "killed"),
    };
    checked(code, target).map_err(Step::Fail)?;
    Ok(Move {
        code: target,
        message: format!("{verb} by {caller} before it ran"),
        progress: row.progress,
        cancel_requested: row.cancel_requested || kind == CancelKind::Cancel,
        kill_requested: row.kill_requested || kind == CancelKind::Kill,
        flag: (code.state() == State::Running).then_some(kind),
    })
}

/// The status message of a result that came without one.
pub(crate) fn default_result_message(code: StatusCode, exit_code: Option<i64>) -> String {
    match (code, exit_code) {
        (StatusCode::Succeeded, _) => "the action succeeded".to_owned(),
        (StatusCode::NonzeroExit, Some(exit)) => format!("the action exited with code {exit}"),
        (_, Some(exit)) => format!("{code} (exit code {exit})"),
        (_, None) => code.to_string(),
    }
}

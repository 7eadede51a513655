//! The one table of legal status moves.
//!
//! Every component that changes a job's status (API, executor, reconciler,
//! operator commands) asks [`check_transition`]; nothing else decides.

use crate::error::Error;
use crate::state::State;
use crate::status::{code_list, StatusCode};

/// Checks that a job may move from `from` to `to`.
///
/// The table, by coarse state:
///
/// | from \ to | `QUEUED` | `RUNNING` | `SUCCESS` | `FAILED` | `CANCELED` |
/// |---|---|---|---|---|---|
/// | `QUEUED` | forward only | claim, from `CREATED`/`ENQUEUED` into `PREPARING`/`EXECUTING` | no | `DEPENDENCY_FAILED`, `UNKNOWN_ACTION`, `INTERNAL_ERROR`, `ATTEMPTS_EXHAUSTED` | yes |
/// | `RUNNING` | release, to `ENQUEUED` only | forward only | yes | yes | yes |
/// | terminal | no | no | no | no | no |
///
/// "Forward" follows `CREATED` or `WAITING_ON_DEPENDENCIES` (either way: a waiting job
/// whose dependencies succeeded becomes `CREATED`), then `ENQUEUED`; and `PREPARING`,
/// `EXECUTING`, `FINALIZING`, skipping allowed. Restating the
/// current code of a live job (a heartbeat) is legal. A terminal code has no
/// way out, not even to itself: retrying creates a new job, and a repeated
/// identical result is for the caller to recognise as idempotent before asking.
///
/// # Errors
///
/// [`Error::IllegalTransition`], naming both codes, why the move is refused
/// and every code allowed from `from`.
pub fn check_transition(from: StatusCode, to: StatusCode) -> Result<(), Error> {
    rule(from, to).map_err(|reason| Error::IllegalTransition {
        from,
        to,
        reason,
        allowed: allowed_transitions(from),
    })
}

/// Whether the table allows moving from `from` to `to`.
pub fn can_transition(from: StatusCode, to: StatusCode) -> bool {
    rule(from, to).is_ok()
}

/// Every code a job may move to from `from`, in [`StatusCode::ALL`] order;
/// empty when `from` is terminal.
pub fn allowed_transitions(from: StatusCode) -> Vec<StatusCode> {
    StatusCode::ALL
        .iter()
        .copied()
        .filter(|&to| rule(from, to).is_ok())
        .collect()
}

/// The table itself: `Err` carries why the move is refused.
fn rule(from: StatusCode, to: StatusCode) -> Result<(), &'static str> {
    use StatusCode as Code;

    match (from.state(), to.state()) {
        (State::Success | State::Failed | State::Canceled, _) => {
            Err("a finished job never changes")
        }
        (State::Queued, State::Queued) | (State::Running, State::Running) => {
            if rank(to) >= rank(from) {
                Ok(())
            } else {
                Err("a job's status never moves backwards")
            }
        }
        (State::Queued, State::Running) => match (from, to) {
            (Code::WaitingOnDependencies, _) => {
                Err("a job waiting on dependencies is not on the queue, so nothing can claim it")
            }
            (_, Code::Finalizing) => Err("a claimed job starts in PREPARING or EXECUTING"),
            _ => Ok(()),
        },
        (State::Queued, State::Success) => Err("a job must run before it can succeed"),
        (State::Queued, State::Failed) => match to {
            Code::DependencyFailed
            | Code::UnknownAction
            | Code::InternalError
            | Code::AttemptsExhausted => Ok(()),
            _ => Err("only a job that ran can fail this way"),
        },
        (State::Queued, State::Canceled) => Ok(()),
        (State::Running, State::Queued) => match to {
            Code::Enqueued => Ok(()),
            _ => Err("a released job goes back to ENQUEUED"),
        },
        (State::Running, State::Success | State::Failed | State::Canceled) => Ok(()),
    }
}

/// Position within the queued and running phases; only compared within one state.
const fn rank(code: StatusCode) -> u8 {
    match code {
        // A waiting job becomes CREATED when its dependencies succeed, and goes on the
        // queue from there like any new job: the two are one step.
        StatusCode::Created | StatusCode::WaitingOnDependencies | StatusCode::Preparing => 0,
        StatusCode::Executing => 1,
        StatusCode::Enqueued
        | StatusCode::WaitingOnWorkers
        | StatusCode::WaitingPaused
        | StatusCode::Finalizing => 2,
        _ => u8::MAX,
    }
}

/// The tail of an [`Error::IllegalTransition`] message.
pub(crate) fn describe_allowed(from: &StatusCode, allowed: &[StatusCode]) -> String {
    if allowed.is_empty() {
        format!(
            "{from} is terminal, so nothing may follow it; \
             to run the job again, retry it (a retry creates a new job)"
        )
    } else {
        format!("from {from} a job may move to {}", code_list(allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The expected table, written out cell by cell independently of `rule`:
    /// `x` is legal, `.` is not. Rows are `from`, columns are `to` in
    /// `StatusCode::ALL` order (abbreviated in the header).
    const EXPECTED: &str = "
                            CR WD EN WW WP  PR EX FI  SU  NZ TO UP DF UA IE AE  CU KA
    CREATED                  x  x  x  x  x   x  x  .   .   .  .  .  x  x  x  x   x  x
    WAITING_ON_DEPENDENCIES  x  x  x  x  x   .  .  .   .   .  .  .  x  x  x  x   x  x
    ENQUEUED                 .  .  x  x  x   x  x  .   .   .  .  .  x  x  x  x   x  x
    WAITING_ON_WORKERS       .  .  x  x  x   x  x  .   .   .  .  .  x  x  x  x   x  x
    WAITING_PAUSED           .  .  x  x  x   x  x  .   .   .  .  .  x  x  x  x   x  x
    PREPARING                .  .  x  .  .   x  x  x   x   x  x  x  x  x  x  x   x  x
    EXECUTING                .  .  x  .  .   .  x  x   x   x  x  x  x  x  x  x   x  x
    FINALIZING               .  .  x  .  .   .  .  x   x   x  x  x  x  x  x  x   x  x
    SUCCEEDED                .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    NONZERO_EXIT             .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    TIMED_OUT                .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    UNMATCHED_PATTERNS       .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    DEPENDENCY_FAILED        .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    UNKNOWN_ACTION           .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    INTERNAL_ERROR           .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    ATTEMPTS_EXHAUSTED       .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    CANCELLED_BY_USER        .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    KILLED_BY_ADMIN          .  .  .  .  .   .  .  .   .   .  .  .  .  .  .  .   .  .
    ";

    fn expected() -> Vec<(StatusCode, Vec<bool>)> {
        EXPECTED
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .skip(1)
            .map(|line| {
                let mut cells = line.split_whitespace();
                let from = cells.next().unwrap().parse().unwrap();
                let legal = cells.map(|cell| cell == "x").collect();
                (from, legal)
            })
            .collect()
    }

    #[test]
    fn every_pair_matches_the_written_table() {
        let rows = expected();
        let froms: Vec<StatusCode> = rows.iter().map(|(from, _)| *from).collect();
        assert_eq!(froms, StatusCode::ALL, "one row per code, in ALL order");
        for (from, legal) in rows {
            assert_eq!(legal.len(), StatusCode::ALL.len(), "row {from}");
            for (&to, expected) in StatusCode::ALL.iter().zip(legal) {
                assert_eq!(
                    check_transition(from, to).is_ok(),
                    expected,
                    "{from} -> {to}"
                );
                assert_eq!(can_transition(from, to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_codes_have_no_way_out() {
        for &from in StatusCode::ALL.iter().filter(|code| code.is_terminal()) {
            assert!(allowed_transitions(from).is_empty(), "{from}");
            for &to in StatusCode::ALL {
                let err = check_transition(from, to).unwrap_err();
                assert!(err.to_string().contains("retry it"), "{err}");
            }
        }
    }

    #[test]
    fn live_codes_can_always_finish_and_all_codes_are_reachable() {
        let mut reached = vec![StatusCode::Created];
        let mut frontier = vec![StatusCode::Created];
        while let Some(from) = frontier.pop() {
            for to in allowed_transitions(from) {
                if !reached.contains(&to) {
                    reached.push(to);
                    frontier.push(to);
                }
            }
        }
        for &code in StatusCode::ALL {
            assert!(
                reached.contains(&code),
                "{code} is unreachable from CREATED"
            );
            if !code.is_terminal() {
                let finishes = allowed_transitions(code).iter().any(|to| to.is_terminal());
                assert!(finishes, "{code} cannot finish");
            }
        }
    }

    #[test]
    fn refusal_names_both_codes_the_reason_and_the_way_forward() {
        let err = check_transition(StatusCode::Executing, StatusCode::Preparing).unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal transition from EXECUTING (RUNNING) to PREPARING (RUNNING): \
             a job's status never moves backwards; from EXECUTING a job may move to \
             ENQUEUED, EXECUTING, FINALIZING, SUCCEEDED, NONZERO_EXIT, TIMED_OUT, \
             UNMATCHED_PATTERNS, DEPENDENCY_FAILED, UNKNOWN_ACTION, INTERNAL_ERROR, \
             ATTEMPTS_EXHAUSTED, CANCELLED_BY_USER, KILLED_BY_ADMIN"
        );
        let Error::IllegalTransition {
            from, to, allowed, ..
        } = err
        else {
            panic!("wrong variant");
        };
        assert_eq!((from, to), (StatusCode::Executing, StatusCode::Preparing));
        assert_eq!(allowed, allowed_transitions(StatusCode::Executing));

        let err = check_transition(StatusCode::Succeeded, StatusCode::Enqueued).unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal transition from SUCCEEDED (SUCCESS) to ENQUEUED (QUEUED): \
             a finished job never changes; SUCCEEDED is terminal, so nothing may follow it; \
             to run the job again, retry it (a retry creates a new job)"
        );
    }
}

//! Tick times: every distributor computes the same ones, so a tick names its job.
//!
//! `every` ticks at the multiples of the interval since the Unix epoch; `cron` ticks at
//! the times of the expression, in UTC. The catch-up policy says which of the ticks that
//! passed since the last one handled are still due.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};
use croner::Cron;
use serde::{Deserialize, Serialize};

/// The most ticks `catch_up = "all"` replays at once (the most recent ones).
pub const MAX_REPLAY: usize = 1000;

/// When a distribution ticks.
#[derive(Debug, Clone)]
pub(crate) enum Schedule {
    /// Every multiple of the interval since the Unix epoch (whole milliseconds).
    Every(Duration),
    /// The times of a cron expression, in UTC.
    Cron(Box<Cron>),
}

/// What a new leader does about ticks that passed while nobody led (and what a leader
/// does when it falls behind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CatchUp {
    /// Run the most recent tick that passed, if it was not handled; skip older ones.
    /// A leader change right at a tick never loses it.
    #[default]
    Latest,
    /// Run only ticks that come after the leader's election; ticks that passed, even one
    /// the previous leader had no time to submit, are skipped.
    None,
    /// Run every tick since the last one handled (at most the last 1000), oldest first.
    All,
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CatchUp::Latest => "latest",
            CatchUp::None => "none",
            CatchUp::All => "all",
        })
    }
}

/// The last tick there can be: 9999-12-31T23:59:59.999Z, the last time RFC 3339 (and
/// so a tick's idempotency key) can write. A schedule has no tick after it.
const LAST_TICK_MS: u128 = 253_402_300_799_999;

fn millis(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// The tick `ms` milliseconds after the epoch; `None` after [`LAST_TICK_MS`].
fn from_millis(ms: u128) -> Option<SystemTime> {
    let ms = u64::try_from(ms)
        .ok()
        .filter(|&ms| u128::from(ms) <= LAST_TICK_MS)?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// `t` in chrono's terms; `None` outside chrono's range (about ±262000 years).
fn to_chrono(t: SystemTime) -> Option<DateTime<Utc>> {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => (i64::try_from(after.as_secs()).ok()?, after.subsec_nanos()),
        Err(before) => {
            let before = before.duration();
            let secs = i64::try_from(before.as_secs()).ok()?;
            match before.subsec_nanos() {
                0 => (-secs, 0),
                nanos => (-secs - 1, 1_000_000_000 - nanos),
            }
        }
    };
    DateTime::from_timestamp(secs, nanos)
}

/// Parses what [`rfc3339`] wrote.
pub(crate) use drover_core::clock::parse_rfc3339;
/// `t` as RFC 3339 UTC with milliseconds: the form tick times take in keys and status.
pub(crate) use drover_core::clock::rfc3339_millis as rfc3339;

impl Schedule {
    /// A cron schedule.
    ///
    /// # Errors
    /// What the parser said about the expression.
    pub(crate) fn cron(expression: &str) -> Result<Schedule, String> {
        let cron = Cron::from_str(expression).map_err(|e| {
            format!("{expression:?} is not a cron expression ({e}): write five fields like \"0 2 * * *\" (minute hour day month weekday), or six with seconds first")
        })?;
        // An expression that never matches (e.g. February 30th) would make a leader
        // that never ticks: refuse it now.
        let now = to_chrono(SystemTime::now()).unwrap_or_default();
        if cron.find_next_occurrence(&now, false).is_err() {
            return Err(format!("{expression:?} never matches a time"));
        }
        Ok(Schedule::Cron(Box::new(cron)))
    }

    /// The latest tick at or before `t`; `None` when there is none (or it would come
    /// after the last tick there can be).
    pub(crate) fn latest_at_or_before(&self, t: SystemTime) -> Option<SystemTime> {
        match self {
            Schedule::Every(interval) => {
                let step = interval.as_millis().max(1);
                from_millis(millis(t) / step * step)
            }
            Schedule::Cron(cron) => cron_tick(cron.find_previous_occurrence(&to_chrono(t)?, true)),
        }
    }

    /// The latest tick strictly before `t`.
    fn before(&self, t: SystemTime) -> Option<SystemTime> {
        match self {
            Schedule::Every(interval) => {
                let step = interval.as_millis().max(1);
                let ms = millis(t).checked_sub(1)?;
                from_millis(ms / step * step)
            }
            Schedule::Cron(cron) => cron_tick(cron.find_previous_occurrence(&to_chrono(t)?, false)),
        }
    }

    /// The first tick strictly after `t`; `None` when it would come after the last tick
    /// there can be.
    pub(crate) fn next_after(&self, t: SystemTime) -> Option<SystemTime> {
        match self {
            Schedule::Every(interval) => {
                let step = interval.as_millis().max(1);
                from_millis((millis(t) / step).checked_add(1)?.checked_mul(step)?)
            }
            Schedule::Cron(cron) => cron_tick(cron.find_next_occurrence(&to_chrono(t)?, false)),
        }
    }

    /// The ticks due at `now` when `handled` is the last tick handled, oldest first.
    pub(crate) fn due(
        &self,
        policy: CatchUp,
        handled: Option<SystemTime>,
        now: SystemTime,
    ) -> Vec<SystemTime> {
        let Some(latest) = self.latest_at_or_before(now) else {
            return Vec::new();
        };
        if handled.is_some_and(|h| latest <= h) {
            return Vec::new();
        }
        let Some(handled) = handled.filter(|_| policy == CatchUp::All) else {
            return vec![latest];
        };
        let mut ticks = vec![latest];
        while ticks.len() < MAX_REPLAY {
            match ticks.last().and_then(|&t| self.before(t)) {
                Some(t) if t > handled => ticks.push(t),
                _ => break,
            }
        }
        ticks.reverse();
        ticks
    }
}

/// A cron occurrence as a tick, if there is one and it is not after the last tick.
fn cron_tick<E>(occurrence: Result<DateTime<Utc>, E>) -> Option<SystemTime> {
    let t = SystemTime::from(occurrence.ok()?);
    (millis(t) <= LAST_TICK_MS).then_some(t)
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(interval) => {
                write!(f, "every {}", humantime::format_duration(*interval))
            }
            Schedule::Cron(cron) => write!(f, "cron {}", cron.pattern),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn every_ticks_on_multiples_of_the_interval() {
        let s = Schedule::Every(Duration::from_secs(10));
        assert_eq!(s.latest_at_or_before(at(25_000)), Some(at(20_000)));
        assert_eq!(s.latest_at_or_before(at(20_000)), Some(at(20_000)));
        assert_eq!(s.next_after(at(20_000)), Some(at(30_000)));
        assert_eq!(s.next_after(at(25_001)), Some(at(30_000)));
        assert_eq!(s.before(at(20_000)), Some(at(10_000)));
    }

    #[test]
    fn catch_up_policies() {
        let s = Schedule::Every(Duration::from_secs(10));
        let now = at(55_000);
        assert_eq!(s.due(CatchUp::Latest, None, now), [at(50_000)]);
        assert_eq!(s.due(CatchUp::Latest, Some(at(20_000)), now), [at(50_000)]);
        assert!(s.due(CatchUp::Latest, Some(at(50_000)), now).is_empty());
        assert_eq!(
            s.due(CatchUp::All, Some(at(20_000)), now),
            [at(30_000), at(40_000), at(50_000)]
        );
        assert_eq!(s.due(CatchUp::All, None, now), [at(50_000)]);
        assert!(s.due(CatchUp::All, Some(at(50_000)), now).is_empty());
        assert_eq!(s.due(CatchUp::None, Some(at(20_000)), now), [at(50_000)]);
        let replay = s.due(CatchUp::All, Some(at(0)), at(100_000_000));
        assert_eq!(replay.len(), MAX_REPLAY);
        assert_eq!(replay.last(), Some(&at(100_000_000)));
    }

    #[test]
    fn cron_ticks_in_utc() {
        let s = Schedule::cron("0 2 * * *").unwrap();
        // 1970-01-02T05:00:00Z
        let t = at((24 + 5) * 3_600_000);
        assert_eq!(s.latest_at_or_before(t), Some(at((24 + 2) * 3_600_000)));
        assert_eq!(s.next_after(t), Some(at((48 + 2) * 3_600_000)));
        assert_eq!(s.to_string(), "cron 0 2 * * *");
        let seconds = Schedule::cron("*/2 * * * * *").unwrap();
        assert_eq!(seconds.next_after(at(1_000)), Some(at(2_000)));
        assert!(Schedule::cron("61 * * * *").is_err());
        assert!(Schedule::cron("not cron").is_err());
    }

    /// No input makes the schedule arithmetic panic: intervals far beyond what the
    /// configuration accepts, and times far beyond the clock, give no tick (`None`)
    /// rather than an overflow; every tick given renders as RFC 3339 and parses back.
    #[test]
    fn extreme_intervals_and_times_never_panic() {
        let now = SystemTime::now();
        let far = UNIX_EPOCH + Duration::from_secs(1 << 40);
        let beyond_chrono = UNIX_EPOCH + Duration::from_secs(1 << 50);
        let intervals = [
            Duration::from_secs(366 * 86_400),
            Duration::from_secs(300_000 * 31_557_600),
            Duration::from_secs(u64::MAX),
            Duration::MAX,
        ];
        let schedules = intervals
            .into_iter()
            .map(Schedule::Every)
            .chain([Schedule::cron("0 2 * * *").unwrap()]);
        for s in schedules {
            for t in [UNIX_EPOCH, now, far, beyond_chrono] {
                let ticks = [s.latest_at_or_before(t), s.before(t), s.next_after(t)];
                for tick in ticks.into_iter().flatten() {
                    assert_eq!(parse_rfc3339(&rfc3339(tick)), Some(tick), "{s}");
                }
                for policy in [CatchUp::Latest, CatchUp::All, CatchUp::None] {
                    for tick in s.due(policy, Some(UNIX_EPOCH), t) {
                        assert_eq!(parse_rfc3339(&rfc3339(tick)), Some(tick));
                    }
                }
            }
        }
        let huge = Schedule::Every(Duration::from_secs(300_000 * 31_557_600));
        assert_eq!(
            huge.next_after(now),
            None,
            "a tick after year 9999 is no tick"
        );
        assert_eq!(huge.latest_at_or_before(now), Some(UNIX_EPOCH));
        let cron = Schedule::cron("0 2 * * *").unwrap();
        for t in [far, beyond_chrono] {
            assert_eq!(cron.next_after(t), None, "no tick after year 9999");
        }
        assert!(cron.latest_at_or_before(now).is_some());
        assert!(
            rfc3339(beyond_chrono).starts_with('@'),
            "{}",
            rfc3339(beyond_chrono)
        );
    }

    #[test]
    fn times_round_trip_as_rfc3339() {
        let t = at(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
    }
}

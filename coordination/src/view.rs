//! The process's local picture of a queue, kept by one watch and shared by all takers.
//!
//! It is a hint: ZooKeeper's ephemeral create decides who takes an entry. The view only
//! keeps takers from asking for entries that are gone or taken, keeps a process's takers
//! from racing each other, and spreads takers of different processes over the head of
//! the queue when they collide.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::entry;
use crate::error::LostReason;
use crate::lost::LostSignal;

/// What ZooKeeper reports for a zxid it does not know.
pub(crate) const NO_ZXID: i64 = -1;

/// The widest window of head entries takers spread over under contention.
const MAX_SPREAD: u32 = 64;

/// Entries, taken markers and this process's holdings.
#[derive(Debug, Default)]
pub(crate) struct View {
    /// Entries by route segment (`""` for plain entries), each route's in queue order.
    entries: HashMap<String, BTreeSet<Order>>,
    /// How many entries `entries` holds.
    count: usize,
    taken: HashSet<String>,
    /// Entries a local taker is trying to take right now.
    inflight: HashSet<String>,
    held: HashMap<String, Held>,
    /// Held entries whose marker a listing or an event says is gone, though neither can
    /// be ordered against our take: the holder's session checks them.
    suspects: Vec<String>,
    /// Grows when takers collide with other processes, shrinks when they succeed.
    contention: u32,
    closed: Option<LostReason>,
}

/// An entry's place in the queue: priority, then sequence (`PPP` and the sequence's ten
/// digits, so text order is queue order), then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Order {
    key: String,
    name: String,
}

impl Order {
    /// The route and place of `name`, if it is a queue entry.
    fn of(name: &str) -> Option<(&str, Order)> {
        let parts = entry::parse(name)?;
        let key = format!("{}{:0>10}", parts.band, parts.seq);
        Some((
            parts.route,
            Order {
                key,
                name: name.to_owned(),
            },
        ))
    }

    fn band(&self) -> &str {
        &self.key[..3]
    }
}

#[derive(Debug)]
struct Held {
    lost: LostSignal,
    /// The session that holds it.
    owner: i64,
    /// The marker's creation zxid (the fencing token).
    token: i64,
    /// Consume or release is under way: the node's deletion is ours, not a loss.
    finishing: bool,
}

impl View {
    /// Replaces the picture with a fresh listing whose taken directory was last changed
    /// at zxid `pzxid` ([`NO_ZXID`] if unknown). A held entry missing from `taken` is lost
    /// only if the listing is newer than our take: a server that lags behind the one we
    /// took on lists the directory as it was before. Returns whether suspects were added.
    pub(crate) fn reset(&mut self, entries: Vec<String>, taken: Vec<String>, pzxid: i64) -> bool {
        self.entries.clear();
        self.count = 0;
        for name in entries {
            self.entry_created(&name);
        }
        self.taken = taken.into_iter().collect();
        let missing: Vec<(String, i64)> = self
            .held
            .iter()
            .filter(|(name, held)| !held.finishing && !self.taken.contains(*name))
            .map(|(name, held)| (name.clone(), held.token))
            .collect();
        let mut suspects = false;
        for (name, token) in missing {
            if pzxid == NO_ZXID {
                suspects |= self.suspect(&name);
            } else if pzxid > token {
                self.lose(&name, LostReason::NodeDeleted);
            }
        }
        suspects
    }

    /// An entry node appeared.
    pub(crate) fn entry_created(&mut self, name: &str) {
        if let Some((route, order)) = Order::of(name) {
            if self
                .entries
                .entry(route.to_owned())
                .or_default()
                .insert(order)
            {
                self.count += 1;
            }
        }
    }

    /// An entry node disappeared.
    pub(crate) fn entry_deleted(&mut self, name: &str) {
        let Some((route, order)) = Order::of(name) else {
            return;
        };
        let Some(set) = self.entries.get_mut(route) else {
            return;
        };
        if set.remove(&order) {
            self.count -= 1;
        }
        if set.is_empty() {
            self.entries.remove(route);
        }
    }

    /// A taken marker appeared.
    pub(crate) fn taken_created(&mut self, name: &str) {
        self.taken.insert(name.to_owned());
    }

    /// A taken marker disappeared at zxid `zxid` ([`NO_ZXID`] if the server does not
    /// say, as before ZooKeeper 3.9). If it was ours and we did not remove it, we lost it;
    /// a deletion older than our take is a previous holder's, seen late. One that cannot
    /// be ordered makes the entry a suspect; returns whether it did.
    pub(crate) fn taken_deleted(&mut self, name: &str, zxid: i64) -> bool {
        self.taken.remove(name);
        let Some(held) = self.held.get(name).filter(|h| !h.finishing) else {
            return false;
        };
        if zxid == NO_ZXID {
            return self.suspect(name);
        }
        if zxid > held.token {
            self.lose(name, LostReason::NodeDeleted);
        }
        false
    }

    fn suspect(&mut self, name: &str) -> bool {
        if self.suspects.iter().any(|s| s == name) {
            return false;
        }
        self.suspects.push(name.to_owned());
        true
    }

    /// The suspects `owner` holds, with their tokens, for its session to check.
    pub(crate) fn take_suspects(&mut self, owner: i64) -> Vec<(String, i64)> {
        let mut mine = Vec::new();
        let held = &self.held;
        self.suspects.retain(|name| match held.get(name) {
            Some(h) if h.owner == owner => {
                mine.push((name.clone(), h.token));
                false
            }
            Some(_) => true,
            None => false,
        });
        mine
    }

    /// The holder's session found the marker of `name` gone (or not created at
    /// `token`): the holding is lost.
    pub(crate) fn marker_gone(&mut self, name: &str, token: i64) {
        if self
            .held
            .get(name)
            .is_some_and(|h| h.token == token && !h.finishing)
        {
            self.lose(name, LostReason::NodeDeleted);
        }
    }

    fn lose(&mut self, name: &str, reason: LostReason) {
        if let Some(held) = self.held.remove(name) {
            if held.lost.trip(reason) {
                tracing::warn!(entry = name, %reason, "lost a taken queue entry");
            }
        }
    }

    /// Everything `owner` holds is lost (its session ended, or was away too long);
    /// returns their names.
    pub(crate) fn lose_owner(&mut self, owner: i64, reason: LostReason) -> Vec<String> {
        let names: Vec<String> = self
            .held
            .iter()
            .filter(|(_, h)| h.owner == owner)
            .map(|(n, _)| n.clone())
            .collect();
        for name in &names {
            self.lose(name, reason);
        }
        names
    }

    /// The watch session is over: every holding is lost and nothing more can be taken.
    pub(crate) fn close(&mut self, reason: LostReason) {
        let names: Vec<String> = self.held.keys().cloned().collect();
        for name in &names {
            self.lose(name, reason);
        }
        self.closed = Some(reason);
    }

    /// Why the view is closed, if it is.
    pub(crate) fn closed(&self) -> Option<LostReason> {
        self.closed
    }

    /// Picks an entry for a local taker among the routes it `accepts`, and marks it in
    /// flight.
    ///
    /// Only the first free priority band is considered, across accepted routes.
    /// Uncontended, that is the head of the queue (strict order for a lone taker);
    /// under contention, a random entry among the first `1 + contention` of the band.
    pub(crate) fn pick(
        &mut self,
        accepts: &dyn Fn(&str) -> bool,
        random: impl FnOnce(usize) -> usize,
    ) -> Option<String> {
        let window = (1 + self.contention) as usize;
        let free = |o: &&Order| {
            !self.taken.contains(&o.name)
                && !self.inflight.contains(&o.name)
                && !self.held.contains_key(&o.name)
        };
        let mut candidates: Vec<&Order> = Vec::new();
        for (route, set) in &self.entries {
            if accepts(route) {
                candidates.extend(set.iter().filter(free).take(window));
            }
        }
        candidates.sort_unstable();
        let band = candidates.first()?.band().to_owned();
        candidates.retain(|o| o.band() == band);
        candidates.truncate(window);
        let chosen = candidates[random(candidates.len()).min(candidates.len() - 1)]
            .name
            .clone();
        self.inflight.insert(chosen.clone());
        Some(chosen)
    }

    /// Another taker got there first.
    pub(crate) fn collided(&mut self, name: &str) {
        self.inflight.remove(name);
        self.taken.insert(name.to_owned());
        self.contention = (self.contention * 2 + 1).min(MAX_SPREAD - 1);
    }

    /// The attempt gave up for another reason (error, entry vanished).
    pub(crate) fn abandoned(&mut self, name: &str, entry_gone: bool) {
        self.inflight.remove(name);
        if entry_gone {
            self.entry_deleted(name);
        }
    }

    /// We created the taken marker at zxid `token`: from now on the entry is held, and
    /// losing it trips `lost`.
    pub(crate) fn acquired(&mut self, name: &str, lost: LostSignal, owner: i64, token: i64) {
        self.inflight.remove(name);
        self.taken.insert(name.to_owned());
        self.contention = self.contention.saturating_sub(1);
        if let Some(reason) = self.closed {
            lost.trip(reason);
            return;
        }
        self.held.insert(
            name.to_owned(),
            Held {
                lost,
                owner,
                token,
                finishing: false,
            },
        );
    }

    /// Consume or release is starting; returns false if the entry is no longer held.
    pub(crate) fn finishing(&mut self, name: &str) -> bool {
        match self.held.get_mut(name) {
            Some(held) => {
                held.finishing = true;
                true
            }
            None => false,
        }
    }

    /// Consume or release failed before it changed anything: the entry is held again.
    pub(crate) fn unfinished(&mut self, name: &str) {
        if let Some(held) = self.held.get_mut(name) {
            held.finishing = false;
        }
    }

    /// Consume or release is done: forget the holding.
    pub(crate) fn finished(&mut self, name: &str, consumed: bool) {
        self.held.remove(name);
        self.taken.remove(name);
        if consumed {
            self.entry_deleted(name);
        }
    }

    /// Entries currently known, taken or not.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// Entries `owner` holds.
    pub(crate) fn held_by(&self, owner: i64) -> usize {
        self.held.values().filter(|h| h.owner == owner).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(_: &str) -> bool {
        true
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lone_taker_takes_in_order() {
        let mut view = View::default();
        view.reset(
            names(&[
                "entry-100-0000000002",
                "entry-050-0000000003",
                "entry-100-0000000001",
            ]),
            vec![],
            0,
        );
        let order: Vec<String> = (0..3)
            .map(|_| {
                let n = view.pick(&all, |len| len - 1).unwrap();
                view.acquired(&n, LostSignal::new(), 1, 10);
                n
            })
            .collect();
        assert_eq!(
            order,
            names(&[
                "entry-050-0000000003",
                "entry-100-0000000001",
                "entry-100-0000000002"
            ])
        );
        assert_eq!(view.pick(&all, |_| 0), None);
    }

    #[test]
    fn skips_taken_inflight_and_foreign_names() {
        let mut view = View::default();
        view.reset(
            names(&["entry-100-0000000001", "entry-100-0000000002", "other"]),
            names(&["entry-100-0000000001"]),
            0,
        );
        assert_eq!(
            view.pick(&all, |_| 0).as_deref(),
            Some("entry-100-0000000002")
        );
        assert_eq!(
            view.pick(&all, |_| 0),
            None,
            "in-flight entries are not handed out twice"
        );
    }

    #[test]
    fn contention_widens_the_window_within_one_band() {
        let mut view = View::default();
        let entries: Vec<String> = (0..10)
            .map(|i| format!("entry-100-{i:010}"))
            .chain(["entry-200-0000000099".into()])
            .collect();
        view.reset(entries, vec![], 0);
        let first = view.pick(&all, |_| 0).unwrap();
        view.collided(&first);
        view.collided("entry-100-0000000001");
        view.collided("entry-100-0000000002");
        // contention 7 → window of 8 among the remaining priority-100 entries
        let mut seen = 0;
        let n = view.pick(&all, |len| {
            seen = len;
            len - 1
        });
        assert_eq!(
            seen, 7,
            "only the seven free priority-100 entries are candidates"
        );
        assert_eq!(n.as_deref(), Some("entry-100-0000000009"));
        view.acquired("entry-100-0000000009", LostSignal::new(), 1, 10);
        assert!(view.contention < 7, "success shrinks the window");
    }

    #[test]
    fn takers_see_only_the_routes_they_accept_in_queue_order() {
        let mut view = View::default();
        view.reset(
            names(&[
                "entry-100-train+gpu-0000000001",
                "entry-100-noop-0000000002",
                "entry-050-train+gpu-0000000005",
                "entry-100-0000000003",
            ]),
            vec![],
            0,
        );
        assert_eq!(view.len(), 4);
        let no_gpu = |route: &str| !route.contains("gpu");
        assert_eq!(
            view.pick(&no_gpu, |_| 0).as_deref(),
            Some("entry-100-noop-0000000002")
        );
        assert_eq!(
            view.pick(&no_gpu, |_| 0).as_deref(),
            Some("entry-100-0000000003"),
            "plain entries sort with routed ones by sequence"
        );
        assert_eq!(view.pick(&no_gpu, |_| 0), None);
        assert_eq!(
            view.pick(&all, |_| 0).as_deref(),
            Some("entry-050-train+gpu-0000000005"),
            "priority first, across routes"
        );
        assert_eq!(
            view.pick(&all, |_| 0).as_deref(),
            Some("entry-100-train+gpu-0000000001")
        );
        view.entry_deleted("entry-100-noop-0000000002");
        view.entry_deleted("entry-100-noop-0000000002");
        assert_eq!(view.len(), 3);
    }

    /// A view of two entries, the first held by session 1, the second by session 2.
    fn two_held() -> (View, LostSignal, LostSignal) {
        let mut view = View::default();
        view.reset(
            names(&["entry-100-0000000001", "entry-100-0000000002"]),
            vec![],
            0,
        );
        let (a, b) = (LostSignal::new(), LostSignal::new());
        view.acquired("entry-100-0000000001", a.clone(), 1, 10);
        view.acquired("entry-100-0000000002", b.clone(), 2, 10);
        (view, a, b)
    }

    #[test]
    fn deletion_by_someone_else_trips_lost_but_our_own_does_not() {
        let (mut view, a, b) = two_held();
        assert!(view.finishing("entry-100-0000000001"));
        view.taken_deleted("entry-100-0000000001", 20);
        view.taken_deleted("entry-100-0000000002", 20);
        assert!(!a.is_lost());
        assert_eq!(b.reason(), Some(LostReason::NodeDeleted));
        assert!(
            !view.finishing("entry-100-0000000002"),
            "a lost entry is no longer held"
        );
    }

    #[test]
    fn resync_detects_markers_deleted_while_away_and_close_trips_everything() {
        let (mut view, a, b) = two_held();
        view.reset(
            names(&["entry-100-0000000001", "entry-100-0000000002"]),
            names(&["entry-100-0000000002"]),
            20,
        );
        assert_eq!(a.reason(), Some(LostReason::NodeDeleted));
        assert!(!b.is_lost());
        assert!(
            view.lose_owner(1, LostReason::Suspended).is_empty(),
            "owner 1 lost its only entry already"
        );
        view.close(LostReason::SessionExpired);
        assert_eq!(b.reason(), Some(LostReason::SessionExpired));
        let late = LostSignal::new();
        view.acquired("entry-100-0000000003", late.clone(), 1, 10);
        assert!(late.is_lost(), "nothing can be held on a closed view");
        assert_eq!(view.held_by(1), 0);
    }

    #[test]
    fn stale_deletions_and_lagging_listings_never_trip_a_newer_take() {
        let mut view = View::default();
        view.reset(names(&["entry-100-0000000001"]), vec![], 5);
        let a = LostSignal::new();
        // Our marker, created at zxid 30, replaced a previous holder's, deleted at 25.
        view.acquired("entry-100-0000000001", a.clone(), 1, 30);
        assert!(!view.taken_deleted("entry-100-0000000001", 25));
        assert!(!a.is_lost(), "the previous holder's deletion, seen late");
        // A listing from a server that has not seen our take yet.
        assert!(!view.reset(names(&["entry-100-0000000001"]), vec![], 28));
        assert!(!a.is_lost(), "a listing older than our take");
        // Without a zxid (ZooKeeper before 3.9) the entry becomes a suspect for its
        // session to check, once.
        assert!(view.taken_deleted("entry-100-0000000001", NO_ZXID));
        assert!(!view.taken_deleted("entry-100-0000000001", NO_ZXID));
        assert!(view.take_suspects(2).is_empty(), "another session's");
        assert_eq!(
            view.take_suspects(1),
            [("entry-100-0000000001".to_owned(), 30)]
        );
        assert!(!a.is_lost());
        view.marker_gone("entry-100-0000000001", 30);
        assert_eq!(a.reason(), Some(LostReason::NodeDeleted));
        // A newer deletion of a held marker trips at once.
        let b = LostSignal::new();
        view.acquired("entry-100-0000000002", b.clone(), 1, 40);
        view.taken_deleted("entry-100-0000000002", 41);
        assert_eq!(b.reason(), Some(LostReason::NodeDeleted));
    }
}

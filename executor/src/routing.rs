//! Which queue entries this executor takes: those whose route (in the entry's name) it
//! can run, and plain entries, whose job it reads before claiming (see `slot.rs`).
//! Entries for other executors are never picked, so they cost no attempt and no spin;
//! nor are entries of a paused action (`drover pause`), while the pause holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drover_actions::Catalogue;
use drover_coordination::RouteFilter;
use drover_core::{Offer, Route};
use drover_model::Pauses;

/// Decisions remembered per route segment, at most this many (routes are few: one per
/// action and tag set).
const REMEMBERED: usize = 4096;

/// This executor's offer and its decisions per route.
#[derive(Debug)]
pub(crate) struct Routing {
    offer: Offer,
    decided: Mutex<HashMap<String, bool>>,
    /// What is paused now, from `/control/pauses`.
    pauses: Mutex<Pauses>,
}

impl Routing {
    pub(crate) fn new(offer: Offer) -> Arc<Routing> {
        Arc::new(Routing {
            offer,
            decided: Mutex::new(HashMap::new()),
            pauses: Mutex::new(Pauses::default()),
        })
    }

    /// What an executor with `catalogue` and `tags` (checked by the configuration)
    /// offers.
    pub(crate) fn for_catalogue(catalogue: &Catalogue, tags: &[String]) -> Arc<Routing> {
        let tags: Vec<String> = drover_core::route::tag_set(tags)
            .unwrap_or_default()
            .into_iter()
            .collect();
        Routing::new(Offer::from_lists(&catalogue.requirements(), &tags))
    }

    /// What this executor offers.
    pub(crate) fn offer(&self) -> &Offer {
        &self.offer
    }

    /// Whether this executor can run `route`.
    pub(crate) fn runs(&self, route: &Route) -> bool {
        self.offer.runs(route)
    }

    /// Replaces what is paused; whether anything changed.
    pub(crate) fn set_pauses(&self, pauses: &Pauses) -> bool {
        let mut known = drover_core::lock(&self.pauses);
        let changed = *known != *pauses;
        known.clone_from(pauses);
        changed
    }

    /// Whether `action` is paused now.
    pub(crate) fn paused(&self, action: &str) -> bool {
        drover_core::lock(&self.pauses).of(action).is_some()
    }

    /// Whether to take an entry whose name carries `segment` (`""`: a plain entry, taken
    /// to read its job).
    pub(crate) fn takes(&self, segment: &str) -> bool {
        if segment.is_empty() {
            return true;
        }
        let action = segment.split('+').next().unwrap_or(segment);
        if self.paused(action) {
            return false;
        }
        let mut decided = drover_core::lock(&self.decided);
        if let Some(&takes) = decided.get(segment) {
            return takes;
        }
        let takes = Route::parse(segment).is_some_and(|route| self.offer.runs(&route));
        if decided.len() >= REMEMBERED {
            decided.clear();
        }
        decided.insert(segment.to_owned(), takes);
        takes
    }

    /// The queue filter that takes what [`Routing::takes`] says.
    pub(crate) fn filter(self: &Arc<Self>) -> RouteFilter {
        let routing = self.clone();
        RouteFilter::new(move |segment| routing.takes(segment))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn takes_plain_entries_and_the_routes_it_runs() {
        let actions = BTreeMap::from([
            ("noop".to_owned(), vec![]),
            ("train".to_owned(), vec!["gpu".to_owned()]),
        ]);
        let cpu = Routing::new(Offer::from_lists(&actions, &[]));
        let gpu = Routing::new(Offer::from_lists(&actions, &["gpu".to_owned()]));
        for routing in [&cpu, &gpu] {
            assert!(routing.takes(""), "plain entries are read first");
            assert!(routing.takes("noop"));
            assert!(!routing.takes("nosuch"));
            assert!(!routing.takes("noop+db"));
            assert!(!routing.takes("not a route"));
        }
        assert!(!cpu.takes("train") && gpu.takes("train"));
        assert!(!cpu.filter().accepts("train+gpu") && gpu.filter().accepts("train+gpu"));
    }

    #[test]
    fn paused_actions_are_not_taken_until_resumed() {
        let actions = BTreeMap::from([("noop".to_owned(), vec![]), ("sleep".to_owned(), vec![])]);
        let routing = Routing::new(Offer::from_lists(&actions, &[]));
        let pause = drover_model::Pause {
            by: "ops".into(),
            since: "now".into(),
            reason: None,
        };
        let mut pauses = Pauses::default();
        pauses.actions.insert("sleep".into(), pause.clone());
        assert!(routing.set_pauses(&pauses) && !routing.set_pauses(&pauses));
        assert!(routing.takes("noop") && !routing.takes("sleep"));
        assert!(
            routing.takes(""),
            "a plain entry is read, then put back under its route"
        );
        pauses.all = Some(pause);
        routing.set_pauses(&pauses);
        assert!(!routing.takes("noop") && !routing.takes("sleep"));
        routing.set_pauses(&Pauses::default());
        assert!(
            routing.takes("noop") && routing.takes("sleep"),
            "the offer's cache is kept"
        );
    }
}

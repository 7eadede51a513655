//! Which queue entries this executor takes: those whose route (in the entry's name) it
//! can run, and plain entries, whose job it reads before claiming (see `slot.rs`).
//! Entries for other executors are never picked, so they cost no attempt and no spin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use drover_actions::Catalogue;
use drover_coordination::RouteFilter;
use drover_core::{Offer, Route};

/// Decisions remembered per route segment, at most this many (routes are few: one per
/// action and tag set).
const REMEMBERED: usize = 4096;

/// This executor's offer and its decisions per route.
#[derive(Debug)]
pub(crate) struct Routing {
    offer: Offer,
    decided: Mutex<HashMap<String, bool>>,
}

impl Routing {
    pub(crate) fn new(offer: Offer) -> Arc<Routing> {
        Arc::new(Routing {
            offer,
            decided: Mutex::new(HashMap::new()),
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

    /// Whether to take an entry whose name carries `segment` (`""`: a plain entry, taken
    /// to read its job).
    pub(crate) fn takes(&self, segment: &str) -> bool {
        if segment.is_empty() {
            return true;
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
}

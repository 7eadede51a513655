//! Routing: what a job needs of an executor ([`Route`]) and what an executor offers
//! ([`Offer`]), decided one way by the API (to say why a job waits), by executors (to
//! take only what they can run) and by the reconciler.
//!
//! A job's route is its action plus the tags its submitter requires. It travels in the
//! queue entry's name, between the priority and the sequence, as the action followed by
//! `+tag` for each required tag in order: `entry-100-train+gpu-0000000012`. Names and
//! tags never hold `+` or `/`, so the segment reads back unambiguously, and an executor
//! decides from the name alone, without reading the job, whether to take an entry.
//! An entry without a segment (`entry-100-0000000012`, as kazoo's `LockingQueue` puts
//! them) has no route in its name: a taker must read its job to know.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::names::check_name;

/// The most tags a job may require or an executor may carry.
pub const MAX_TAGS: usize = 32;
/// The longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 64;

/// A tag: 1 to [`MAX_TAG_LEN`] of `A-Z a-z 0-9 _ . -` (`gpu`, `db`, `disk-2t`).
///
/// # Errors
/// What is wrong with the tag and how to write one.
pub fn check_tag(tag: &str) -> Result<(), String> {
    if tag.len() > MAX_TAG_LEN {
        return Err(format!(
            "tag {tag:?} must be 1 to {MAX_TAG_LEN} characters long"
        ));
    }
    check_name("tag", tag)
}

/// Checks `tags` one by one and returns them sorted without repeats.
///
/// # Errors
/// The first bad tag, or more than [`MAX_TAGS`] of them.
pub fn tag_set<I, S>(tags: I) -> Result<BTreeSet<String>, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut set = BTreeSet::new();
    for tag in tags {
        let tag = tag.as_ref().trim();
        check_tag(tag)?;
        set.insert(tag.to_owned());
    }
    if set.len() > MAX_TAGS {
        return Err(format!(
            "{} tags given; at most {MAX_TAGS} are allowed",
            set.len()
        ));
    }
    Ok(set)
}

/// What a job needs of an executor: an executor that offers `action` and carries every
/// tag of `requires`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// The job's action.
    pub action: String,
    /// Tags the submitter requires, sorted.
    pub requires: BTreeSet<String>,
}

impl Route {
    /// A checked route.
    ///
    /// # Errors
    /// A bad action name or tag.
    pub fn new<I, S>(action: &str, requires: I) -> Result<Route, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        check_name("action", action)?;
        Ok(Route {
            action: action.to_owned(),
            requires: tag_set(requires)?,
        })
    }

    /// The segment of a queue entry's name: `train` or `train+gpu+db`.
    pub fn segment(&self) -> String {
        let mut segment = self.action.clone();
        for tag in &self.requires {
            segment.push('+');
            segment.push_str(tag);
        }
        segment
    }

    /// Reads what [`Route::segment`] wrote; `None` for anything else.
    pub fn parse(segment: &str) -> Option<Route> {
        let mut parts = segment.split('+');
        let action = parts.next()?;
        Route::new(action, parts).ok()
    }
}

impl fmt::Display for Route {
    /// `action \`train\` with tags \`gpu\`, \`db\``, for messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "action `{}`", self.action)?;
        if !self.requires.is_empty() {
            let tags: Vec<String> = self.requires.iter().map(|t| format!("`{t}`")).collect();
            let word = if tags.len() == 1 { "tag" } else { "tags" };
            write!(f, " with {word} {}", tags.join(", "))?;
        }
        Ok(())
    }
}

/// What one executor offers: the actions of its catalogue, each with the tags its action
/// file requires, and the executor's own tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    /// Action name → the tags its action file requires.
    pub actions: BTreeMap<String, BTreeSet<String>>,
    /// The executor's tags.
    pub tags: BTreeSet<String>,
}

/// Why an executor cannot run a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unfit {
    /// Its catalogue has no such action.
    NoAction,
    /// It lacks these tags (the submitter's or the action file's).
    MissingTags(BTreeSet<String>),
}

impl Offer {
    /// An offer from a membership record's lists: action → the tags its file requires,
    /// and the executor's tags.
    pub fn from_lists(actions: &BTreeMap<String, Vec<String>>, tags: &[String]) -> Offer {
        Offer {
            actions: actions
                .iter()
                .map(|(name, needs)| (name.clone(), needs.iter().cloned().collect()))
                .collect(),
            tags: tags.iter().cloned().collect(),
        }
    }

    /// Why this executor cannot run `route`, or `None` when it can: it has the action,
    /// and its tags include the action file's and the submitter's.
    pub fn unfit(&self, route: &Route) -> Option<Unfit> {
        let Some(file_requires) = self.actions.get(&route.action) else {
            return Some(Unfit::NoAction);
        };
        let missing: BTreeSet<String> = file_requires
            .iter()
            .chain(&route.requires)
            .filter(|tag| !self.tags.contains(*tag))
            .cloned()
            .collect();
        (!missing.is_empty()).then_some(Unfit::MissingTags(missing))
    }

    /// Whether this executor can run `route`.
    pub fn runs(&self, route: &Route) -> bool {
        self.unfit(route).is_none()
    }

    /// The actions it can run with its own tags (those whose file requires nothing it
    /// lacks), sorted.
    pub fn runnable_actions(&self) -> Vec<&str> {
        self.actions
            .iter()
            .filter(|(_, needs)| needs.is_subset(&self.tags))
            .map(|(name, _)| name.as_str())
            .collect()
    }
}

/// Why no executor of `offers` (id → offer) can run `route`, for a waiting job's status
/// message; `None` when one can.
pub fn why_waiting<'a, I>(route: &Route, offers: I) -> Option<String>
where
    I: IntoIterator<Item = (&'a str, &'a Offer)>,
{
    let mut ids = Vec::new();
    let mut knowing = Vec::new();
    for (id, offer) in offers {
        match offer.unfit(route) {
            None => return None,
            Some(Unfit::NoAction) => {}
            Some(Unfit::MissingTags(missing)) => {
                let tags: Vec<&str> = missing.iter().map(String::as_str).collect();
                knowing.push(format!("{id} lacks {}", tags.join(", ")));
            }
        }
        ids.push(id);
    }
    let registered = match ids.len() {
        0 => "no executor is registered".to_owned(),
        1 => format!("1 executor registered: {}", some(&ids)),
        n => format!("{n} executors registered: {}", some(&ids)),
    };
    let known = if knowing.is_empty() {
        String::new()
    } else {
        format!(" (knows the action: {})", some(&knowing))
    };
    Some(format!(
        "no executor offers {route}; {registered}{known}; it runs as soon as one that does registers"
    ))
}

/// Up to eight of `items`, and how many more.
fn some<T: AsRef<str>>(items: &[T]) -> String {
    const SHOWN: usize = 8;
    let shown: Vec<&str> = items.iter().take(SHOWN).map(AsRef::as_ref).collect();
    match items.len().saturating_sub(SHOWN) {
        0 => shown.join(", "),
        more => format!("{} and {more} more", shown.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(actions: &[(&str, &[&str])], tags: &[&str]) -> Offer {
        Offer {
            actions: actions
                .iter()
                .map(|(a, t)| ((*a).to_owned(), tag_set(*t).unwrap()))
                .collect(),
            tags: tag_set(tags).unwrap(),
        }
    }

    #[test]
    fn segments_read_back_and_sort_their_tags() {
        let route = Route::new("train-1.2", ["gpu", "db", "gpu"]).unwrap();
        assert_eq!(route.segment(), "train-1.2+db+gpu");
        assert_eq!(Route::parse(&route.segment()), Some(route));
        assert_eq!(Route::parse("noop").unwrap().requires.len(), 0);
        for bad in ["", "a+", "+gpu", "a b", "a+g/u"] {
            assert_eq!(Route::parse(bad), None, "{bad:?}");
        }
        assert!(Route::new("x", ["no+plus"]).is_err());
        assert!(tag_set((0..=MAX_TAGS).map(|i| format!("t{i}"))).is_err());
        assert!(check_tag(&"t".repeat(MAX_TAG_LEN + 1)).is_err());
    }

    #[test]
    fn an_offer_runs_what_it_has_with_every_tag() {
        let gpu = offer(&[("train", &["gpu"]), ("noop", &[])], &["gpu", "db"]);
        let plain = offer(&[("train", &["gpu"]), ("noop", &[])], &[]);
        let train = Route::new("train", Vec::<String>::new()).unwrap();
        let noop_db = Route::new("noop", ["db"]).unwrap();
        assert!(gpu.runs(&train) && gpu.runs(&noop_db));
        assert_eq!(
            plain.unfit(&train),
            Some(Unfit::MissingTags(tag_set(["gpu"]).unwrap()))
        );
        assert_eq!(
            plain.unfit(&noop_db),
            Some(Unfit::MissingTags(tag_set(["db"]).unwrap()))
        );
        assert_eq!(
            plain.unfit(&Route::parse("nosuch").unwrap()),
            Some(Unfit::NoAction)
        );
        assert_eq!(plain.runnable_actions(), ["noop"]);
        assert_eq!(gpu.runnable_actions(), ["noop", "train"]);
    }

    #[test]
    fn a_waiting_message_names_what_is_missing() {
        let a = offer(&[("noop", &[])], &[]);
        let b = offer(&[("train", &[])], &["db"]);
        let route = Route::new("train", ["gpu"]).unwrap();
        let why = why_waiting(&route, [("a", &a), ("b", &b)]).unwrap();
        assert_eq!(
            why,
            "no executor offers action `train` with tag `gpu`; 2 executors registered: a, b \
             (knows the action: b lacks gpu); it runs as soon as one that does registers"
        );
        let none = why_waiting(&route, []).unwrap();
        assert!(none.contains("no executor is registered"), "{none}");
        let fit = offer(&[("train", &[])], &["gpu"]);
        assert_eq!(why_waiting(&route, [("a", &a), ("c", &fit)]), None);
    }
}

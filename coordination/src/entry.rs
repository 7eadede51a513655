//! Queue entry names, in kazoo's `LockingQueue` layout: `entry-PPP-NNNNNNNNNN`, or with a
//! route between priority and sequence: `entry-PPP-<route>-NNNNNNNNNN`.
//!
//! kazoo sorts entries by name and takes any of them; drover's takers order them by
//! priority, then sequence (one counter for the whole directory), whatever their route,
//! and take only the routes they accept.

use drover_core::Priority;

/// The prefix kazoo gives every entry.
const PREFIX: &str = "entry-";

/// The name prefix for a new entry of `priority` (and `route`, if any); ZooKeeper
/// appends the sequence.
pub(crate) fn entry_prefix(priority: Priority, route: Option<&str>) -> String {
    match route {
        Some(route) => format!("{PREFIX}{}-{route}-", priority.as_queue_prefix()),
        None => format!("{PREFIX}{}-", priority.as_queue_prefix()),
    }
}

/// An entry name's parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parts<'a> {
    /// The priority band, `PPP`.
    pub(crate) band: &'a str,
    /// The route segment; empty for a plain (kazoo-shaped) entry.
    pub(crate) route: &'a str,
    /// The sequence ZooKeeper appended.
    pub(crate) seq: &'a str,
}

/// The parts of an entry name, if it has the queue's shape.
pub(crate) fn parse(name: &str) -> Option<Parts<'_>> {
    let rest = name.strip_prefix(PREFIX)?;
    let (band, rest) = rest.split_once('-')?;
    if band.len() != 3 || !band.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (route, seq) = rest.rsplit_once('-').unwrap_or(("", rest));
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if rest.contains('-') && route.is_empty() {
        return None;
    }
    Some(Parts { band, route, seq })
}

/// The route segment of an entry name (empty for a plain entry or a foreign name).
pub fn route_of(name: &str) -> &str {
    parse(name).map_or("", |p| p.route)
}

/// Whether `name` is a queue entry name as ZooKeeper makes them: `entry-PPP-`, a route
/// segment and `-` when routed, and the ten-digit sequence.
pub fn is_entry_name(name: &str) -> bool {
    name.len() <= 1024
        && parse(name).is_some_and(|p| {
            p.seq.len() == 10 && (p.route.is_empty() || check_route(p.route).is_ok())
        })
}

/// Checks a route segment for an entry name.
pub(crate) fn check_route(route: &str) -> Result<(), String> {
    if route.is_empty() || route.contains('/') || route.chars().any(char::is_control) {
        return Err(format!(
            "route {route:?} cannot go in a queue entry name: give a non-empty segment without '/'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_zero_padded() {
        assert_eq!(entry_prefix(Priority::new(7).unwrap(), None), "entry-007-");
        assert_eq!(entry_prefix(Priority::default(), None), "entry-100-");
        assert_eq!(
            entry_prefix(Priority::new(999).unwrap(), Some("train+gpu")),
            "entry-999-train+gpu-"
        );
    }

    #[test]
    fn parts_of_plain_and_routed_names() {
        let parts = |n| parse(n).map(|p| (p.band, p.route, p.seq));
        assert_eq!(
            parts("entry-100-0000000003"),
            Some(("100", "", "0000000003"))
        );
        assert_eq!(
            parts("entry-007-build-1.2+gpu-0000000010"),
            Some(("007", "build-1.2+gpu", "0000000010"))
        );
        assert_eq!(parts("entry-7-0000000010"), None);
        assert_eq!(parts("something"), None);
        assert_eq!(parts("entry-100-"), None);
        assert_eq!(parts("entry-100--0000000001"), None);
        assert_eq!(parts("entry-100-x-"), None);
        assert_eq!(route_of("entry-100-noop-0000000001"), "noop");
        assert!(is_entry_name("entry-100-noop+gpu-0000000001"));
        assert!(is_entry_name("entry-100-0000000001"));
        assert!(!is_entry_name("entry-100-00001") && !is_entry_name("entry-100-a/b-0000000001"));
        assert!(check_route("a/b").is_err() && check_route("").is_err());
    }
}

//! Queue entry names, in kazoo's `LockingQueue` layout: `entry-PPP-NNNNNNNNNN`.

use drover_core::Priority;

/// The prefix kazoo gives every entry.
const PREFIX: &str = "entry-";

/// The name prefix for a new entry of `priority`; ZooKeeper appends the sequence.
pub(crate) fn entry_prefix(priority: Priority) -> String {
    format!("{PREFIX}{}-", priority.as_queue_prefix())
}

/// The priority band of an entry name (the `PPP` part), if it has kazoo's shape.
///
/// Entries sort by name, so priority first, then sequence: lower runs first, FIFO within
/// a priority.
pub(crate) fn band(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(PREFIX)?;
    let (ppp, seq) = rest.split_once('-')?;
    (ppp.len() == 3 && ppp.bytes().all(|b| b.is_ascii_digit()) && !seq.is_empty()).then_some(ppp)
}

/// Whether `name` is an entry this queue should consider at all.
pub(crate) fn is_entry(name: &str) -> bool {
    band(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_is_zero_padded() {
        assert_eq!(entry_prefix(Priority::new(7).unwrap()), "entry-007-");
        assert_eq!(entry_prefix(Priority::default()), "entry-100-");
        assert_eq!(entry_prefix(Priority::new(999).unwrap()), "entry-999-");
    }

    #[test]
    fn band_of_kazoo_names() {
        assert_eq!(band("entry-100-0000000003"), Some("100"));
        assert_eq!(band("entry-007-0000000010"), Some("007"));
        assert_eq!(band("entry-7-0000000010"), None);
        assert_eq!(band("something"), None);
        assert_eq!(band("entry-100-"), None);
    }

    #[test]
    fn names_sort_by_priority_then_sequence() {
        let mut names = vec![
            "entry-100-0000000002",
            "entry-050-0000000009",
            "entry-100-0000000001",
        ];
        names.sort();
        assert_eq!(
            names,
            [
                "entry-050-0000000009",
                "entry-100-0000000001",
                "entry-100-0000000002"
            ]
        );
    }
}

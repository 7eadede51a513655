//! How soon a queued job runs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// A job's queue priority, `0..=999`: **lower runs first**.
///
/// The value is the `PPP` in the queue entry name `entry-PPP-NNNNNNNNNN`,
/// which kazoo's `LockingQueue` sorts on, so the ordering of this type
/// (by number) is the order in which jobs are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u16);

impl Priority {
    /// The most urgent priority, 0.
    pub const FIRST: Self = Self(0);
    /// The least urgent priority, 999.
    pub const LAST: Self = Self(999);
    /// The priority of a job that does not ask for one, 100.
    pub const DEFAULT: Self = Self(100);

    /// Checks that `value` is within `0..=999`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPriority`] when `value` is 1000 or more.
    pub fn new(value: u16) -> Result<Self, Error> {
        Self::checked(u64::from(value))
    }

    /// The number, `0..=999`.
    pub const fn get(self) -> u16 {
        self.0
    }

    /// The zero-padded three digits used in queue entry names, such as `"007"`.
    pub fn as_queue_prefix(&self) -> String {
        format!("{:03}", self.0)
    }

    fn checked(value: u64) -> Result<Self, Error> {
        match u16::try_from(value) {
            Ok(small) if small <= Self::LAST.0 => Ok(Self(small)),
            _ => Err(Error::InvalidPriority { value }),
        }
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for Priority {
    type Err = Error;

    /// Parses `"7"` as well as the queue prefix `"007"`.
    fn from_str(input: &str) -> Result<Self, Error> {
        let value = input
            .trim()
            .parse::<u64>()
            .map_err(|source| Error::UnparsablePriority {
                input: input.to_owned(),
                source,
            })?;
        Self::checked(value)
    }
}

impl TryFrom<u16> for Priority {
    type Error = Error;

    fn try_from(value: u16) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl From<Priority> for u16 {
    fn from(priority: Priority) -> Self {
        priority.0
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u16(self.0)
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read a u64 so that 70000 gets our range message, not serde's u16 one.
        let value = u64::deserialize(deserializer)?;
        Self::checked(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_zero_to_999() {
        assert_eq!(Priority::new(0).unwrap(), Priority::FIRST);
        assert_eq!(Priority::new(999).unwrap(), Priority::LAST);
        let err = Priority::new(1000).unwrap_err();
        assert_eq!(
            err.to_string(),
            "priority 1000 is out of range: use 0 (runs first) to 999"
        );
    }

    #[test]
    fn default_is_100_and_lower_sorts_first() {
        assert_eq!(Priority::default().get(), 100);
        let mut priorities = [Priority::LAST, Priority::DEFAULT, Priority::FIRST];
        priorities.sort();
        assert_eq!(
            priorities,
            [Priority::FIRST, Priority::DEFAULT, Priority::LAST]
        );
    }

    #[test]
    fn queue_prefix_is_three_digits_and_sorts_like_the_number() {
        assert_eq!(Priority::new(7).unwrap().as_queue_prefix(), "007");
        assert_eq!(Priority::FIRST.as_queue_prefix(), "000");
        assert_eq!(Priority::LAST.as_queue_prefix(), "999");
        for value in 0..999 {
            let (a, b) = (Priority(value), Priority(value + 1));
            assert!(a.as_queue_prefix() < b.as_queue_prefix());
        }
    }

    #[test]
    fn parses_numbers_and_prefixes() {
        assert_eq!("7".parse::<Priority>().unwrap().get(), 7);
        assert_eq!("007".parse::<Priority>().unwrap().get(), 7);
        assert_eq!(Priority(42).to_string(), "42");
        let err = "70000".parse::<Priority>().unwrap_err();
        assert!(matches!(err, Error::InvalidPriority { value: 70000 }));
        let err = "high".parse::<Priority>().unwrap_err();
        assert!(err.to_string().contains("\"high\""), "{err}");
    }

    #[test]
    fn serde_is_a_validated_number() {
        assert_eq!(serde_json::to_string(&Priority(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<Priority>("7").unwrap(), Priority(7));
        for bad in ["1000", "70000"] {
            let err = serde_json::from_str::<Priority>(bad).unwrap_err();
            assert!(err.to_string().contains("out of range"), "{err}");
        }
        assert!(serde_json::from_str::<Priority>("-1").is_err());
    }
}

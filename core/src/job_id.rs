//! The identity of a job.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::Error;

/// A job's identity: a random (v4) UUID.
///
/// It is what the ZooKeeper queue stores as an entry's data, and it always
/// appears as a lowercase hyphenated string (`67e55044-10b1-426f-9247-bb680e5fe0c8`),
/// in JSON as everywhere else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(Uuid);

impl JobId {
    /// A fresh random id.
    // A `Default` that invents a random id would surprise; `new` says it.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// Wraps an existing UUID.
    pub const fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    /// The UUID inside.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl From<Uuid> for JobId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<JobId> for Uuid {
    fn from(id: JobId) -> Self {
        id.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for JobId {
    type Err = Error;

    /// Parses any UUID spelling `uuid` accepts (hyphenated, simple, braced, URN).
    fn from_str(input: &str) -> Result<Self, Error> {
        Uuid::parse_str(input.trim())
            .map(Self)
            .map_err(|source| Error::InvalidJobId {
                input: input.to_owned(),
                source,
            })
    }
}

impl Serialize for JobId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "67e55044-10b1-426f-9247-bb680e5fe0c8";

    #[test]
    fn display_and_parse_round_trip() {
        let id: JobId = TEXT.parse().unwrap();
        assert_eq!(id.to_string(), TEXT);
        let fresh = JobId::new();
        assert_eq!(fresh.to_string().parse::<JobId>().unwrap(), fresh);
        assert_eq!(fresh.as_uuid().get_version_num(), 4);
    }

    #[test]
    fn other_spellings_display_hyphenated() {
        let id: JobId = "67E5504410B1426F9247BB680E5FE0C8".parse().unwrap();
        assert_eq!(id.to_string(), TEXT);
    }

    #[test]
    fn serde_uses_the_hyphenated_string() {
        let id: JobId = TEXT.parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{TEXT}\""));
        assert_eq!(serde_json::from_str::<JobId>(&json).unwrap(), id);
    }

    #[test]
    fn garbage_is_rejected_with_the_input_and_an_example() {
        let err = "not-a-job".parse::<JobId>().unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"not-a-job\""), "{message}");
        assert!(message.contains("expected a UUID"), "{message}");
        assert!(matches!(err, Error::InvalidJobId { .. }));

        let err = serde_json::from_str::<JobId>("\"nope\"").unwrap_err();
        assert!(err.to_string().contains("invalid job id"), "{err}");
    }
}

//! Serde helper for a list written as a sequence or as one comma-separated string.
//!
//! Environment variables hold one string, so a list set from the environment
//! arrives as `"a,b,c"` while a file gives a real sequence. Use it as
//! `#[serde(with = "drover_core::comma_separated")]` on a `Vec<T>`:
//! items are trimmed, empty ones dropped, and each is parsed with `T::from_str`.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserializer, Serialize, Serializer};

/// Deserializes a sequence of `T`, or a string of comma-separated `T`s.
///
/// # Errors
///
/// When the input is neither, or an item does not parse as `T`.
pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned + FromStr,
    T::Err: fmt::Display,
{
    deserializer.deserialize_any(ListVisitor(PhantomData))
}

/// Serializes the list as a sequence.
///
/// # Errors
///
/// When the serializer fails on an item.
pub fn serialize<S, T>(items: &[T], serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    T: Serialize,
{
    serializer.collect_seq(items)
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T> Visitor<'de> for ListVisitor<T>
where
    T: DeserializeOwned + FromStr,
    T::Err: fmt::Display,
{
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list, or a string of comma-separated items")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<T>, E> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.parse()
                    .map_err(|err| E::custom(format!("invalid list item {item:?}: {err}")))
            })
            .collect()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Hosts {
        #[serde(with = "super")]
        hosts: Vec<String>,
        #[serde(with = "super", default)]
        dirs: Vec<PathBuf>,
    }

    #[test]
    fn accepts_a_sequence_or_a_string() {
        let from_seq: Hosts = serde_json::from_str(r#"{"hosts": ["a:2181", "b:2181"]}"#).unwrap();
        let from_str: Hosts = serde_json::from_str(r#"{"hosts": " a:2181, b:2181 ,"}"#).unwrap();
        assert_eq!(from_seq, from_str);
        assert_eq!(from_seq.hosts, ["a:2181", "b:2181"]);
        assert!(from_seq.dirs.is_empty());
    }

    #[test]
    fn serializes_as_a_sequence() {
        let hosts = Hosts {
            hosts: vec!["a".into()],
            dirs: vec!["/x".into(), "/y".into()],
        };
        assert_eq!(
            serde_json::to_string(&hosts).unwrap(),
            r#"{"hosts":["a"],"dirs":["/x","/y"]}"#
        );
    }

    #[test]
    fn items_that_do_not_parse_are_named() {
        #[derive(Debug, Deserialize)]
        struct Ports {
            #[serde(deserialize_with = "super::deserialize")]
            _ports: Vec<u16>,
        }
        let err = serde_json::from_str::<Ports>(r#"{"_ports": "80,http"}"#).unwrap_err();
        assert!(
            err.to_string().contains("invalid list item \"http\""),
            "{err}"
        );
    }
}

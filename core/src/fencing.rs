//! The token that keeps a zombie executor from overwriting a job.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The creation zxid of the ZooKeeper `taken` node an executor holds for a job.
///
/// ZooKeeper zxids only grow, so a later take of the same entry always carries
/// a greater token. The API accepts a write for a job only with the token of
/// its current holder and refuses older ones: compare tokens with `<`/`>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FencingToken(i64);

impl FencingToken {
    /// Wraps a zxid (`Stat::czxid` of the taken node).
    pub const fn new(zxid: i64) -> Self {
        Self(zxid)
    }

    /// The zxid inside.
    pub const fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for FencingToken {
    fn from(zxid: i64) -> Self {
        Self(zxid)
    }
}

impl From<FencingToken> for i64 {
    fn from(token: FencingToken) -> Self {
        token.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for FencingToken {
    type Err = Error;

    /// Parses the decimal form [`Display`](fmt::Display) writes (as in an HTTP header).
    fn from_str(input: &str) -> Result<Self, Error> {
        input
            .trim()
            .parse()
            .map(Self)
            .map_err(|source| Error::InvalidFencingToken {
                input: input.to_owned(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_zxids_win() {
        let older = FencingToken::new(0x1_0000_0005);
        let newer = FencingToken::new(0x2_0000_0001);
        assert!(newer > older);
        assert_eq!(older.max(newer), newer);
    }

    #[test]
    fn text_and_serde_are_the_plain_number() {
        let token = FencingToken::new(4_294_967_301);
        assert_eq!(token.to_string(), "4294967301");
        assert_eq!("4294967301".parse::<FencingToken>().unwrap(), token);
        assert_eq!(serde_json::to_string(&token).unwrap(), "4294967301");
        assert_eq!(
            serde_json::from_str::<FencingToken>("4294967301").unwrap(),
            token
        );
        let err = "0xabc".parse::<FencingToken>().unwrap_err();
        assert!(err.to_string().contains("\"0xabc\""), "{err}");
    }
}

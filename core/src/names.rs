//! What names and ids may look like, checked one way everywhere.
//!
//! Action and distribution names travel in URLs, ZooKeeper node names and container
//! labels; process ids (executors, distributors) are ZooKeeper node names too.

/// The longest name or id, in bytes.
pub const MAX_NAME_LEN: usize = 128;

/// An action or distribution name: 1 to [`MAX_NAME_LEN`] of `A-Z a-z 0-9 _ . -`. `kind`
/// says what is named, for the message (`action`, `distribution`).
///
/// # Errors
/// What is wrong with the name and how to write one.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "{kind} name {name:?} must be 1 to {MAX_NAME_LEN} characters long"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "{kind} name {name:?} contains {c:?}: use letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// A process's id (an executor's, a distributor's): 1 to [`MAX_NAME_LEN`] printable
/// characters without `/`, as a ZooKeeper node name needs.
///
/// # Errors
/// What is wrong with the id.
pub fn check_id(kind: &str, id: &str) -> Result<(), String> {
    if id.trim().is_empty()
        || id.len() > MAX_NAME_LEN
        || id.contains('/')
        || id.chars().any(char::is_control)
    {
        return Err(format!(
            "{kind} id {id:?} must be 1 to {MAX_NAME_LEN} printable characters without '/'"
        ));
    }
    Ok(())
}

/// The longest idempotency key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// An idempotency key (of a job or a pipeline request): 1 to [`MAX_KEY_LEN`] bytes
/// without control characters.
///
/// # Errors
/// What a key must look like.
pub fn check_idempotency_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(format!(
            "must be 1 to {MAX_KEY_LEN} characters without control characters: use e.g. a UUID"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert!(check_name("action", "build-1.2_x").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(129)] {
            assert!(check_name("action", bad).is_err(), "{bad:?}");
        }
        assert!(check_idempotency_key("distribution/nightly/1").is_ok());
        for bad in ["", "a\nb", &"k".repeat(256)] {
            assert!(check_idempotency_key(bad).is_err(), "{bad:?}");
        }
        assert!(check_id("executor", "node-1.example:2").is_ok());
        for bad in ["", " ", "a/b", "a\nb", &"x".repeat(129)] {
            assert!(check_id("executor", bad).is_err(), "{bad:?}");
        }
    }
}

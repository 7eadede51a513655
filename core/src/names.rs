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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert!(check_name("action", "build-1.2_x").is_ok());
        for bad in ["", "a b", "a/b", &"x".repeat(129)] {
            assert!(check_name("action", bad).is_err(), "{bad:?}");
        }
        assert!(check_id("executor", "node-1.example:2").is_ok());
        for bad in ["", " ", "a/b", "a\nb", &"x".repeat(129)] {
            assert!(check_id("executor", bad).is_err(), "{bad:?}");
        }
    }
}

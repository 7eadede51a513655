//! What is wrong with a project file: where, in which action, and how to fix it.

use std::fmt;

/// A project file that cannot be used. Its text reads
/// `drover.yaml:12: action `b`: `needs` names `x`, which is not an action here; …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectError {
    /// The file's name as the user gave it.
    pub file: String,
    /// The line (1-based) to look at.
    pub line: usize,
    /// The action the problem is in, if it is in one.
    pub action: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// How to fix it.
    pub fix: String,
}

impl fmt::Display for ProjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        if let Some(action) = &self.action {
            write!(f, "action `{action}`: ")?;
        }
        write!(f, "{}", self.problem)?;
        if !self.fix.is_empty() {
            write!(f, "; {}", self.fix)?;
        }
        Ok(())
    }
}

impl std::error::Error for ProjectError {}

/// A problem found before the file's name and the action are known; [`Problem::at`]
/// places it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) line: usize,
    pub(crate) action: Option<String>,
    pub(crate) problem: String,
    pub(crate) fix: String,
}

impl Problem {
    pub(crate) fn new(line: usize, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            line,
            action: None,
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// The same problem, inside `action` (unless it already names one).
    pub(crate) fn in_action(mut self, action: &str) -> Self {
        self.action.get_or_insert_with(|| action.to_owned());
        self
    }

    pub(crate) fn at(self, file: &str) -> ProjectError {
        ProjectError {
            file: file.to_owned(),
            line: self.line,
            action: self.action,
            problem: self.problem,
            fix: self.fix,
        }
    }
}

/// The known word closest to `word`, when one is close enough to be a typo.
pub(crate) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|candidate| (edit_distance(word, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 4))
        .min()
        .map(|(_, candidate)| candidate)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_word() {
        let keys = ["run", "needs", "outputs", "config"];
        assert_eq!(closest("need", &keys), Some("needs"));
        assert_eq!(closest("output", &keys), Some("outputs"));
        assert_eq!(closest("colour", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn text_names_file_line_action_and_fix() {
        let error = Problem::new(3, "it is wrong", "do this")
            .in_action("a")
            .at("drover.yaml");
        assert_eq!(
            error.to_string(),
            "drover.yaml:3: action `a`: it is wrong; do this"
        );
    }
}

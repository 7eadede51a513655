//! A declared output pattern: checked once when the project is read, then matched
//! against the files an action left in its workspace.

use std::fmt;
use std::str::FromStr;

use crate::error::PatternError;

/// The first directory of the workspace, kept for drover's own files (logs, manifest).
pub(crate) const RESERVED_DIR: &str = "metadata";

/// A declared output path, relative to `/workspace`, where `*` stands for any run of
/// characters within one part of the path.
///
/// ```
/// # use drover_outputs::Pattern;
/// let pattern = Pattern::parse("output/*.csv").unwrap();
/// assert!(pattern.matches("output/table.csv"));
/// assert!(!pattern.matches("output/sub/table.csv"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pattern(String);

impl Pattern {
    /// Checks `text` as a declared output path.
    ///
    /// # Errors
    /// The first rule the path breaks, in this order: empty, absolute (`/x`, `c:/x`),
    /// `\`, a control character, a `..`, `.` or empty part, `**`, `?`, `[` or `]`, under
    /// `metadata/`, no file extension on its last part.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let path = || text.to_owned();
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.starts_with('/') || has_drive(text) {
            return Err(PatternError::Absolute { path: path() });
        }
        if text.contains('\\') {
            return Err(PatternError::Backslash { path: path() });
        }
        if let Some(character) = text.chars().find(|c| c.is_control()) {
            return Err(PatternError::Control {
                path: path(),
                character,
            });
        }
        let parts: Vec<&str> = text.split('/').collect();
        if parts.contains(&"..") {
            return Err(PatternError::Parent { path: path() });
        }
        if parts.contains(&".") {
            return Err(PatternError::CurrentDir { path: path() });
        }
        if parts.contains(&"") {
            return Err(PatternError::EmptyPart { path: path() });
        }
        if text.contains("**") {
            return Err(PatternError::DoubleStar { path: path() });
        }
        if let Some(character) = text.chars().find(|c| matches!(c, '?' | '[' | ']')) {
            return Err(PatternError::Wildcard {
                path: path(),
                character,
            });
        }
        if parts[0] == RESERVED_DIR {
            return Err(PatternError::Reserved { path: path() });
        }
        if extension(parts[parts.len() - 1]).is_none() {
            return Err(PatternError::NoExtension { path: path() });
        }
        Ok(Pattern(text.to_owned()))
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this pattern names `path`, a file's path relative to the workspace as
    /// the executor lists it (`output/table.csv`).
    ///
    /// `*` matches any run of characters within one part, the empty run included, and
    /// never `/`; both must have the same number of parts. Everything else is compared
    /// exactly (case-sensitive). Unlike a shell, a leading dot is not special:
    /// `output/*.csv` matches `output/.csv` and `*.txt` matches `.hidden.txt`, since a
    /// file the action wrote where its pattern points is its output, hidden or not.
    /// A path that is absolute, has an empty, `.` or `..` part, or lies under
    /// `metadata/` never matches, whatever the pattern.
    pub fn matches(&self, path: &str) -> bool {
        if path.starts_with('/') {
            return false;
        }
        let mut wanted = self.0.split('/');
        let mut parts = path.split('/');
        if parts.clone().next() == Some(RESERVED_DIR) {
            return false;
        }
        loop {
            match (wanted.next(), parts.next()) {
                (None, None) => return true,
                (Some(want), Some(part)) => {
                    if matches!(part, "" | "." | "..") || !part_matches(want, part) {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Pattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Pattern::parse(text)
    }
}

/// `c:` or `C:` as the first part: a Windows drive, absolute on the machine that wrote it
/// (`a:b.csv` is a file name).
fn has_drive(text: &str) -> bool {
    let first = text.split('/').next().unwrap_or_default().as_bytes();
    first.len() == 2 && first[0].is_ascii_alphabetic() && first[1] == b':'
}

/// The extension of a file name, as Python's `Path.suffix` finds it: from the last dot,
/// when that dot is neither the name's first character nor its last.
pub(crate) fn extension(name: &str) -> Option<&str> {
    match name.rfind('.') {
        Some(0) | None => None,
        Some(dot) if dot + 1 == name.len() => None,
        Some(dot) => Some(&name[dot..]),
    }
}

/// Whether one part of a pattern matches one part of a path.
///
/// Works on bytes: `*` is ASCII, and a literal run of valid UTF-8 found in valid UTF-8
/// starts and ends on character boundaries, so what `*` swallows is always whole
/// characters. Greedy with a single backtrack point, linear for one `*` and at worst
/// quadratic in the part's length.
fn part_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_pi, star_ti)) = star {
            pi = star_pi + 1;
            ti = star_ti + 1;
            star = Some((star_pi, star_ti + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, path, matches).
    const GLOBS: &[(&str, &str, bool)] = &[
        ("output/table.csv", "output/table.csv", true),
        ("output/table.csv", "output/Table.csv", false),
        ("*.txt", "a.txt", true),
        ("*.txt", "sub/x.txt", false),
        ("sub/*", "sub/a.csv", true),
        ("sub/*", "sub/d/a.csv", false),
        ("sub/*.csv", "sub", false),
        ("output/*.csv", "output/.csv", true),
        ("*.txt", ".hidden.txt", true),
        ("output/*.csv", "output/table.csv.gz", false),
        ("output/*.csv.gz", "output/table.csv.gz", true),
        ("out/my file.txt", "out/my file.txt", true),
        ("out/*.txt", "out/my file.txt", true),
        ("out/données-é.csv", "out/données-é.csv", true),
        ("out/données-é.csv", "out/donnees-e.csv", false),
        ("out/*-é.csv", "out/données-é.csv", true),
        ("out/*-é.csv", "out/données-e.csv", false),
        ("out/*é.csv", "out/é.csv", true),
        ("*/table.csv", "output/table.csv", true),
        ("*/table.csv", "table.csv", false),
        ("*/*/*.csv", "a/b/c.csv", true),
        ("a*b*.txt", "ab.txt", true),
        ("a*b*.txt", "a-x-b-y.txt", true),
        ("a*b*.txt", "a-x-y.txt", false),
        ("a*b*.txt", "aXbXbX.txt", true),
        ("table.csv", "tableXcsv", false),
        ("t*.csv", "table.csv", true),
        ("*e.csv", "table.csv", true),
        ("*e.csv", "table.csvx", false),
        ("x*", "x.csv", true),
        ("output/*.csv", "output/a/b.csv", false),
        ("*/x.log", "metadata/x.log", false),
        ("*/*.csv", "a//b.csv", false),
        ("*/b.csv", "../b.csv", false),
        ("*/b.csv", "./b.csv", false),
        ("*.csv", "/a.csv", false),
        ("male*.csv", "male.csv", true),
        ("qu'ote*.csv", "qu'ote.csv", true),
    ];

    /// The matcher alone: `sub/*` and `x*` are refused by [`Pattern::parse`] (no
    /// extension) but show what `*` does.
    #[test]
    fn globs_match_within_one_part() {
        let wrong: Vec<String> = GLOBS
            .iter()
            .filter(|(pattern, path, want)| Pattern((*pattern).to_owned()).matches(path) != *want)
            .map(|(pattern, path, want)| format!("`{pattern}` vs `{path}`: want {want}"))
            .collect();
        assert!(GLOBS.len() >= 15);
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// (pattern, the error's exact text).
    const BAD: &[(&str, &str)] = &[
        ("", "the output path `` is empty"),
        ("/abs/path.txt", "the output path `/abs/path.txt` is absolute"),
        ("c:/windows/a.txt", "the output path `c:/windows/a.txt` is absolute"),
        ("out\\a.txt", "the output path `out\\a.txt` uses `\\`"),
        ("out/a\n.txt", "the output path `out/a\n.txt` holds a control character ('\\n')"),
        ("../secret.csv", "the output path `../secret.csv` leaves the workspace with `..`"),
        ("out/../../x.csv", "the output path `out/../../x.csv` leaves the workspace with `..`"),
        ("./out/x.csv", "the output path `./out/x.csv` has a `.` part"),
        ("not//canonical.txt", "the output path `not//canonical.txt` has an empty part (`//` or a trailing `/`)"),
        ("output/", "the output path `output/` has an empty part (`//` or a trailing `/`)"),
        ("recursive/**/glob.csv", "the output path `recursive/**/glob.csv` uses `**`, which would match across directories"),
        ("output/**.csv", "the output path `output/**.csv` uses `**`, which would match across directories"),
        ("questionmark?.txt", "the output path `questionmark?.txt` uses `?`, which is not a wildcard here"),
        ("[square]brackets.txt", "the output path `[square]brackets.txt` uses `[`, which is not a wildcard here"),
        ("brackets].txt", "the output path `brackets].txt` uses `]`, which is not a wildcard here"),
        ("metadata/x.log", "the output path `metadata/x.log` is under `metadata/`, which is reserved for drover's own files"),
        ("metadata/*.log", "the output path `metadata/*.log` is under `metadata/`, which is reserved for drover's own files"),
        ("output/table", "the output path `output/table` has no file extension"),
        ("output/*", "the output path `output/*` has no file extension"),
        ("output/.env", "the output path `output/.env` has no file extension"),
        ("output/table.", "the output path `output/table.` has no file extension"),
        ("output.d/table", "the output path `output.d/table` has no file extension"),
    ];

    #[test]
    fn bad_patterns_say_why() {
        let wrong: Vec<String> = BAD
            .iter()
            .filter_map(|(pattern, want)| match Pattern::parse(pattern) {
                Ok(_) => Some(format!("`{pattern}` parsed")),
                Err(e) if e.to_string() != *want => Some(format!("got  {e}\nwant {want}")),
                Err(e) if e.hint().is_empty() => Some(format!("`{pattern}`: no hint")),
                Err(_) => None,
            })
            .collect();
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn good_patterns_keep_their_text() {
        for text in [
            "output/table.csv",
            "out/my file.txt",
            "reports/{matrix.python}-{matrix.os}.xml",
            "metadata.csv",
            "output/metadata/x.log",
            "output/*.*",
            "output/dataset.csv.gz",
            "a:b.csv",
        ] {
            let pattern: Pattern = text.parse().unwrap();
            assert_eq!((pattern.as_str(), pattern.to_string()), (text, text.into()));
        }
        let hint = Pattern::parse("a/**/b.csv").unwrap_err().hint();
        assert!(hint.contains("only `*` is a wildcard"), "{hint}");
    }

    #[test]
    fn extensions_are_found_as_python_does() {
        assert_eq!(extension("table.csv"), Some(".csv"));
        assert_eq!(extension("t.tar.gz"), Some(".gz"));
        assert_eq!(extension(".env"), None);
        assert_eq!(extension("table."), None);
        assert_eq!(extension("table"), None);
    }
}

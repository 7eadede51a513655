//! A hint for the patterns that matched nothing, from the files no pattern matched.

use crate::pattern::Pattern;

/// The most patterns one hint suggests a file for.
const MAX_SUGGESTIONS: usize = 3;
/// The most unclaimed files a hint lists when none is close to a pattern.
const MAX_LISTED: usize = 5;

/// A hint for `unmatched` (declared patterns that matched no file) from `unclaimed`
/// (new files no pattern matched): "did you mean `output/Table.csv` for
/// `output/table.csv`?".
///
/// A file is close to a pattern when the two differ by at most
/// `max(2, pattern length / 4)` edits once case is ignored (a `*` costs nothing for what
/// it can match within its part), or when the file's name matches the pattern's last
/// part and only the directories differ. The closest file wins, by the case-blind
/// distance first, then the exact one. At most three patterns get a suggestion.
///
/// When no file is close it lists up to five of `unclaimed` in the order given:
/// "files no pattern matched: a, b". `None` when `unmatched` or `unclaimed` is empty.
pub fn did_you_mean(unmatched: &[&Pattern], unclaimed: &[&str]) -> Option<String> {
    if unmatched.is_empty() || unclaimed.is_empty() {
        return None;
    }
    let suggestions: Vec<String> = unmatched
        .iter()
        .filter_map(|pattern| {
            closest(pattern, unclaimed).map(|file| format!("`{file}` for `{pattern}`"))
        })
        .take(MAX_SUGGESTIONS)
        .collect();
    if !suggestions.is_empty() {
        return Some(format!("did you mean {}?", suggestions.join(", ")));
    }
    let listed: Vec<&str> = unclaimed.iter().copied().take(MAX_LISTED).collect();
    let more = unclaimed.len() - listed.len();
    let tail = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    Some(format!(
        "files no pattern matched: {}{tail}",
        listed.join(", ")
    ))
}

/// The unclaimed file closest to `pattern`, if one is close enough to be a slip.
fn closest<'a>(pattern: &Pattern, unclaimed: &[&'a str]) -> Option<&'a str> {
    let wanted = pattern.as_str();
    let folded = wanted.to_lowercase();
    let limit = 2.max(wanted.chars().count() / 4);
    unclaimed
        .iter()
        .filter(|file| !pattern.matches(file))
        .filter_map(|file| {
            let blind = glob_distance(&folded, &file.to_lowercase());
            let moved = same_name(&folded, &file.to_lowercase());
            (blind <= limit || moved).then(|| ((blind, glob_distance(wanted, file)), *file))
        })
        .min()
        .map(|(_, file)| file)
}

/// Whether the last parts match (the file is in another directory).
fn same_name(pattern: &str, file: &str) -> bool {
    let name = |path: &str| path.rsplit('/').next().unwrap_or_default().to_owned();
    Pattern::parse(&name(pattern)).is_ok_and(|last| last.matches(&name(file)))
}

/// The fewest single-character edits that turn `text` into a path `pattern` matches,
/// where each `*` may stand for any run of characters other than `/` at no cost.
fn glob_distance(pattern: &str, text: &str) -> usize {
    let text: Vec<char> = text.chars().collect();
    // row[j]: the cost of matching the pattern so far against text[..j]
    let mut row: Vec<usize> = (0..=text.len()).collect();
    for p in pattern.chars() {
        let mut next = vec![0; text.len() + 1];
        if p == '*' {
            next[0] = row[0];
            for j in 1..=text.len() {
                let absorb = if text[j - 1] == '/' {
                    usize::MAX
                } else {
                    next[j - 1]
                };
                next[j] = row[j].min(absorb);
            }
        } else {
            next[0] = row[0] + 1;
            for j in 1..=text.len() {
                let substitute = row[j - 1] + usize::from(p != text[j - 1]);
                next[j] = substitute.min(row[j] + 1).min(next[j - 1] + 1);
            }
        }
        row = next;
    }
    row[text.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(patterns: &[&str], files: &[&str]) -> Option<String> {
        let patterns: Vec<Pattern> = patterns
            .iter()
            .map(|p| Pattern::parse(p).unwrap())
            .collect();
        let refs: Vec<&Pattern> = patterns.iter().collect();
        did_you_mean(&refs, files)
    }

    #[test]
    fn a_slip_of_case_or_letters_is_suggested() {
        assert_eq!(
            hint(
                &["output/table.csv"],
                &["output/other.csv", "output/Table.csv"]
            )
            .as_deref(),
            Some("did you mean `output/Table.csv` for `output/table.csv`?")
        );
        assert_eq!(
            hint(&["output/tabel.csv"], &["output/table.csv"]).as_deref(),
            Some("did you mean `output/table.csv` for `output/tabel.csv`?")
        );
        assert_eq!(
            hint(&["outputs/*.csv", "b.txt"], &["output/a.csv", "B.txt"]).as_deref(),
            Some("did you mean `output/a.csv` for `outputs/*.csv`, `B.txt` for `b.txt`?")
        );
    }

    #[test]
    fn a_file_in_another_directory_is_suggested() {
        assert_eq!(
            hint(&["table.csv"], &["output/table.csv"]).as_deref(),
            Some("did you mean `output/table.csv` for `table.csv`?")
        );
        assert_eq!(
            hint(&["results/*.png"], &["output/plots/a.png"]).as_deref(),
            Some("did you mean `output/plots/a.png` for `results/*.png`?")
        );
    }

    #[test]
    fn nothing_close_lists_the_files() {
        assert_eq!(
            hint(&["output/table.csv"], &["a.log", "b.log"]).as_deref(),
            Some("files no pattern matched: a.log, b.log")
        );
        let many = [
            "1.txt", "2.txt", "3.txt", "4.txt", "5.txt", "6.txt", "7.txt",
        ];
        assert_eq!(
            hint(&["output/model.json"], &many).as_deref(),
            Some("files no pattern matched: 1.txt, 2.txt, 3.txt, 4.txt, 5.txt and 2 more")
        );
        assert_eq!(hint(&["output/table.csv"], &[]), None);
        assert_eq!(hint(&[], &["a.log"]), None);
    }

    #[test]
    fn distance_lets_a_star_match_within_a_part() {
        assert_eq!(glob_distance("kitten", "sitting"), 3);
        assert_eq!(glob_distance("out/*.csv", "out/anything.csv"), 0);
        assert_eq!(glob_distance("out/*.csv", "out/a/b.csv"), 2);
        assert_eq!(glob_distance("données", "donnees"), 1);
    }
}

//! The release rules for `moderately_sensitive` files (OpenSAFELY's "level 4"
//! checks), and the note that says why a file breaks them.

use serde::{Deserialize, Serialize};

use crate::csv::{CsvFindings, MAX_HEADER_FIELD};
use crate::error::RulesError;
use crate::pattern::extension;

const MIB: u64 = 1 << 20;

/// What a `moderately_sensitive` file must keep to to be released; a file that breaks a
/// rule is withheld. As a config table every key is optional and defaults to
/// OpenSAFELY's value; sizes are plain bytes:
///
/// ```toml
/// [release]
/// max_bytes = 16777216
/// extensions = [".csv", ".png"]
/// max_csv_rows = 5000
/// forbidden_columns = ["patient_id"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReleaseRules {
    /// The largest file, in bytes (16 MiB).
    pub max_bytes: u64,
    /// The file types allowed, each one extension with its leading dot (`.csv`),
    /// compared with the file's last extension regardless of case.
    pub extensions: Vec<String>,
    /// The most data rows a `.csv` file may have (5,000). As OpenSAFELY counts with
    /// Python's `csv.DictReader`: the header is not a row, blank lines are not rows, a
    /// quoted field's line breaks do not start one, and a file is withheld only above
    /// the limit.
    pub max_csv_rows: u64,
    /// Column names a `.csv` file's header may not have (`patient_id`), compared
    /// trimmed and regardless of case, after a byte order mark.
    pub forbidden_columns: Vec<String>,
}

impl Default for ReleaseRules {
    fn default() -> Self {
        let extensions = [
            ".csv", ".jpg", ".jpeg", ".png", ".svg", ".svgz", ".html", ".txt", ".log", ".json",
            ".md",
        ];
        ReleaseRules {
            max_bytes: 16 * MIB,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
            max_csv_rows: 5_000,
            forbidden_columns: vec!["patient_id".to_owned()],
        }
    }
}

impl ReleaseRules {
    /// Checks that the rules can be kept: limits above zero, extensions written as
    /// `.ext` (one dot, no `/` or `\`, no spaces), column names not blank. Entries are
    /// refused rather than mended, so a typo in a config file is seen at start-up.
    ///
    /// # Errors
    /// The first rule that makes no sense, naming the setting and the fix.
    pub fn validate(&self) -> Result<(), RulesError> {
        if self.max_bytes == 0 {
            return Err(RulesError::ZeroMaxBytes);
        }
        if self.max_csv_rows == 0 {
            return Err(RulesError::ZeroMaxRows);
        }
        for entry in &self.extensions {
            let name = entry.strip_prefix('.').unwrap_or_default();
            let bad = name.is_empty()
                || name.contains(['.', '/', '\\'])
                || name.chars().any(|c| c.is_whitespace() || c.is_control());
            if bad {
                return Err(RulesError::BadExtension {
                    entry: entry.clone(),
                });
            }
        }
        if self.forbidden_columns.iter().any(|c| c.trim().is_empty()) {
            return Err(RulesError::EmptyColumn);
        }
        Ok(())
    }

    /// Why the file at `path`, `size` bytes long, may not be released: every rule it
    /// breaks, in the order size, type, columns, rows, joined with "; ". `None` when
    /// it keeps them all.
    pub(crate) fn withheld(
        &self,
        path: &str,
        size: u64,
        csv: Option<&CsvFindings>,
    ) -> Option<String> {
        let mut notes = Vec::new();
        if size > self.max_bytes {
            notes.push(format!(
                "is {} ({} bytes), over the {} limit for moderately_sensitive files",
                human_size(size),
                thousands(size),
                human_size(self.max_bytes)
            ));
        }
        if let Some(note) = self.type_note(path) {
            notes.push(note);
        }
        if let Some(csv) = csv {
            for column in &csv.forbidden {
                notes.push(format!(
                    "has a column named {column}, which may not be released"
                ));
            }
            if csv.unchecked {
                notes.push(format!(
                    "has a header field over {}, too long to check for forbidden columns",
                    human_size(MAX_HEADER_FIELD as u64)
                ));
            }
            if csv.rows > self.max_csv_rows {
                notes.push(format!(
                    "has {} rows, over the {} allowed for moderately_sensitive files",
                    thousands(csv.rows),
                    thousands(self.max_csv_rows)
                ));
            }
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }

    fn type_note(&self, path: &str) -> Option<String> {
        let name = path.rsplit('/').next().unwrap_or_default();
        let found = extension(name);
        if found.is_some_and(|found| {
            self.extensions
                .iter()
                .any(|e| e.eq_ignore_ascii_case(found))
        }) {
            return None;
        }
        let allowed = self.extensions.join(", ");
        Some(match found {
            Some(found) => {
                format!("has type {found}, which may not be released (allowed: {allowed})")
            }
            None => format!(
                "has no file extension, so its type may not be released (allowed: {allowed})"
            ),
        })
    }
}

/// Whether `path` names a CSV file (`.csv`, any case).
pub(crate) fn is_csv(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or_default();
    extension(name).is_some_and(|e| e.eq_ignore_ascii_case(".csv"))
}

/// `812 bytes`, `3.5 KiB`, `17.2 MiB`, `16 MiB`, `2.1 GiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (MIB, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            // one decimal of a u64 as f64 is exact enough: the notes give the bytes too
            let amount = format!("{:.1}", bytes as f64 / unit as f64);
            let amount = amount.strip_suffix(".0").unwrap_or(&amount);
            return format!("{amount} {name}");
        }
    }
    format!("{bytes} bytes")
}

/// `5,001`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_opensafely_s_and_valid() {
        let rules = ReleaseRules::default();
        assert_eq!(rules.max_bytes, 16 * 1024 * 1024);
        assert_eq!(rules.max_csv_rows, 5000);
        assert_eq!(rules.forbidden_columns, ["patient_id"]);
        assert_eq!(rules.extensions.len(), 11);
        rules.validate().unwrap();
    }

    #[test]
    fn a_config_table_sets_some_keys_and_refuses_unknown_ones() {
        let rules: ReleaseRules = toml::from_str("max_csv_rows = 100\n").unwrap();
        assert_eq!(rules.max_csv_rows, 100);
        assert_eq!(rules.max_bytes, ReleaseRules::default().max_bytes);
        let err = toml::from_str::<ReleaseRules>("max_rows = 100\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_rows`"),
            "{err}"
        );
    }

    #[test]
    fn nonsense_rules_are_refused_with_the_fix() {
        let with = |change: fn(&mut ReleaseRules)| {
            let mut rules = ReleaseRules::default();
            change(&mut rules);
            rules.validate().unwrap_err().to_string()
        };
        assert!(with(|r| r.max_bytes = 0).contains("16777216"));
        assert!(with(|r| r.max_csv_rows = 0).contains("like 5000"));
        for entry in ["csv", "", ".", ".tar.gz", "./x", ". csv"] {
            let mut rules = ReleaseRules::default();
            rules.extensions.push(entry.to_owned());
            let err = rules.validate().unwrap_err().to_string();
            assert!(
                err.contains(&format!("{entry:?}")) && err.contains("\".csv\""),
                "{err}"
            );
        }
        assert!(with(|r| r.forbidden_columns.push(" ".into())).contains("empty name"));
    }

    #[test]
    fn sizes_and_counts_read_as_people_write_them() {
        assert_eq!(human_size(812), "812 bytes");
        assert_eq!(human_size(3584), "3.5 KiB");
        assert_eq!(human_size(16 * MIB), "16 MiB");
        assert_eq!(human_size(18_035_507), "17.2 MiB");
        assert_eq!(human_size(3 << 30), "3 GiB");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(5001), "5,001");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn types_compare_regardless_of_case() {
        let rules = ReleaseRules::default();
        assert_eq!(rules.type_note("output/plot.PNG"), None);
        assert!(rules
            .type_note("output/x.csv.gz")
            .unwrap()
            .starts_with("has type .gz,"));
        assert!(rules
            .type_note("output/.csv")
            .unwrap()
            .starts_with("has no file extension"));
        assert!(is_csv("a/B.CSV") && !is_csv("a/b.csv.gz") && !is_csv("csv"));
    }
}

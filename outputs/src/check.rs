//! One file checked as it streams past, in bounded memory: its size, its SHA-256, its
//! CSV counts and, for a file to release, why it is withheld.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::csv::CsvScan;
use crate::release::{is_csv, ReleaseRules};

/// What one file is, once all of it has been fed to a [`FileCheck`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// Its length in bytes.
    pub size: u64,
    /// Its SHA-256, lower-case hex.
    pub sha256: String,
    /// Its rows and columns, for a `.csv` file (any case).
    pub csv: Option<CsvStats>,
    /// Why it may not be released, when checked against [`ReleaseRules`] and it breaks
    /// one: "is 17.2 MiB (18,035,507 bytes), over the 16 MiB limit for
    /// moderately_sensitive files". Notes for several rules are joined with "; ".
    pub withheld: Option<String>,
}

/// The shape of a CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvStats {
    /// Data rows: records after the header, blank lines left out.
    pub rows: u64,
    /// Fields of the header.
    pub columns: u64,
}

/// A file being read, fed chunk by chunk as it arrives (an upload, a copy out of a
/// container). Memory stays bounded whatever the file's size: nothing of it is kept
/// but the hash state, the CSV reader's state and one header field.
///
/// ```
/// # use drover_outputs::ReleaseRules;
/// let mut check = ReleaseRules::default().start("output/table.csv");
/// check.feed(b"patient_id,n\n");
/// check.feed(b"1,2\n");
/// let report = check.finish();
/// assert_eq!(report.csv.map(|c| c.rows), Some(1));
/// assert_eq!(
///     report.withheld.as_deref(),
///     Some("has a column named patient_id, which may not be released")
/// );
/// ```
#[derive(Debug)]
pub struct FileCheck {
    path: String,
    rules: Option<ReleaseRules>,
    size: u64,
    hasher: Sha256,
    csv: Option<CsvScan>,
}

impl ReleaseRules {
    /// Starts checking the file at `path` (relative to the workspace) against these
    /// rules, as for a `moderately_sensitive` output.
    pub fn start(&self, path: &str) -> FileCheck {
        FileCheck::new(path, Some(self.clone()))
    }

    /// Starts checking an output declared at `level` (a project file's key): a
    /// `moderately_sensitive` file against these rules, any other plainly. The API and
    /// `drover local-run` both choose with this.
    pub fn check_for(&self, level: &str, path: &str) -> FileCheck {
        if level == "moderately_sensitive" {
            self.start(path)
        } else {
            FileCheck::plain(path)
        }
    }
}

impl FileCheck {
    /// Starts reading the file at `path` without release rules (a `highly_sensitive`
    /// output): the report has its size, hash and CSV counts, and is never withheld.
    pub fn plain(path: &str) -> FileCheck {
        FileCheck::new(path, None)
    }

    fn new(path: &str, rules: Option<ReleaseRules>) -> FileCheck {
        let forbidden = rules
            .as_ref()
            .map(|r| r.forbidden_columns.as_slice())
            .unwrap_or_default();
        FileCheck {
            path: path.to_owned(),
            csv: is_csv(path).then(|| CsvScan::new(forbidden)),
            rules,
            size: 0,
            hasher: Sha256::new(),
        }
    }

    /// The path the check was started for.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads the next bytes of the file; chunks may be of any size, empty included.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.size = self.size.saturating_add(chunk.len() as u64);
        self.hasher.update(chunk);
        if let Some(csv) = &mut self.csv {
            csv.feed(chunk);
        }
    }

    /// Ends the file and reports on it.
    pub fn finish(self) -> FileReport {
        let findings = self.csv.map(CsvScan::finish);
        let withheld = self
            .rules
            .as_ref()
            .and_then(|rules| rules.withheld(&self.path, self.size, findings.as_ref()));
        FileReport {
            size: self.size,
            sha256: hex::encode(self.hasher.finalize()),
            csv: findings.map(|f| CsvStats {
                rows: f.rows,
                columns: f.columns,
            }),
            withheld,
        }
    }
}

/// Feeds what is written, so `std::io::copy(&mut file, &mut check)` reads a file
/// through; writing never fails.
impl std::io::Write for FileCheck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, text: &[u8]) -> FileReport {
        let mut check = ReleaseRules::default().start(path);
        check.feed(text);
        check.finish()
    }

    fn rows(n: usize) -> Vec<u8> {
        let mut text = b"group,count\n".to_vec();
        for i in 0..n {
            text.extend_from_slice(format!("g{i},{i}\n").as_bytes());
        }
        text
    }

    #[test]
    fn each_rule_withholds_its_file_with_its_note() {
        let big = vec![b'x'; 18_035_507];
        let cases: &[(&str, &[u8], &str)] = &[
            ("output/big.txt", &big, "is 17.2 MiB (18,035,507 bytes), over the 16 MiB limit for moderately_sensitive files"),
            ("output/table.xlsx", b"PK", "has type .xlsx, which may not be released (allowed: .csv, .jpg, .jpeg, .png, .svg, .svgz, .html, .txt, .log, .json, .md)"),
            ("output/README", b"hi", "has no file extension, so its type may not be released (allowed: .csv, .jpg, .jpeg, .png, .svg, .svgz, .html, .txt, .log, .json, .md)"),
            ("output/rows.csv", &rows(5_001), "has 5,001 rows, over the 5,000 allowed for moderately_sensitive files"),
            ("output/ids.csv", b"\xef\xbb\xbf Patient_ID ,n\n1,2\n", "has a column named patient_id, which may not be released"),
            ("output/both.CSV", b"patient_id\n1\n2\n", "has a column named patient_id, which may not be released"),
        ];
        for (path, text, note) in cases {
            assert_eq!(check(path, text).withheld.as_deref(), Some(*note), "{path}");
        }
        let mut strict = ReleaseRules {
            max_csv_rows: 1,
            ..ReleaseRules::default()
        };
        strict.extensions.retain(|e| e != ".csv");
        let mut both = strict.start("output/t.csv");
        both.feed(b"patient_id\n1\n2\n");
        let note = both.finish().withheld.unwrap();
        assert!(
            note.starts_with("has type .csv, which may not be released"),
            "{note}"
        );
        assert!(note.ends_with("; has a column named patient_id, which may not be released; has 2 rows, over the 1 allowed for moderately_sensitive files"), "{note}");
    }

    #[test]
    fn files_within_the_rules_are_released() {
        assert_eq!(check("output/rows.csv", &rows(5_000)).withheld, None);
        assert_eq!(check("output/plot.PNG", b"\x89PNG").withheld, None);
        assert_eq!(check("output/ids.csv", b"patient_ids\n1\n").withheld, None);
        let exactly = vec![b'x'; 16 << 20];
        assert_eq!(check("output/big.txt", &exactly).withheld, None);
    }

    #[test]
    fn a_plain_file_gets_its_counts_and_is_never_withheld() {
        let mut plain = FileCheck::plain("output/patients.csv");
        plain.feed(b"patient_id,age\n1,30\n2,40\n");
        let report = plain.finish();
        assert_eq!(report.withheld, None);
        assert_eq!(
            report.csv,
            Some(CsvStats {
                rows: 2,
                columns: 2
            })
        );
        assert_eq!(report.size, 25);
        let report = FileCheck::plain("output/data.arrow").finish();
        assert_eq!((report.csv, report.withheld), (None, None));
    }

    #[test]
    fn sha256_is_the_known_digest() {
        let empty = FileCheck::plain("a.txt").finish();
        assert_eq!(
            empty.sha256,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            check("a.txt", b"abc").sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn one_byte_chunks_give_the_same_report_as_one_chunk() {
        let mut text = b"\xef\xbb\xbfpatient_id,\"note, with comma\"\r\n".to_vec();
        text.extend_from_slice(b"1,\"two\nlines\"\n\n2,\"say \"\"hi\"\"\"\n3,last");
        let whole = check("output/t.csv", &text);
        let mut bytewise = ReleaseRules::default().start("output/t.csv");
        for byte in &text {
            bytewise.feed(std::slice::from_ref(byte));
            bytewise.feed(&[]);
        }
        assert_eq!(bytewise.size(), text.len() as u64);
        assert_eq!(bytewise.finish(), whole);
        assert_eq!(
            whole.csv,
            Some(CsvStats {
                rows: 3,
                columns: 2
            })
        );
        assert!(whole.withheld.is_some());
    }

    #[test]
    fn a_quoted_line_break_is_not_a_row() {
        let report = check(
            "output/notes.csv",
            b"id,note\n1,\"a\nb\nc\"\n2,\"d\r\ne\"\n",
        );
        assert_eq!(
            report.csv,
            Some(CsvStats {
                rows: 2,
                columns: 2
            })
        );
        assert_eq!(report.withheld, None);
    }

    #[test]
    fn a_file_reads_through_io_copy() {
        let mut check = FileCheck::plain("output/t.csv");
        std::io::copy(&mut &b"a,b\n1,2\n"[..], &mut check).unwrap();
        assert_eq!(check.path(), "output/t.csv");
        assert_eq!(check.finish().csv.map(|c| c.rows), Some(1));
    }
}

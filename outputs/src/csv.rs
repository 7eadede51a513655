//! One CSV file counted as it streams past: its rows, its columns and whether its
//! header names a forbidden column, in bounded memory.

use csv_core::{ReadFieldResult, Reader};

const BOM: &[u8] = b"\xef\xbb\xbf";

/// The longest header field kept to compare with the forbidden names. A longer one is
/// not compared and makes the file's columns unchecked.
pub(crate) const MAX_HEADER_FIELD: usize = 1 << 20;

/// What a CSV file showed once it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CsvFindings {
    /// Records after the header.
    pub(crate) rows: u64,
    /// Fields of the header.
    pub(crate) columns: u64,
    /// The forbidden names the header has, as the rules write them, in rule order.
    pub(crate) forbidden: Vec<String>,
    /// A header field was over [`MAX_HEADER_FIELD`] and could not be compared.
    pub(crate) unchecked: bool,
}

/// The incremental counter. Rows and columns follow Python's `csv.DictReader`, which
/// OpenSAFELY counts with: the first record is the header, every later record is a row,
/// blank lines are no records, and a final line break ends the last row rather than
/// starting one. Quoted fields may hold commas, quotes and line breaks.
pub(crate) struct CsvScan {
    reader: Reader,
    /// The first bytes, held until they show whether the file starts with a BOM.
    start: Vec<u8>,
    started: bool,
    in_header: bool,
    field: Vec<u8>,
    overlong: bool,
    rows: u64,
    columns: u64,
    /// (as the rules write it, trimmed and lower-cased for comparing).
    names: Vec<(String, String)>,
    found: Vec<bool>,
    unchecked: bool,
}

impl std::fmt::Debug for CsvScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvScan")
            .field("rows", &self.rows)
            .field("columns", &self.columns)
            .field("in_header", &self.in_header)
            .finish_non_exhaustive()
    }
}

impl CsvScan {
    /// A scan that looks for `forbidden` column names (trimmed, case-blind).
    pub(crate) fn new(forbidden: &[String]) -> CsvScan {
        let names: Vec<(String, String)> = forbidden
            .iter()
            .map(|name| (name.clone(), fold(name)))
            .collect();
        CsvScan {
            reader: Reader::new(),
            start: Vec::with_capacity(BOM.len()),
            started: false,
            in_header: true,
            field: Vec::new(),
            overlong: false,
            rows: 0,
            columns: 0,
            found: vec![false; names.len()],
            names,
            unchecked: false,
        }
    }

    /// Reads the next bytes of the file.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        if self.started {
            self.parse(chunk, false);
            return;
        }
        let take = (BOM.len() - self.start.len()).min(chunk.len());
        self.start.extend_from_slice(&chunk[..take]);
        if self.start.len() < BOM.len() && BOM.starts_with(&self.start) {
            return; // still maybe a BOM
        }
        self.started = true;
        let start = std::mem::take(&mut self.start);
        if start != BOM {
            self.parse(&start, false);
        }
        self.parse(&chunk[take..], false);
    }

    /// Ends the file and says what it showed.
    pub(crate) fn finish(mut self) -> CsvFindings {
        if !self.started {
            self.started = true;
            let start = std::mem::take(&mut self.start);
            self.parse(&start, false);
        }
        self.parse(&[], true);
        let forbidden = self
            .names
            .iter()
            .zip(&self.found)
            .filter(|(_, found)| **found)
            .map(|((name, _), _)| name.clone())
            .collect();
        CsvFindings {
            rows: self.rows,
            columns: self.columns,
            forbidden,
            unchecked: self.unchecked,
        }
    }

    /// Runs the reader over `input`; `at_end` (with an empty `input`) flushes the last
    /// record.
    fn parse(&mut self, mut input: &[u8], at_end: bool) {
        let mut scratch = [0u8; 4096];
        loop {
            // an empty input means the end of the file to the reader: only at the end
            if input.is_empty() && !at_end {
                return;
            }
            let (result, read, written) = self.reader.read_field(input, &mut scratch);
            input = &input[read..];
            if self.in_header {
                self.keep(&scratch[..written]);
            }
            match result {
                ReadFieldResult::InputEmpty | ReadFieldResult::End => return,
                ReadFieldResult::OutputFull => {}
                ReadFieldResult::Field { record_end } => self.field_end(record_end),
            }
        }
    }

    /// Keeps a piece of a header field, up to [`MAX_HEADER_FIELD`].
    fn keep(&mut self, piece: &[u8]) {
        if self.overlong || piece.is_empty() {
            return;
        }
        if self.field.len() + piece.len() > MAX_HEADER_FIELD {
            self.overlong = true;
            self.field = Vec::new();
        } else {
            self.field.extend_from_slice(piece);
        }
    }

    fn field_end(&mut self, record_end: bool) {
        if !self.in_header {
            if record_end {
                self.rows += 1;
            }
            return;
        }
        self.columns += 1;
        if self.overlong {
            self.unchecked |= !self.names.is_empty();
        } else {
            let name = fold(&String::from_utf8_lossy(&self.field));
            for (found, (_, forbidden)) in self.found.iter_mut().zip(&self.names) {
                *found |= name == *forbidden;
            }
        }
        self.field.clear();
        self.overlong = false;
        if record_end {
            self.in_header = false;
            self.field = Vec::new(); // give the header's buffer back
        }
    }
}

/// A column name as compared: trimmed and lower-cased.
fn fold(name: &str) -> String {
    name.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &[u8], chunk: usize) -> CsvFindings {
        let mut scan = CsvScan::new(&["patient_id".to_owned(), "NHS Number".to_owned()]);
        for piece in text.chunks(chunk.max(1)) {
            scan.feed(piece);
        }
        scan.finish()
    }

    fn counts(text: &str) -> (u64, u64) {
        let found = scan(text.as_bytes(), text.len());
        (found.rows, found.columns)
    }

    #[test]
    fn rows_and_columns_are_counted_as_dictreader_does() {
        assert_eq!(counts(""), (0, 0));
        assert_eq!(counts("a,b,c"), (0, 3));
        assert_eq!(counts("a,b,c\n"), (0, 3));
        assert_eq!(counts("a,b\n1,2\n3,4\n"), (2, 2));
        assert_eq!(counts("a,b\n1,2\n3,4"), (2, 2));
        assert_eq!(counts("a,b\r\n1,2\r\n3,4\r\n"), (2, 2));
        assert_eq!(counts("a,b\n\n1,2\n\n\n3,4\n\n"), (2, 2));
        assert_eq!(counts("a,b\n,\n"), (1, 2));
        assert_eq!(counts("a,\"b,c\"\n1,2\n"), (1, 2));
    }

    #[test]
    fn quoted_line_breaks_stay_in_their_field() {
        let text = "id,note\n1,\"one\nline, two\"\n2,\"say \"\"hi\"\"\r\n\"\n";
        assert_eq!(counts(text), (2, 2));
        for chunk in 1..8 {
            assert_eq!(scan(text.as_bytes(), chunk).rows, 2, "chunk {chunk}");
        }
    }

    #[test]
    fn forbidden_columns_are_found_trimmed_and_case_blind() {
        let found = scan(b"\xef\xbb\xbfpatient_id,n\n1,2\n", 1);
        assert_eq!(found.forbidden, ["patient_id"]);
        assert_eq!((found.rows, found.columns), (1, 2));
        let found = scan(b"\xef\xbb\xbf\"Patient_ID\",x", 2);
        assert_eq!(found.forbidden, ["patient_id"]);
        let found = scan(b"x, nhs number ,  PATIENT_ID \n", 3);
        assert_eq!(found.forbidden, ["patient_id", "NHS Number"]);
        let found = scan(b"x,y\npatient_id,1\n", 1);
        assert!(found.forbidden.is_empty(), "a data row is not a header");
        assert!(scan(b"patient_ids,x\n", 4).forbidden.is_empty());
    }

    #[test]
    fn a_partial_bom_is_data() {
        let found = scan(b"\xef\xbb", 1);
        assert_eq!((found.rows, found.columns), (0, 1));
        let found = scan(b"\xefpatient_id\n", 1);
        assert!(found.forbidden.is_empty());
    }

    #[test]
    fn an_overlong_header_field_leaves_the_columns_unchecked() {
        let mut text = vec![b'x'; MAX_HEADER_FIELD + 1];
        text.extend_from_slice(b",patient_id\n1,2\n");
        let found = scan(&text, 10_000);
        assert!(found.unchecked);
        assert_eq!(found.forbidden, ["patient_id"]);
        assert_eq!((found.rows, found.columns), (1, 2));
    }
}

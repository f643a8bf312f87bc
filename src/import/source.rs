//! Reading import files row by row, in constant memory: CSV (strict, one
//! record per line, columns matched by header name) and JSON Lines.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

use super::csv_line;
use super::{ImportError, RowError};

/// File formats, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    JsonLines,
}

impl FileFormat {
    /// `.csv`, `.jsonl` / `.ndjson`.
    pub fn from_path(path: &Path) -> Result<Self, ImportError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(FileFormat::Csv),
            Some("jsonl") | Some("ndjson") => Ok(FileFormat::JsonLines),
            _ => Err(ImportError::UnknownFormat(path.to_path_buf())),
        }
    }
}

/// The columns a kind of file has.
#[derive(Debug)]
pub struct Schema {
    /// What the rows are, for messages ("customers", "orders").
    pub kind: &'static str,
    /// Every known column, in canonical order.
    pub columns: &'static [&'static str],
    /// Columns that must be present in the header (CSV) and non-empty in every row.
    pub required: &'static [&'static str],
}

impl Schema {
    /// Index of a known column.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| *c == name)
    }

    /// The known column closest to an unknown name, if it looks like a typo.
    fn suggestion(&self, name: &str) -> Option<&'static str> {
        self.columns
            .iter()
            .map(|c| (strsim::damerau_levenshtein(c, name), *c))
            .filter(|(d, c)| *d <= 2 && *d < c.len())
            .min()
            .map(|(_, c)| c)
    }
}

/// One row: the value of every known column (`None` when absent or empty).
/// The values live in one buffer that a reader reuses from row to row, so
/// reading a row allocates nothing once the buffer has grown.
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    pub line: u64,
    text: String,
    spans: Vec<Option<Range<usize>>>,
}

impl RawRow {
    /// An empty row of `columns` columns.
    pub fn new(line: u64, columns: usize) -> Self {
        let mut row = RawRow::default();
        row.reset(line, columns);
        row
    }

    /// Empty every column, keeping the buffers.
    fn reset(&mut self, line: u64, columns: usize) {
        self.line = line;
        self.text.clear();
        self.spans.clear();
        self.spans.resize(columns, None);
    }

    /// Set column `idx` to `value` trimmed; empty means absent.
    pub fn set(&mut self, idx: usize, value: &str) {
        let value = value.trim();
        if value.is_empty() {
            self.spans[idx] = None;
            return;
        }
        let start = self.text.len();
        self.text.push_str(value);
        self.spans[idx] = Some(start..self.text.len());
    }

    /// The value of column `idx`.
    pub fn get(&self, idx: usize) -> Option<&str> {
        let span = self.spans.get(idx)?.clone()?;
        self.text.get(span)
    }
}

/// A row source over one file.
pub struct RowSource {
    schema: &'static Schema,
    format: FileFormat,
    reader: BufReader<File>,
    line_no: u64,
    /// The current line, reused.
    line: String,
    /// The current row, reused.
    row: RawRow,
    /// Unescaping space for quoted CSV fields.
    scratch: String,
    /// CSV: for each header position, the known column it maps to.
    header_map: Vec<Option<usize>>,
    /// CSV: for each known column, its 1-based position in the file.
    column_numbers: Arc<Vec<Option<usize>>>,
    /// Columns or keys that were ignored because they are not ours.
    pub ignored_columns: Vec<String>,
    bytes_read: Arc<AtomicU64>,
}

impl RowSource {
    /// Open `path` and, for CSV, read and check its header.
    pub fn open(path: &Path, schema: &'static Schema) -> Result<Self, ImportError> {
        let format = FileFormat::from_path(path)?;
        let file = File::open(path).map_err(|source| ImportError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let mut source = RowSource {
            schema,
            format,
            reader: BufReader::with_capacity(1 << 20, file),
            line_no: 0,
            line: String::with_capacity(512),
            row: RawRow::new(0, schema.columns.len()),
            scratch: String::new(),
            header_map: Vec::new(),
            column_numbers: Arc::new(vec![None; schema.columns.len()]),
            ignored_columns: Vec::new(),
            bytes_read: Arc::new(AtomicU64::new(0)),
        };
        if format == FileFormat::Csv {
            source.read_header(path)?;
        }
        Ok(source)
    }

    /// Bytes consumed so far (for progress).
    pub fn progress(&self) -> Arc<AtomicU64> {
        self.bytes_read.clone()
    }

    /// 1-based CSV column of a known column, for error messages.
    pub fn column_numbers(&self) -> Arc<Vec<Option<usize>>> {
        self.column_numbers.clone()
    }

    /// Read the next physical line into `line`; return the range of its text
    /// without terminator (and without a byte-order mark on the first line);
    /// `None` at end of file.
    fn next_line(&mut self) -> Result<Option<Result<Range<usize>, RowError>>, ImportError> {
        let mut bytes = std::mem::take(&mut self.line).into_bytes();
        bytes.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut bytes)
            .map_err(ImportError::Read)?;
        if n == 0 {
            return Ok(None);
        }
        self.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
        self.line_no += 1;
        let mut end = bytes.len();
        while end > 0 && (bytes[end - 1] == b'\n' || bytes[end - 1] == b'\r') {
            end -= 1;
        }
        let start = if self.line_no == 1 && bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        match String::from_utf8(bytes) {
            Ok(text) => {
                self.line = text;
                Ok(Some(Ok(start.min(end)..end)))
            }
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                Ok(Some(Err(RowError {
                    line: self.line_no,
                    column: None,
                    field: None,
                    reason: format!(
                        "not UTF-8 text (invalid byte at position {}); the file may be GBK-encoded: save it as \"CSV UTF-8\"",
                        at.saturating_sub(start) + 1
                    ),
                })))
            }
        }
    }

    fn read_header(&mut self, path: &Path) -> Result<(), ImportError> {
        let header = loop {
            match self.next_line()? {
                None => {
                    return Err(ImportError::header(
                        path,
                        "the file is empty; the first line must name the columns",
                    ));
                }
                Some(Err(e)) => return Err(ImportError::header(path, e.reason)),
                Some(Ok(r)) if self.line[r.clone()].trim().is_empty() => continue,
                Some(Ok(r)) => break self.line[r].to_owned(),
            }
        };
        let mut names = Vec::new();
        csv_line::split_into(&header, &mut names)
            .map_err(|e| ImportError::header(path, e.to_string()))?;
        let mut numbers = vec![None; self.schema.columns.len()];
        for (pos, raw) in names.iter().enumerate() {
            let name = raw.trim().to_ascii_lowercase();
            match self.schema.index(&name) {
                Some(idx) if numbers[idx].is_some() => {
                    return Err(ImportError::header(
                        path,
                        format!("column {name:?} appears twice"),
                    ));
                }
                Some(idx) => {
                    numbers[idx] = Some(pos + 1);
                    self.header_map.push(Some(idx));
                }
                None => {
                    if let Some(s) = self.schema.suggestion(&name) {
                        return Err(ImportError::header(
                            path,
                            format!(
                                "unknown column {name:?} (column {}): did you mean {s:?}?",
                                pos + 1
                            ),
                        ));
                    }
                    self.ignored_columns.push(raw.trim().to_owned());
                    self.header_map.push(None);
                }
            }
        }
        for req in self.schema.required {
            if numbers[self.schema.index(req).unwrap_or(0)].is_none() {
                return Err(ImportError::header(
                    path,
                    format!(
                        "missing required column {req:?}; {} files have the columns {}",
                        self.schema.kind,
                        self.schema.columns.join(", ")
                    ),
                ));
            }
        }
        self.column_numbers = Arc::new(numbers);
        Ok(())
    }

    /// The next row, or a row error, or `None` at end of file. Blank lines are skipped.
    pub fn next_row(&mut self) -> Result<Option<Result<&RawRow, RowError>>, ImportError> {
        loop {
            let line_no = self.line_no + 1;
            let text = match self.next_line()? {
                None => return Ok(None),
                Some(Err(e)) => return Ok(Some(Err(e))),
                Some(Ok(r)) if self.line[r.clone()].trim().is_empty() => continue,
                Some(Ok(r)) => r,
            };
            let read = match self.format {
                FileFormat::Csv => self.csv_row(line_no, text),
                FileFormat::JsonLines => self.json_row(line_no, text),
            };
            return Ok(Some(read.map(|()| &self.row)));
        }
    }

    fn csv_row(&mut self, line: u64, text: Range<usize>) -> Result<(), RowError> {
        let row = &mut self.row;
        row.reset(line, self.schema.columns.len());
        let map = &self.header_map;
        let found = csv_line::split_each(&self.line[text], &mut self.scratch, |i, field| {
            if let Some(Some(idx)) = map.get(i) {
                row.set(*idx, field);
            }
        })
        .map_err(|e| {
            let column = match e {
                csv_line::CsvLineError::Unterminated { column }
                | csv_line::CsvLineError::TextAfterQuote { column }
                | csv_line::CsvLineError::StrayQuote { column } => column,
            };
            RowError {
                line,
                column: Some(column),
                field: None,
                reason: e.to_string(),
            }
        })?;
        if found != self.header_map.len() {
            return Err(RowError {
                line,
                column: None,
                field: None,
                reason: format!(
                    "wrong number of columns: expected {} (as in the header), found {}",
                    self.header_map.len(),
                    found
                ),
            });
        }
        Ok(())
    }

    fn json_row(&mut self, line: u64, text: Range<usize>) -> Result<(), RowError> {
        let value: Value = serde_json::from_str(&self.line[text]).map_err(|e| RowError {
            line,
            column: Some(e.column()),
            field: None,
            reason: format!("invalid JSON: {e}"),
        })?;
        self.row.reset(line, self.schema.columns.len());
        fill_json_row(self.schema, value, &mut self.row, &mut self.ignored_columns)
    }
}

/// One JSON object as a row of `schema` (a JSON Lines line, or an item of
/// a request to the HTTP API). Keys that are not ours are added to `ignored`
/// (the first 32); a key that looks like a typo of ours is an error.
pub fn json_object_row(
    schema: &Schema,
    line: u64,
    value: Value,
    ignored: &mut Vec<String>,
) -> Result<RawRow, RowError> {
    let mut row = RawRow::new(line, schema.columns.len());
    fill_json_row(schema, value, &mut row, ignored)?;
    Ok(row)
}

/// Fill `row` (already reset, its line set) from one JSON object.
fn fill_json_row(
    schema: &Schema,
    value: Value,
    row: &mut RawRow,
    ignored: &mut Vec<String>,
) -> Result<(), RowError> {
    let line = row.line;
    let err = |column: Option<usize>, field: Option<&'static str>, reason: String| RowError {
        line,
        column,
        field,
        reason,
    };
    let Value::Object(map) = value else {
        return Err(err(None, None, "expected a JSON object".into()));
    };
    for (key, v) in map {
        let name = key.to_ascii_lowercase();
        let Some(idx) = schema.index(&name) else {
            if let Some(s) = schema.suggestion(&name) {
                return Err(err(
                    None,
                    None,
                    format!("unknown field {key:?}: did you mean {s:?}?"),
                ));
            }
            if !ignored.contains(&key) && ignored.len() < 32 {
                ignored.push(key);
            }
            continue;
        };
        let field = schema.columns[idx];
        match v {
            Value::Null => row.set(idx, ""),
            Value::String(s) => row.set(idx, &s),
            Value::Number(n) => row.set(idx, &n.to_string()),
            Value::Bool(b) => row.set(idx, if b { "true" } else { "false" }),
            Value::Array(items) => {
                let mut parts = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => parts.push(s),
                        other => {
                            return Err(err(
                                None,
                                Some(field),
                                format!("expected a list of strings, found an element {other}"),
                            ));
                        }
                    }
                }
                row.set(idx, &parts.join(";"));
            }
            Value::Object(_) => {
                return Err(err(
                    None,
                    Some(field),
                    "expected a string, number or boolean, found an object".into(),
                ));
            }
        }
    }
    Ok(())
}

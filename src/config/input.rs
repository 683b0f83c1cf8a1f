//! From the file's bytes to TOML, with every failure placed: a file too large is refused
//! before it is read; bytes that are not UTF-8 are named by their offset, line and column
//! (not blamed on the path or its permissions); a syntax error names its line, column and the
//! character found there, and says something even where the parser's message is empty; a
//! number too large for any TOML integer is reported as the field it was written for, with
//! that field's range, not as a syntax error.

use std::io::Read;
use std::path::Path;

use super::limits::{self, MAX_FILE_BYTES};
use super::locate::{column_of, line_of, Source};
use super::ConfigError;

/// An error about the file as a whole or at a line, with no field path.
fn at(file: &str, line: Option<u32>, message: String, fix: &str) -> ConfigError {
    ConfigError {
        file: file.to_string(),
        line,
        path: String::new(),
        message,
        fix: fix.to_string(),
    }
}

/// The error for a file of `len` bytes, past [`MAX_FILE_BYTES`].
pub(crate) fn too_large(file: &str, len: u64) -> ConfigError {
    at(
        file,
        None,
        format!("the file is {len} bytes; a config may have at most {MAX_FILE_BYTES} (1 MiB)"),
        "a cluster at every count limit fits in far less: look for a section repeated by a \
         script",
    )
}

/// The file's bytes; never more than [`MAX_FILE_BYTES`] + 1 are read.
pub(crate) fn read(path: &Path, file: &str) -> Result<Vec<u8>, ConfigError> {
    let cannot = |e: std::io::Error| {
        at(
            file,
            None,
            format!("cannot read the file: {e}"),
            "check the path and its permissions",
        )
    };
    let f = std::fs::File::open(path).map_err(cannot)?;
    if let Ok(meta) = f.metadata() {
        if meta.is_file() && meta.len() > MAX_FILE_BYTES as u64 {
            return Err(too_large(file, meta.len()));
        }
    }
    let mut bytes = Vec::new();
    f.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    Ok(bytes)
}

/// The bytes as text, or an error naming the first byte that is not UTF-8.
pub(crate) fn decode<'b>(bytes: &'b [u8], file: &str) -> Result<&'b str, ConfigError> {
    let e = match std::str::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(e) => e,
    };
    let offset = e.valid_up_to();
    // The prefix is valid: its lines and characters place the bad byte.
    let before = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
    let (line, column) = (line_of(before, offset), column_of(before, offset));
    let byte = bytes[offset];
    let what = match e.error_len() {
        None => format!("the file ends inside a character (byte 0x{byte:02x} starts one)"),
        Some(_) if (0x80..0xc0).contains(&byte) => {
            format!("byte 0x{byte:02x} continues a character that never started")
        }
        Some(_) => format!("byte 0x{byte:02x} does not start a valid UTF-8 character"),
    };
    Err(at(
        file,
        Some(line),
        format!("invalid UTF-8 at byte offset {offset} (line {line}, column {column}): {what}"),
        "a config is UTF-8 text: save it as UTF-8 (an editor set to Latin-1 or a binary copy \
         writes such bytes), or remove the byte",
    ))
}

/// How a character found at a syntax error reads in a message.
fn describe(found: Option<char>) -> String {
    match found {
        None => "end of file".to_string(),
        Some('\n') | Some('\r') => "end of line".to_string(),
        Some(ch) if ch.is_control() || ch == '\u{feff}' => {
            format!("control character U+{:04X}", u32::from(ch))
        }
        Some(ch) => format!("'{ch}'"),
    }
}

/// A TOML syntax error at `offset` (where the parser knows it) as the user should read it.
pub(crate) fn syntax_error(
    text: &str,
    file: &str,
    message: &str,
    offset: Option<usize>,
) -> ConfigError {
    // The parser's message may span lines ("invalid string\nexpected `\"`") or be empty.
    let said: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let Some(offset) = offset else {
        return at(
            file,
            None,
            format!("TOML syntax error: {}", said.join("; ")),
            "correct the syntax",
        );
    };
    if message.contains("number too large") || message.contains("number too small") {
        if let Some(e) = number_out_of_range(text, file, offset) {
            return e;
        }
    }
    let found = text.get(offset..).and_then(|rest| rest.chars().next());
    let (line, column) = (line_of(text, offset), column_of(text, offset));
    let what = if said.is_empty() {
        format!("unexpected {}", describe(found))
    } else {
        format!("{} (found {})", said.join("; "), describe(found))
    };
    let fix = match found {
        Some(ch) if ch.is_control() && ch != '\n' && ch != '\r' && ch != '\t' => {
            "remove the control character: TOML allows only tab, even in comments and strings"
        }
        _ => "correct the syntax at this line and column",
    };
    at(
        file,
        Some(line),
        format!("TOML syntax error at column {column}: {what}"),
        fix,
    )
}

/// An integer literal at `offset` too large (or small) for TOML's 64-bit integers: the field it
/// was written for, found by parsing the text again with a 0 in its place.
fn number_out_of_range(text: &str, file: &str, offset: usize) -> Option<ConfigError> {
    let rest = text.get(offset..)?;
    let len = rest
        .find(|ch: char| !(ch.is_ascii_alphanumeric() || "_+-.".contains(ch)))
        .unwrap_or(rest.len());
    let literal = &rest[..len];
    let mut patched = String::with_capacity(text.len());
    patched.push_str(&text[..offset]);
    patched.push('0');
    patched.push_str(&" ".repeat(len.saturating_sub(1)));
    patched.push_str(&text[offset + len..]);
    let source = Source::parse(&patched).ok()?;
    let loc = source.loc_at(offset);
    let (path, _) = source.locate(&loc);
    let line = line_of(text, offset);
    let (message, fix) = match limits::range_at(&loc) {
        Some(range) => (
            format!(
                "{literal} does not fit in a 64-bit integer; the range is {}",
                range.describe()
            ),
            format!("give a value from {}", range.describe()),
        ),
        None => (
            format!("{literal} does not fit in a 64-bit integer"),
            "give a smaller number".to_string(),
        ),
    };
    Some(ConfigError {
        file: file.to_string(),
        line: Some(line),
        path,
        message,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_placed_at_its_first_byte() {
        let bytes = b"[cluster]\nname = \"d\xc3\xa9mo\xff\"\n";
        let e = decode(bytes, "c.toml").expect_err("not UTF-8");
        assert_eq!(e.line, Some(2));
        assert_eq!(
            e.to_string(),
            "c.toml:2: invalid UTF-8 at byte offset 23 (line 2, column 13): byte 0xff does \
             not start a valid UTF-8 character; a config is UTF-8 text: save it as UTF-8 (an \
             editor set to Latin-1 or a binary copy writes such bytes), or remove the byte"
        );
        assert!(!e.to_string().contains("permissions"));
        let e = decode(b"a = 1\n\x80", "c.toml").expect_err("not UTF-8");
        assert!(
            e.message
                .contains("(line 2, column 1): byte 0x80 continues a character"),
            "{e}"
        );
        let e = decode(b"a = \"\xe2\x82", "c.toml").expect_err("not UTF-8");
        assert!(
            e.message.contains("the file ends inside a character"),
            "{e}"
        );
        assert_eq!(decode(b"a = 1\n", "c.toml").ok(), Some("a = 1\n"));
    }

    fn syntax(text: &str) -> ConfigError {
        match Source::parse(text) {
            Ok(_) => panic!("parsed: {text:?}"),
            Err((message, offset)) => syntax_error(text, "c.toml", &message, offset),
        }
    }

    #[test]
    fn syntax_errors_name_line_column_and_what_was_found() {
        let e = syntax("[cluster]\nx = ;\n");
        assert_eq!(e.line, Some(2));
        assert!(
            e.message
                .starts_with("TOML syntax error at column 5: invalid string; expected"),
            "{e}"
        );
        assert!(e.message.ends_with("(found ';')"), "{e}");
        // The parser says nothing about a control character in a comment: we do.
        let e = syntax("[cluster]\n# a\u{7f}b\n");
        assert_eq!(
            e.to_string(),
            "c.toml:2: TOML syntax error at column 4: unexpected control character U+007F; remove the control character: TOML allows only tab, even in comments \
             and strings"
        );
    }

    #[test]
    fn a_number_too_large_names_its_field_and_range() {
        let text = "[cluster]\nname = \"x\"\n\n[timing]\nlease_ms = 99999999999999999999\n";
        let e = syntax(text);
        assert_eq!(
            e.to_string(),
            "c.toml:5: timing → lease_ms: 99999999999999999999 does not fit in a 64-bit \
             integer; the range is 10 to 60000; give a value from 10 to 60000"
        );
        let e = syntax("[[group]]\nname = \"g\"\nload = -99999999999999999999 # x\n");
        assert_eq!(e.path, "group \"g\" → load");
        assert!(e.message.contains("the range is 0 to 1000000"), "{e}");
        let e = syntax("[cluster]\nwhatever = 0x99999999999999999999\n");
        assert_eq!(e.path, "cluster → whatever");
        assert_eq!(e.line, Some(2));
    }
}

//! Field paths in `cluster.toml`, and where they are in the text.
//!
//! A [`Loc`] is a list of keys and array indices (`group`, 1, `resource`, 0, `depends_on`).
//! Against the parsed document it renders as the path a user reads — an entry of an array of
//! tables is named by its `name` key where it has one: `group "db" → resource "db-ip" →
//! depends_on`, else by its index: `schedule[0] → cron` — and yields the line of the deepest
//! part of it written in the file (a key that is absent, because a default applies, points at
//! its table).

use std::ops::Range;
use toml_edit::{ImDocument, Item, Table, TableLike, Value};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    /// A key of a table.
    Key(String),
    /// An entry of an array (of tables).
    Index(usize),
}

/// A field path in the config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Loc(pub(crate) Vec<Seg>);

impl Loc {
    /// The keys on the way to this place, array positions left out (`group.resource.name`).
    pub(crate) fn keys(&self) -> Vec<&str> {
        self.0
            .iter()
            .filter_map(|s| match s {
                Seg::Key(k) => Some(k.as_str()),
                Seg::Index(_) => None,
            })
            .collect()
    }

    /// The document root.
    pub(crate) fn root() -> Loc {
        Loc(Vec::new())
    }

    /// This path, then a key.
    pub(crate) fn key(&self, k: &str) -> Loc {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(k.to_string()));
        Loc(segs)
    }

    /// This path, then an array index.
    pub(crate) fn at(&self, i: usize) -> Loc {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(i));
        Loc(segs)
    }

    /// Parses a key as the `config` crate writes it: `group[0].resource[1].quick`.
    pub(crate) fn from_config_key(key: &str) -> Loc {
        let mut segs = Vec::new();
        for part in key.split('.') {
            let (name, rest) = match part.find('[') {
                Some(i) => (&part[..i], &part[i..]),
                None => (part, ""),
            };
            if !name.is_empty() {
                segs.push(Seg::Key(name.to_string()));
            }
            for idx in rest.split('[').filter(|s| !s.is_empty()) {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(i));
                }
            }
        }
        Loc(segs)
    }
}

/// The parsed text of a config file, for rendering paths and finding lines.
pub(crate) struct Source<'a> {
    text: &'a str,
    doc: ImDocument<&'a str>,
    /// The offset of every newline, so that each located error costs a binary search, not a
    /// count over the file (a thousand errors in a large file once took seconds).
    newlines: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Parses `text`; on a syntax error, returns its message and byte offset.
    pub(crate) fn parse(text: &'a str) -> Result<Source<'a>, (String, Option<usize>)> {
        match ImDocument::parse(text) {
            Ok(doc) => Ok(Source {
                text,
                doc,
                newlines: memchr_all(text.as_bytes(), b'\n'),
            }),
            Err(e) => Err((e.message().trim().to_string(), e.span().map(|s| s.start))),
        }
    }

    /// Whether the field at `loc` is written in the file.
    pub(crate) fn exists(&self, loc: &Loc) -> bool {
        let mut node = Some(Node::Item(self.doc.as_item()));
        for seg in &loc.0 {
            node = match (node, seg) {
                (Some(n), Seg::Key(k)) => n.get(k).map(|(_, v)| v),
                (Some(n), Seg::Index(i)) => n.index(*i),
                (None, _) => None,
            };
        }
        node.is_some()
    }

    /// The 1-based line of a byte offset: [`line_of`] in O(log lines).
    fn line_of(&self, offset: usize) -> u32 {
        let end = offset.min(self.text.len());
        let newlines = self.newlines.partition_point(|&nl| nl < end);
        u32::try_from(newlines + 1).unwrap_or(u32::MAX)
    }

    /// The path as a user reads it, and the line where it (or its closest written parent) is.
    pub(crate) fn locate(&self, loc: &Loc) -> (String, Option<u32>) {
        let mut parts: Vec<String> = Vec::new();
        let mut node = Some(Node::Item(self.doc.as_item()));
        let mut line = None;
        let mut segs = loc.0.iter().peekable();
        while let Some(seg) = segs.next() {
            match seg {
                Seg::Key(k) => {
                    let found = node.as_ref().and_then(|n| n.get(k));
                    if let Some(span) = found.as_ref().and_then(|(key_span, _)| key_span.clone()) {
                        line = Some(self.line_of(span.start));
                    }
                    node = found.map(|(_, v)| v);
                    // An indexed entry is named together with its array: `group "db"`.
                    if let Some(Seg::Index(i)) = segs.peek() {
                        let i = *i;
                        segs.next();
                        let entry = node.as_ref().and_then(|n| n.index(i));
                        if let Some(span) = entry.as_ref().and_then(Node::span) {
                            line = Some(self.line_of(span.start));
                        }
                        let name = entry
                            .as_ref()
                            .and_then(|e| e.get("name"))
                            .and_then(|(_, v)| match v {
                                Node::Item(it) => it.as_str().map(str::to_string),
                                _ => None,
                            });
                        parts.push(match name {
                            Some(n) => format!("{k} \"{n}\""),
                            None => format!("{k}[{i}]"),
                        });
                        node = entry;
                    } else {
                        parts.push(k.clone());
                    }
                }
                Seg::Index(i) => {
                    parts.push(format!("[{i}]"));
                    node = node.as_ref().and_then(|n| n.index(*i));
                }
            }
        }
        (parts.join(" → "), line)
    }

    /// The field path of the innermost key or entry whose text contains byte `offset` (for
    /// errors that come with a position but no path).
    pub(crate) fn loc_at(&self, offset: usize) -> Loc {
        let mut loc = Loc::root();
        let mut node = Node::Item(self.doc.as_item());
        'descend: loop {
            for (k, key_span, child) in node.entries() {
                if key_span.is_some_and(|s| s.contains(&offset)) || child.contains(offset) {
                    loc = loc.key(&k);
                    node = child;
                    continue 'descend;
                }
            }
            for i in 0..node.len() {
                if let Some(child) = node.index(i) {
                    if child.contains(offset) {
                        loc = loc.at(i);
                        node = child;
                        continue 'descend;
                    }
                }
            }
            break;
        }
        loc
    }
}

/// A view of one place in the document: an item, a table of an array of tables, or a value
/// inside an inline array.
#[derive(Clone, Copy)]
enum Node<'d> {
    Item(&'d Item),
    Table(&'d Table),
    Value(&'d Value),
}

impl<'d> Node<'d> {
    fn table_like(&self) -> Option<&'d dyn TableLike> {
        match *self {
            Node::Item(it) => it.as_table_like(),
            Node::Table(t) => Some(t),
            Node::Value(Value::InlineTable(t)) => Some(t),
            Node::Value(_) => None,
        }
    }

    /// The value at key `k`, with the span of the key.
    fn get(&self, k: &str) -> Option<(Option<Range<usize>>, Node<'d>)> {
        let (key, item) = self.table_like()?.get_key_value(k)?;
        Some((key.span(), Node::Item(item)))
    }

    /// Every key with its span and value.
    fn entries(&self) -> Vec<(String, Option<Range<usize>>, Node<'d>)> {
        let Some(t) = self.table_like() else {
            return Vec::new();
        };
        t.iter()
            .filter_map(|(k, _)| {
                let (key, item) = t.get_key_value(k)?;
                Some((k.to_string(), key.span(), Node::Item(item)))
            })
            .collect()
    }

    /// Number of array entries (0 for anything but an array).
    fn len(&self) -> usize {
        match *self {
            Node::Item(Item::ArrayOfTables(a)) => a.len(),
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => a.len(),
            _ => 0,
        }
    }

    /// Array entry `i`.
    fn index(&self, i: usize) -> Option<Node<'d>> {
        match *self {
            Node::Item(Item::ArrayOfTables(a)) => a.get(i).map(Node::Table),
            Node::Item(Item::Value(Value::Array(a))) | Node::Value(Value::Array(a)) => {
                a.get(i).map(Node::Value)
            }
            _ => None,
        }
    }

    fn span(&self) -> Option<Range<usize>> {
        match *self {
            Node::Item(it) => it.span(),
            Node::Table(t) => t.span(),
            Node::Value(v) => v.span(),
        }
    }

    /// Whether this place's text (its own span, or any key or value inside) contains `offset`.
    fn contains(&self, offset: usize) -> bool {
        if self.span().is_some_and(|s| s.contains(&offset)) {
            return true;
        }
        let in_entries = self.entries().into_iter().any(|(_, key_span, child)| {
            key_span.is_some_and(|s| s.contains(&offset)) || child.contains(offset)
        });
        in_entries || (0..self.len()).any(|i| self.index(i).is_some_and(|c| c.contains(offset)))
    }
}

/// The offsets of every `byte` in `bytes`.
fn memchr_all(bytes: &[u8], byte: u8) -> Vec<usize> {
    bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == byte)
        .map(|(i, _)| i)
        .collect()
}

/// The 1-based column of a byte offset, in characters from the start of its line.
pub(crate) fn column_of(text: &str, offset: usize) -> u32 {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let start = text[..end].rfind('\n').map_or(0, |i| i + 1);
    u32::try_from(text[start..end].chars().count() + 1).unwrap_or(u32::MAX)
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> u32 {
    let end = offset.min(text.len());
    let newlines = text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count();
    u32::try_from(newlines + 1).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"[cluster]
name = "x"

[[group]]
name = "db"
nodes = ["a"]

[[group]]
name = "web"
  [[group.resource]]
  name = "web-ip"
  params = { address = "192.0.2.1/24" }

[[schedule]]
cron = "0 2 * * *"
"#;

    fn source() -> Source<'static> {
        match Source::parse(TEXT) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn renders_names_and_finds_lines() {
        let s = source();
        let loc = Loc::root()
            .key("group")
            .at(1)
            .key("resource")
            .at(0)
            .key("params")
            .key("address");
        assert_eq!(
            s.locate(&loc),
            (
                "group \"web\" → resource \"web-ip\" → params → address".to_string(),
                Some(12)
            )
        );
        let loc = Loc::root().key("schedule").at(0).key("cron");
        assert_eq!(s.locate(&loc), ("schedule[0] → cron".to_string(), Some(15)));
    }

    #[test]
    fn an_absent_key_points_at_its_table() {
        let s = source();
        let loc = Loc::root().key("group").at(0).key("failback");
        assert_eq!(
            s.locate(&loc),
            ("group \"db\" → failback".to_string(), Some(4))
        );
        let loc = Loc::root().key("timing").key("lease_ms");
        assert_eq!(s.locate(&loc), ("timing → lease_ms".to_string(), None));
    }

    #[test]
    fn finds_the_path_at_an_offset() {
        let s = source();
        let offset = TEXT.find("192.0.2.1").unwrap_or_default();
        let loc = s.loc_at(offset);
        assert_eq!(
            s.locate(&loc).0,
            "group \"web\" → resource \"web-ip\" → params → address"
        );
    }

    #[test]
    fn parses_config_crate_keys() {
        let loc = Loc::from_config_key("group[1].resource[0].quick");
        assert_eq!(
            loc,
            Loc::root()
                .key("group")
                .at(1)
                .key("resource")
                .at(0)
                .key("quick")
        );
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let text = "[cluster]\nname = \n";
        match Source::parse(text) {
            Ok(_) => panic!("parsed"),
            Err((_, offset)) => {
                let offset = offset.unwrap_or_else(|| panic!("no offset"));
                assert_eq!(line_of(text, offset), 2);
                assert_eq!(column_of(text, offset), 8);
            }
        }
    }

    #[test]
    fn columns_count_characters() {
        let text = "a\nnäme = x\n";
        let x = text.find('x').unwrap_or_default();
        assert_eq!((line_of(text, x), column_of(text, x)), (2, 8));
        assert_eq!(column_of(text, 0), 1);
        assert_eq!(column_of(text, text.len()), 1);
    }

    #[test]
    fn lines_found_by_search_agree_with_lines_counted() {
        let s = source();
        for offset in 0..=TEXT.len() + 2 {
            assert_eq!(s.line_of(offset), line_of(TEXT, offset), "offset {offset}");
        }
    }

    /// Locating an error once counted the newlines before it, so a file with an error in each
    /// of a thousand groups took a second and a half to report (found by `eterne-fuzz`):
    /// quadratic in the file. Now each line is a binary search. A guard, not a benchmark: the
    /// old count took 5.8 s here in a debug build, the search takes milliseconds.
    #[test]
    fn many_errors_in_a_large_file_are_located_in_linear_time() {
        const GROUPS: usize = 4000;
        let mut text = String::from("[cluster]\nname = \"x\"\n");
        for g in 0..GROUPS {
            text.push_str(&format!("[[group]]\nname = \"g{g}\"\nnodes = [\"n9\"]\n"));
        }
        let s = Source::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let started = std::time::Instant::now();
        for g in 0..GROUPS {
            let (path, line) = s.locate(&Loc::root().key("group").at(g).key("nodes"));
            assert_eq!(path, format!("group \"g{g}\" → nodes"));
            assert_eq!(line, Some(3 * g as u32 + 5));
        }
        let took = started.elapsed();
        assert!(
            took < std::time::Duration::from_secs(3),
            "{took:?}: quadratic again?"
        );
    }

    #[test]
    fn written_fields_exist() {
        let s = source();
        assert!(s.exists(&Loc::root().key("group").at(1).key("resource").at(0)));
        assert!(!s.exists(&Loc::root().key("group").at(2)));
        assert!(!s.exists(&Loc::root().key("timing")));
    }
}

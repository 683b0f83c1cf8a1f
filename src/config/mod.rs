//! `cluster.toml`: schema, loading, validation, resolution into
//! [`crate::policy::spec::ClusterSpec`].
//!
//! - [`schema`]: the typed sections of the file ([`ClusterConfig`] and below), each field
//!   documented with its default. Unknown fields are errors.
//! - `validate`: every rule a config must satisfy; all violations are collected at once.
//! - `resolve`: names become indices, defaults are filled in, the digest is computed.
//! - `locate`: field paths (`group "db" → resource "db-ip" → depends_on`) and their lines.
//! - [`limits`]: the file size, the counts and the range of every number, in one table.
//! - `input`: the file's size, its encoding and TOML syntax errors, placed by line and column.
//!
//! Loading goes: size (at most 1 MiB) → UTF-8 (the first bad byte by offset, line and column)
//! → TOML syntax (with `toml_edit`, which knows lines; the column and the character found) →
//! typed structs (with the `config` crate; a missing `[cluster]` is a missing table, an
//! integer too large for its field names the field's range) → validation. Each step reports errors as [`ConfigError`]s that name the
//! file, the line where known, the field path, what is wrong and how to fix it:
//!
//! ```text
//! cluster.toml:42: group "db" → resource "app" → depends_on: unknown resource "dbfs"; name a resource of group "db" (db-ip, db-fs)
//! ```

pub(crate) mod input;
pub mod limits;
mod locate;
mod resolve;
pub mod schema;
mod validate;

use std::fmt;
use std::path::Path;

pub use schema::*;

use crate::policy::spec::ClusterSpec;
use locate::{Loc, Source};

/// One problem found in a config file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    /// The file's name as given to the loader.
    pub file: String,
    /// The 1-based line of the field (or of its closest written parent), when known.
    pub line: Option<u32>,
    /// The field path, e.g. `group "db" → resource "db-ip" → depends_on`; empty for the file
    /// as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl ConfigError {
    fn render(&self) -> String {
        let mut out = self.file.clone();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        if !self.fix.is_empty() {
            out.push_str("; ");
            out.push_str(&self.fix);
        }
        out
    }
}

/// Every problem found in a config file (never empty when returned as an error).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    /// The problems, in file order where lines are known.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// A problem found by validation, before it is located in the text.
#[derive(Clone, Debug)]
pub(crate) struct Issue {
    pub(crate) loc: Loc,
    pub(crate) message: String,
    pub(crate) fix: String,
}

impl ClusterConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: impl AsRef<Path>) -> Result<ClusterConfig, ConfigErrors> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let one = |e| ConfigErrors { errors: vec![e] };
        let bytes = input::read(path, &file).map_err(one)?;
        let text = input::decode(&bytes, &file).map_err(one)?;
        ClusterConfig::from_str(text, &file)
    }

    /// Parses and validates config text; `file_name` is used in error messages.
    pub fn from_str(text: &str, file_name: &str) -> Result<ClusterConfig, ConfigErrors> {
        let error = |path: String, line, message: String, fix: &str| ConfigError {
            file: file_name.to_string(),
            line,
            path,
            message,
            fix: fix.to_string(),
        };
        if text.len() > limits::MAX_FILE_BYTES {
            return Err(ConfigErrors {
                errors: vec![input::too_large(file_name, text.len() as u64)],
            });
        }
        let source = Source::parse(text).map_err(|(message, offset)| ConfigErrors {
            errors: vec![input::syntax_error(text, file_name, &message, offset)],
        })?;
        let config = deserialize(text, &source).map_err(|(loc, message, fix)| {
            let (path, line) = source.locate(&loc);
            ConfigErrors {
                errors: vec![error(path, line, message, &fix)],
            }
        })?;
        let mut errors: Vec<ConfigError> = validate::validate(&config)
            .into_iter()
            .map(|issue| {
                let (path, line) = source.locate(&issue.loc);
                error(path, line, issue.message, &issue.fix)
            })
            .collect();
        if errors.is_empty() {
            return Ok(config);
        }
        // File order reads best; errors without a line go last. The sort is stable.
        errors.sort_by_key(|e| e.line.unwrap_or(u32::MAX));
        Err(ConfigErrors { errors })
    }

    /// Resolves a config that passed validation (as every config from [`ClusterConfig::load`]
    /// and [`ClusterConfig::from_str`] has) into the index-based spec the cores use.
    pub fn spec(&self) -> ClusterSpec {
        resolve::resolve(self)
    }

    /// A deterministic digest of the config's meaning: comments, whitespace, key order and
    /// defaults written out or left implicit do not change it. Nodes compare digests.
    pub fn digest(&self) -> u64 {
        resolve::digest(self)
    }
}

/// Deserializes with the `config` crate. On failure returns the field path, the message and a
/// fix. The `config` crate gives no position and often no full key (nor the name of a missing
/// field), so the same serde types are then run through `toml`, whose error has a byte span
/// and serde's own wording; the `config` crate's report is the fallback should `toml` accept
/// what `config` refused.
fn deserialize(text: &str, source: &Source<'_>) -> Result<ClusterConfig, (Loc, String, String)> {
    let result = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<ClusterConfig>());
    let err = match result {
        Ok(config) => return Ok(config),
        Err(err) => err,
    };
    let from_toml = match toml::from_str::<ClusterConfig>(text) {
        Err(e) => Some((
            e.span().map(|s| source.loc_at(s.start)).unwrap_or_default(),
            e.message().trim().to_string(),
        )),
        Ok(_) => None,
    };
    let (mut loc, message) = from_toml.unwrap_or_else(|| {
        let (key, message) = describe(&err);
        (
            key.map(|k| Loc::from_config_key(&k)).unwrap_or_default(),
            message,
        )
    });
    // Name the offending field itself, not only its table; a top-level table misspelt in a
    // dotted header (`[[grop.resource]]`) is at the root, not in the table found near it.
    if let Some(field) = quoted_field(&message, "unknown field `") {
        if loc.0.last() != Some(&locate::Seg::Key(field.to_string())) {
            loc = loc.key(field);
        }
        let at_root = Loc::root().key(field);
        if !source.exists(&loc) && source.exists(&at_root) {
            loc = at_root;
        }
    }
    // A required table is a table, not a field, and it is missing from the file as a whole.
    if let Some(table) = quoted_field(&message, "missing field `") {
        if REQUIRED_TABLES.contains(&table) && !source.exists(&Loc::root().key(table)) {
            return Err((
                Loc::root(),
                format!("missing table [{table}]"),
                format!("add a [{table}] table; the example configs under config/ show one"),
            ));
        }
    }
    // An integer of the wrong size for its field: say the field's range.
    if let Some(value) = quoted_field(&message, "invalid value: integer `") {
        if let Some(range) = limits::range_at(&loc) {
            let field = match loc.0.last() {
                Some(locate::Seg::Key(k)) => k.clone(),
                _ => "the value".to_string(),
            };
            return Err((
                loc,
                format!("{field} = {value} is outside {}", range.describe()),
                format!("give a value from {}", range.describe()),
            ));
        }
    }
    let fix = if message.contains("unknown field") {
        "remove the field or correct its spelling (the fields allowed here are listed)"
    } else if message.contains("missing field") {
        "add the field"
    } else if message.contains("unknown variant") {
        "use one of the values listed"
    } else if message.contains("expected a sequence") {
        "write a list: [\"a\", \"b\"], or [[name]] with double brackets for a repeated section"
    } else {
        "write a value of the expected type"
    };
    Err((loc, message, fix.to_string()))
}

/// The tables `cluster.toml` must have: a missing one is reported as a table.
const REQUIRED_TABLES: &[&str] = &["cluster"];

/// The name between `prefix` and the next backquote, e.g. the field of "unknown field `x`".
fn quoted_field<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find('`')?;
    Some(&message[start..start + len])
}

/// The key (if the `config` crate knows it) and the bare message of a `config` error.
fn describe(err: &config::ConfigError) -> (Option<String>, String) {
    match err {
        config::ConfigError::Type {
            unexpected,
            expected,
            key,
            ..
        } => (
            key.clone(),
            format!("invalid type: {unexpected}, expected {expected}"),
        ),
        config::ConfigError::At { error, key, .. } => {
            let (inner_key, message) = describe(error);
            (key.clone().or(inner_key), message)
        }
        config::ConfigError::Message(m) => (None, m.clone()),
        config::ConfigError::NotFound(key) => (Some(key.clone()), "missing field".to_string()),
        other => (None, other.to_string()),
    }
}

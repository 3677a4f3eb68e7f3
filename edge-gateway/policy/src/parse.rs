//! Reading a policy file from TOML or YAML text, with errors that name the file, line, column
//! and field.

use crate::file::PolicyFile;
use std::fmt;

/// Largest policy file accepted: 4 MiB, far above a 1,000-rule file (about 150 KiB).
pub const MAX_SOURCE_BYTES: usize = 4 << 20;

/// The syntax of a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// The format a file name's extension implies (`.toml`, `.yaml`, `.yml`).
    pub fn from_file_name(file_name: &str) -> Option<Self> {
        let (_, extension) = file_name.rsplit_once('.')?;
        match extension.to_ascii_lowercase().as_str() {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Toml => "toml",
            Self::Yaml => "yaml",
        })
    }
}

/// Why a policy file was rejected: `file:line:column: field: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct PolicyError {
    /// The file name given to [`parse`].
    pub file: String,
    /// 1-based line and column, when the parser knows them.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The field path, e.g. `applications[0].policies[1].action`; `None` for the whole file.
    pub field: Option<String>,
    pub message: String,
}

impl PolicyError {
    fn render(&self) -> String {
        let mut out = self.file.clone();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                out.push_str(&format!(":{column}"));
            }
        }
        out.push_str(": ");
        if let Some(field) = &self.field {
            out.push_str(field);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        out
    }
}

/// Parses and validates a policy file. `file_name` only labels errors.
///
/// # Errors
///
/// Syntax errors, unknown fields, invalid values (CIDRs, ports, versions, hours, hostnames),
/// duplicate names and `allow`/`block`/`service_auth` policies without `include`, each with the
/// file, line, column and field.
pub fn parse(source: &str, format: Format, file_name: &str) -> Result<PolicyFile, PolicyError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(PolicyError {
            file: file_name.into(),
            line: None,
            column: None,
            field: None,
            message: format!(
                "file is {} bytes, more than the limit of {MAX_SOURCE_BYTES}",
                source.len()
            ),
        });
    }
    match format {
        Format::Toml => parse_toml(source, file_name),
        Format::Yaml => parse_yaml(source, file_name),
    }
}

fn parse_toml(source: &str, file_name: &str) -> Result<PolicyFile, PolicyError> {
    let deserializer = toml::Deserializer::new(source);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = field_of(error.path());
        let inner = error.into_inner();
        let (line, column) = match inner.span() {
            Some(span) => {
                let (line, column) = line_column(source, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        PolicyError {
            file: file_name.into(),
            line,
            column,
            field,
            message: tidy(inner.message()),
        }
    })
}

fn parse_yaml(source: &str, file_name: &str) -> Result<PolicyFile, PolicyError> {
    let deserializer = serde_norway::Deserializer::from_str(source);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let field = field_of(error.path());
        let inner = error.into_inner();
        let location = inner.location();
        let mut message = inner.to_string();
        if let Some(location) = &location {
            // serde_norway appends the location it also exposes; it is shown up front instead.
            let suffix = format!(" at line {} column {}", location.line(), location.column());
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_owned();
            }
        }
        // serde_norway also prefixes the path it knows, a prefix of the one shown up front.
        if let Some((prefix, rest)) = message.split_once(": ") {
            if field.as_deref().is_some_and(|f| f.starts_with(prefix)) {
                message = rest.to_owned();
            }
        }
        PolicyError {
            file: file_name.into(),
            line: location.as_ref().map(serde_norway::Location::line),
            column: location.as_ref().map(serde_norway::Location::column),
            field,
            message: tidy(&message),
        }
    })
}

/// The path serde_path_to_error reports, `None` at the root (which it prints as `.`).
fn field_of(path: &serde_path_to_error::Path) -> Option<String> {
    let text = path.to_string();
    (text != "." && !text.is_empty()).then_some(text)
}

/// One line, without serde's backquotes around the expected list doubled by some formats.
fn tidy(message: &str) -> String {
    message.trim().replace('\n', " ")
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        assert_eq!(line_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("ab", 99), (1, 3));
    }

    #[test]
    fn format_follows_the_extension() {
        assert_eq!(Format::from_file_name("p.TOML"), Some(Format::Toml));
        assert_eq!(Format::from_file_name("a/p.yml"), Some(Format::Yaml));
        assert_eq!(Format::from_file_name("p.json"), None);
    }
}

//! Provides manifests: schedule create bodies read from YAML or JSON files, directories or
//! stdin, one per document, each labelled with where it came from.
//! It parses documents only; it never validates a schedule (the server does).

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::cli::client::CliError;

/// One schedule create body and where it came from.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// `file.yaml`, or `file.yaml (document 2)` when the file holds several.
    pub source: String,
    pub body: Map<String, Value>,
}

impl Manifest {
    /// The trimmed `name` (the server trims it too), if it is a non-blank string.
    pub fn name(&self) -> Option<String> {
        self.body
            .get("name")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
    }
}

/// Reads every manifest from `paths`: files, directories (their `*.yaml`, `*.yml` and
/// `*.json`, not recursive, in name order) or `-` for stdin. Nothing is sent anywhere.
pub fn load(paths: &[String]) -> Result<Vec<Manifest>, CliError> {
    if paths.iter().filter(|p| p.as_str() == "-").count() > 1 {
        return Err(CliError::usage("-f - (stdin) may be given only once"));
    }
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::usage(format!("could not read stdin: {e}")))?;
            out.extend(parse_documents("<stdin>", &text, false)?);
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path)
            .map_err(|e| CliError::usage(format!("cannot read {p}: {e}")))?;
        if meta.is_dir() {
            let files = manifest_files(path)?;
            if files.is_empty() {
                return Err(CliError::usage(format!(
                    "no manifests (*.yaml, *.yml, *.json) in directory {p}"
                )));
            }
            for f in files {
                out.extend(read_file(&f)?);
            }
        } else {
            out.extend(read_file(path)?);
        }
    }
    if out.is_empty() {
        return Err(CliError::usage("the manifests contain no schedules"));
    }
    Ok(out)
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::usage(format!("cannot read directory {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            CliError::usage(format!("cannot read directory {}: {e}", dir.display()))
        })?;
        let path = entry.path();
        let is_manifest = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "yaml" | "yml" | "json"));
        if is_manifest && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<Vec<Manifest>, CliError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::usage(format!("cannot read {label}: {e}")))?;
    let json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_documents(&label, &text, json)
}

/// Parses one file's text: a stream of JSON values (when `json`, or when the text starts
/// with `{` or `[`) or multi-document YAML. A sequence document holds several bodies; empty
/// documents are skipped; every body must be a mapping.
pub fn parse_documents(label: &str, text: &str, json: bool) -> Result<Vec<Manifest>, CliError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    let docs: Vec<Value> = if json || trimmed.starts_with('{') || trimmed.starts_with('[') {
        serde_json::Deserializer::from_str(trimmed)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .map_err(|e| CliError::usage(format!("{label}: invalid JSON: {e}")))?
    } else {
        let mut docs = Vec::new();
        for doc in serde_norway::Deserializer::from_str(text) {
            let v = Value::deserialize(doc)
                .map_err(|e| CliError::usage(format!("{label}: invalid YAML: {e}")))?;
            docs.push(v);
        }
        docs
    };
    let mut bodies = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Array(items) => bodies.extend(items),
            other => bodies.push(other),
        }
    }
    let several = bodies.len() > 1;
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            let source = if several {
                format!("{label} (document {})", i + 1)
            } else {
                label.to_string()
            };
            match b {
                Value::Object(body) => Ok(Manifest { source, body }),
                other => Err(CliError::usage(format!(
                    "{source}: expected a mapping (a schedule create body), got {}",
                    kind_of(&other)
                ))),
            }
        })
        .collect()
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

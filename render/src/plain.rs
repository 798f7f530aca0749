//! Directories of plain YAML: every `*.yaml`, `*.yml` and `*.json` file below
//! the directory, recursively, in path order; multi-document files allowed.

use serde_json::Value;

use crate::source::{FileSource, SourceError};
use crate::yaml::{self, YamlError};

#[derive(Debug, thiserror::Error)]
pub enum PlainError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Yaml(#[from] YamlError),
}

/// Whether a file name is a manifest the plain renderer reads.
pub fn is_manifest(name: &str) -> bool {
    (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json"))
        && !name.starts_with('.')
}

/// Every document below `dir`, each with the file it came from.
pub fn collect(src: &dyn FileSource, dir: &str) -> Result<Vec<(String, Value)>, PlainError> {
    let mut out = Vec::new();
    walk(src, dir, &mut out)?;
    Ok(out)
}

fn walk(src: &dyn FileSource, dir: &str, out: &mut Vec<(String, Value)>) -> Result<(), PlainError> {
    let Some(entries) = src.list_dir(dir)? else {
        return Ok(());
    };
    for e in entries {
        let path = if dir.is_empty() {
            e.name.clone()
        } else {
            format!("{dir}/{}", e.name)
        };
        if e.is_dir {
            walk(src, &path, out)?;
        } else if is_manifest(&e.name) {
            let Some(bytes) = src.read(&path)? else {
                continue;
            };
            for doc in yaml::parse_documents(&path, &bytes)? {
                out.push((path.clone(), doc));
            }
        }
    }
    Ok(())
}

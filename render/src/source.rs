//! The read-only view of a fleet repo tree that rendering works on.
//!
//! Paths are relative to the repo root, `/`-separated, with no leading `/`;
//! `""` is the root. [`normalize`] resolves `.` and `..` and refuses to leave
//! the root, so a kustomization cannot read outside the repo.

use std::collections::BTreeMap;
use std::sync::Arc;

/// One entry of a directory listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct SourceError {
    pub path: String,
    pub reason: String,
}

/// A tree of files: a Git tree at a commit in the hub, an in-memory map in tests.
pub trait FileSource {
    /// The content of the file at `path`, or `None` when there is no file there.
    fn read(&self, path: &str) -> Result<Option<Arc<[u8]>>, SourceError>;
    /// The entries of the directory at `path`, sorted by name, or `None` when
    /// there is no directory there.
    fn list_dir(&self, path: &str) -> Result<Option<Vec<DirEntry>>, SourceError>;

    fn is_dir(&self, path: &str) -> Result<bool, SourceError> {
        Ok(self.list_dir(path)?.is_some())
    }
}

/// Joins `rel` onto directory `base` and normalizes the result.
/// Returns `None` when the result would escape the root.
/// Every file under `root`, with its path relative to `root`, in the order
/// the source lists directories.
pub fn read_tree(
    src: &dyn FileSource,
    root: &str,
) -> Result<Vec<(String, Arc<[u8]>)>, SourceError> {
    fn walk(
        src: &dyn FileSource,
        root: &str,
        rel: &str,
        out: &mut Vec<(String, Arc<[u8]>)>,
    ) -> Result<(), SourceError> {
        let dir = if rel.is_empty() {
            root.to_string()
        } else {
            format!("{root}/{rel}")
        };
        for e in src.list_dir(&dir)?.unwrap_or_default() {
            let child = if rel.is_empty() {
                e.name.clone()
            } else {
                format!("{rel}/{}", e.name)
            };
            if e.is_dir {
                walk(src, root, &child, out)?;
            } else if let Some(data) = src.read(&format!("{root}/{child}"))? {
                out.push((child, data));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(src, root, "", &mut out)?;
    Ok(out)
}

pub fn join(base: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') {
        return None;
    }
    if base.is_empty() {
        normalize(rel)
    } else {
        normalize(&format!("{base}/{rel}"))
    }
}

/// Resolves `.`, `..` and empty segments; `None` when `..` climbs above the root.
pub fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            s => parts.push(s),
        }
    }
    Some(parts.join("/"))
}

/// The parent directory of `path` (`""` for top-level entries).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map(|(p, _)| p).unwrap_or("")
}

/// An in-memory tree: path -> content. Directories are implied by file paths.
#[derive(Debug, Default, Clone)]
pub struct MemTree {
    files: BTreeMap<String, Arc<[u8]>>,
}

impl MemTree {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, path: &str, content: impl Into<Arc<[u8]>>) {
        let path = normalize(path).expect("MemTree paths stay inside the root");
        self.files.insert(path, content.into());
    }

    pub fn with(mut self, path: &str, content: &str) -> Self {
        self.insert(path, content.as_bytes());
        self
    }

    /// Loads every file under a directory on disk (tests and golden corpora).
    pub fn from_dir(root: &std::path::Path) -> std::io::Result<Self> {
        let mut tree = MemTree::new();
        let mut stack = vec![(root.to_path_buf(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let child_rel = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                if entry.file_type()?.is_dir() {
                    stack.push((entry.path(), child_rel));
                } else {
                    let data = std::fs::read(entry.path())?;
                    tree.insert(&child_rel, data);
                }
            }
        }
        Ok(tree)
    }

    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files.iter().map(|(k, v)| (k.as_str(), &**v))
    }
}

impl FileSource for MemTree {
    fn read(&self, path: &str) -> Result<Option<Arc<[u8]>>, SourceError> {
        Ok(normalize(path).and_then(|p| self.files.get(&p).cloned()))
    }

    fn list_dir(&self, path: &str) -> Result<Option<Vec<DirEntry>>, SourceError> {
        let Some(dir) = normalize(path) else {
            return Ok(None);
        };
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let mut out: BTreeMap<String, bool> = BTreeMap::new();
        for key in self.files.range(prefix.clone()..) {
            let Some(rest) = key.0.strip_prefix(&prefix) else {
                break;
            };
            match rest.split_once('/') {
                Some((d, _)) => {
                    out.insert(d.to_string(), true);
                }
                None => {
                    out.entry(rest.to_string()).or_insert(false);
                }
            }
        }
        if out.is_empty() && !dir.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            out.into_iter()
                .map(|(name, is_dir)| DirEntry { name, is_dir })
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_refuses_to_escape() {
        assert_eq!(normalize("a/./b/../c").as_deref(), Some("a/c"));
        assert_eq!(normalize("a/../../b"), None);
        assert_eq!(
            join("apps/web/overlays/prod", "../../base").as_deref(),
            Some("apps/web/base")
        );
        assert_eq!(join("apps", "/etc/passwd"), None);
    }

    #[test]
    fn mem_tree_lists_dirs_and_files() {
        let t = MemTree::new().with("a/b/c.yaml", "x").with("a/d.yaml", "y");
        let l = t.list_dir("a").unwrap().unwrap();
        assert_eq!(
            l,
            vec![
                DirEntry {
                    name: "b".into(),
                    is_dir: true
                },
                DirEntry {
                    name: "d.yaml".into(),
                    is_dir: false
                }
            ]
        );
        assert!(t.list_dir("nope").unwrap().is_none());
        assert_eq!(&*t.read("a/b/../d.yaml").unwrap().unwrap(), b"y");
    }
}

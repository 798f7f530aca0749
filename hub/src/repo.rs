//! The fleet repo through gix: open or mirror it, fetch, resolve a revision,
//! and read a commit's tree as a [`FileSource`]. No `git` subprocess.
//!
//! Everything here is blocking; async callers use `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use fleet_render::CommitMeta;
use fleet_render::source::{DirEntry, FileSource, SourceError, normalize};
use gix::ObjectId;

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("cannot open the fleet repo at {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("cannot fetch the fleet repo from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("revision {rev:?} not found in the fleet repo: {reason}")]
    Resolve { rev: String, reason: String },
    #[error("fleet repo object {id}: {reason}")]
    Object { id: String, reason: String },
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// Where the fleet repo comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A repository on this machine, read in place.
    Local(PathBuf),
    /// A remote URL, mirrored into a bare repository under the hub's data dir.
    Remote { url: String, mirror: PathBuf },
}

impl Source {
    /// A URL with a scheme (or `user@host:path`) is remote; anything else is a local path.
    pub fn parse(repo: &str, data_dir: &Path) -> Source {
        let is_url = repo.contains("://") || (repo.contains('@') && repo.contains(':'));
        if is_url {
            Source::Remote {
                url: repo.to_string(),
                mirror: data_dir.join("mirror.git"),
            }
        } else {
            Source::Local(PathBuf::from(repo))
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Source::Local(p) => p.display().to_string(),
            Source::Remote { url, .. } => url.clone(),
        }
    }
}

/// Decoded objects kept per [`GitTree`]: the trees and cluster files of a
/// 10,000-cluster fleet fit with room to spare.
const OBJECT_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// An opened fleet repo.
pub struct Repo {
    source: Source,
    repo: gix::ThreadSafeRepository,
}

impl Repo {
    /// Opens a local repo, or opens (cloning on first use) the mirror of a remote one.
    /// A mirror that exists opens even when the remote is unreachable.
    pub fn open(source: Source) -> Result<Repo> {
        let repo = match &source {
            Source::Local(p) => {
                gix::ThreadSafeRepository::open(p).map_err(|e| RepoError::Open {
                    path: p.display().to_string(),
                    reason: e.to_string(),
                })?
            }
            Source::Remote { url, mirror } => {
                if mirror.exists() {
                    gix::ThreadSafeRepository::open(mirror).map_err(|e| RepoError::Open {
                        path: mirror.display().to_string(),
                        reason: e.to_string(),
                    })?
                } else {
                    clone_bare(url, mirror)?
                }
            }
        };
        Ok(Repo { source, repo })
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Brings the mirror up to date with the remote (no-op for a local repo).
    pub fn fetch(&self) -> Result<()> {
        let Source::Remote { url, .. } = &self.source else {
            return Ok(());
        };
        let err = |e: &dyn std::fmt::Display| RepoError::Fetch {
            url: url.clone(),
            reason: e.to_string(),
        };
        let repo = self.repo.to_thread_local();
        // Every branch, and the remote's HEAD, under refs/remotes/origin/.
        let mut remote = repo.find_remote("origin").map_err(|e| err(&e))?;
        remote
            .replace_refspecs(
                [
                    "+refs/heads/*:refs/remotes/origin/*",
                    "+HEAD:refs/remotes/origin/HEAD",
                ],
                gix::remote::Direction::Fetch,
            )
            .map_err(|e| err(&e))?;
        let interrupt = AtomicBool::new(false);
        remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| err(&e))?
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| err(&e))?
            .receive(gix::progress::Discard, &interrupt)
            .map_err(|e| err(&e))?;
        Ok(())
    }

    /// Resolves a branch name, tag or commit id to a commit.
    pub fn resolve(&self, rev: &str) -> Result<CommitMeta> {
        let repo = self.repo.to_thread_local();
        let err = |e: &dyn std::fmt::Display| RepoError::Resolve {
            rev: rev.to_string(),
            reason: e.to_string(),
        };
        let candidates: Vec<String> = match &self.source {
            Source::Remote { .. } => vec![
                format!("refs/remotes/origin/{rev}"),
                format!("refs/heads/{rev}"),
                rev.to_string(),
            ],
            Source::Local(_) => vec![rev.to_string()],
        };
        let mut last = None;
        for spec in candidates {
            match repo.rev_parse_single(spec.as_str()) {
                Ok(id) => {
                    let commit = id
                        .object()
                        .map_err(|e| err(&e))?
                        .peel_to_commit()
                        .map_err(|e| err(&e))?;
                    return commit_meta(&commit).map_err(|e| err(&e));
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(err(&last.unwrap_or_default()))
    }

    /// The raw commit object (headers, signature and message), as Git stores it.
    pub fn raw_commit(&self, commit: &str) -> Result<Vec<u8>> {
        let repo = self.repo.to_thread_local();
        let err = |e: &dyn std::fmt::Display| RepoError::Object {
            id: commit.into(),
            reason: e.to_string(),
        };
        let oid = ObjectId::from_hex(commit.as_bytes()).map_err(|e| err(&e))?;
        let c = repo.find_commit(oid).map_err(|e| err(&e))?;
        Ok(c.data.clone())
    }

    /// The tree of a commit, readable as a [`FileSource`].
    pub fn tree_at(&self, commit: &str) -> Result<GitTree> {
        let mut repo = self.repo.to_thread_local();
        // A render looks up the same trees (root, clusters/, apps/<app>) for
        // every cluster: without a cache each lookup re-reads and re-inflates them.
        repo.object_cache_size_if_unset(OBJECT_CACHE_BYTES);
        let oid = ObjectId::from_hex(commit.as_bytes()).map_err(|e| RepoError::Object {
            id: commit.into(),
            reason: e.to_string(),
        })?;
        let tree = repo
            .find_commit(oid)
            .map_err(|e| RepoError::Object {
                id: commit.into(),
                reason: e.to_string(),
            })?
            .tree_id()
            .map_err(|e| RepoError::Object {
                id: commit.into(),
                reason: e.to_string(),
            })?
            .detach();
        Ok(GitTree {
            repo,
            root: tree,
            trees: Default::default(),
        })
    }
}

fn clone_bare(url: &str, mirror: &Path) -> Result<gix::ThreadSafeRepository> {
    let err = |e: &dyn std::fmt::Display| RepoError::Fetch {
        url: url.to_string(),
        reason: e.to_string(),
    };
    if let Some(parent) = mirror.parent() {
        std::fs::create_dir_all(parent).map_err(|e| err(&e))?;
    }
    let interrupt = AtomicBool::new(false);
    let result = gix::prepare_clone_bare(url, mirror)
        .map_err(|e| err(&e))
        .and_then(|mut p| {
            p.fetch_only(gix::progress::Discard, &interrupt)
                .map_err(|e| err(&e))
        });
    match result {
        Ok((repo, _)) => Ok(repo.into_sync()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(mirror);
            Err(e)
        }
    }
}

fn commit_meta(commit: &gix::Commit<'_>) -> std::result::Result<CommitMeta, String> {
    let author = commit.author().map_err(|e| e.to_string())?;
    let message = commit.message_raw().map_err(|e| e.to_string())?.to_string();
    let time = commit.time().map_err(|e| e.to_string())?.seconds;
    Ok(CommitMeta {
        id: commit.id.to_string(),
        author: format!("{} <{}>", author.name, author.email),
        message: message.trim_end().to_string(),
        time,
    })
}

/// A commit's tree, read lazily from the object database.
pub struct GitTree {
    repo: gix::Repository,
    root: ObjectId,
    /// The entries of each tree looked into, by name: a path lookup is a
    /// hash probe per component, not a scan of the tree (`clusters/` holds a
    /// file per cluster, and every one of them is read on a first render).
    trees: std::cell::RefCell<std::collections::HashMap<ObjectId, Arc<TreeIndex>>>,
}

type TreeIndex = std::collections::HashMap<Vec<u8>, (ObjectId, bool)>;

impl GitTree {
    fn entry(&self, path: &str) -> std::result::Result<Option<(ObjectId, bool)>, SourceError> {
        let serr = |e: &dyn std::fmt::Display| SourceError {
            path: path.to_string(),
            reason: e.to_string(),
        };
        let Some(path) = normalize(path) else {
            return Ok(None);
        };
        if path.is_empty() {
            return Ok(Some((self.root, true)));
        }
        let mut tree = self.root;
        let mut parts = path.split('/').peekable();
        while let Some(name) = parts.next() {
            let index = self.index(tree).map_err(|e| serr(&e))?;
            let Some(&(id, is_tree)) = index.get(name.as_bytes()) else {
                return Ok(None);
            };
            if parts.peek().is_none() {
                return Ok(Some((id, is_tree)));
            }
            if !is_tree {
                return Ok(None);
            }
            tree = id;
        }
        Ok(None)
    }

    /// The entries of tree `id` by name, read once per tree.
    fn index(&self, id: ObjectId) -> std::result::Result<Arc<TreeIndex>, String> {
        if let Some(t) = self.trees.borrow().get(&id) {
            return Ok(Arc::clone(t));
        }
        let tree = self.repo.find_tree(id).map_err(|e| e.to_string())?;
        let mut index = TreeIndex::new();
        for e in tree.iter() {
            let e = e.map_err(|e| e.to_string())?;
            index.insert(e.filename().to_vec(), (e.object_id(), e.mode().is_tree()));
        }
        let index = Arc::new(index);
        self.trees.borrow_mut().insert(id, Arc::clone(&index));
        Ok(index)
    }

    /// The id of the tree at `path`, if it is a directory: a cheap, exact cache key
    /// for everything below it.
    pub fn tree_id(&self, path: &str) -> Option<ObjectId> {
        match self.entry(path) {
            Ok(Some((id, true))) => Some(id),
            _ => None,
        }
    }

    pub fn root_id(&self) -> ObjectId {
        self.root
    }
}

impl FileSource for GitTree {
    fn read(&self, path: &str) -> std::result::Result<Option<Arc<[u8]>>, SourceError> {
        let Some((id, false)) = self.entry(path)? else {
            return Ok(None);
        };
        let blob = self.repo.find_blob(id).map_err(|e| SourceError {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(Arc::from(blob.data.as_slice())))
    }

    /// Without listing the directory (a lookup per candidate path of every
    /// app of every cluster).
    fn is_dir(&self, path: &str) -> std::result::Result<bool, SourceError> {
        Ok(matches!(self.entry(path)?, Some((_, true))))
    }

    fn list_dir(&self, path: &str) -> std::result::Result<Option<Vec<DirEntry>>, SourceError> {
        let Some((id, true)) = self.entry(path)? else {
            return Ok(None);
        };
        let tree = self.repo.find_tree(id).map_err(|e| SourceError {
            path: path.to_string(),
            reason: e.to_string(),
        })?;
        let mut out = Vec::new();
        for e in tree.iter() {
            let e = e.map_err(|e| SourceError {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
            out.push(DirEntry {
                name: e.filename().to_string(),
                is_dir: e.mode().is_tree(),
            });
        }
        out.sort();
        Ok(Some(out))
    }
}

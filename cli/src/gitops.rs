//! Commits to the fleet repo with gix (no `git` subprocess): one commit on
//! the current branch or a new branch, the work tree and index kept in step,
//! and a push to a local or `file://` remote with a compare-and-swap on the
//! remote branch.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use gix::ObjectId;
use gix::refs::transaction::PreviousValue;

pub struct Workspace {
    pub path: PathBuf,
    pub repo: gix::Repository,
}

/// Where a commit goes.
pub enum Dest {
    /// The branch HEAD points to (the work tree and index follow).
    CurrentBranch,
    /// A new branch, created at the commit; HEAD and the work tree stay.
    NewBranch(String),
}

/// A file change: new content, or `None` to delete.
pub type FileChange = (String, Option<Vec<u8>>);

/// What one commit attempt writes.
pub struct Prepared {
    pub changes: Vec<FileChange>,
    pub message: String,
}

pub struct Committed {
    pub id: ObjectId,
    pub refname: String,
    pub message: String,
}

/// Sleeps 5 ms doubling per attempt up to ~320 ms, with jitter, so racing
/// processes do not retry in lockstep.
fn backoff(attempt: u32) {
    let base = 5u64 << attempt.min(6);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64 ^ std::process::id() as u64)
        .unwrap_or(0)
        % base.max(1);
    std::thread::sleep(std::time::Duration::from_millis(base + jitter));
}

/// A file's bytes at a commit (`None`: no such file).
pub fn read_at(
    repo: &gix::Repository,
    commit: ObjectId,
    path: &str,
) -> anyhow::Result<Option<Vec<u8>>> {
    let tree = repo.find_commit(commit)?.tree()?;
    match tree.lookup_entry_by_path(path)? {
        Some(e) if !e.mode().is_tree() => Ok(Some(e.object()?.data.clone())),
        _ => Ok(None),
    }
}

impl Workspace {
    pub fn open(path: &Path) -> anyhow::Result<Workspace> {
        let repo = gix::open(path)
            .with_context(|| format!("opening the fleet repo at {}", path.display()))?;
        Ok(Workspace {
            path: path.to_path_buf(),
            repo,
        })
    }

    pub fn head_commit(&self) -> anyhow::Result<ObjectId> {
        Ok(self
            .repo
            .head_id()
            .context("the fleet repo has no commit at HEAD")?
            .detach())
    }

    /// The author: `--author "Name <email>"` if given, else the repo's Git config.
    pub fn signature(&self, author: Option<&str>) -> anyhow::Result<gix::actor::Signature> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        let time = gix::date::Time {
            seconds: now,
            offset: 0,
        };
        if let Some(a) = author {
            let (name, email) = a
                .split_once('<')
                .and_then(|(n, e)| e.strip_suffix('>').map(|e| (n.trim(), e.trim())))
                .with_context(|| format!("--author {a:?} must look like \"Name <email>\""))?;
            return Ok(gix::actor::Signature {
                name: name.into(),
                email: email.into(),
                time,
            });
        }
        match self.repo.author() {
            Some(Ok(s)) => Ok(gix::actor::Signature {
                name: s.name.into(),
                email: s.email.into(),
                time,
            }),
            _ => bail!(
                "no author: set user.name and user.email in Git config, or pass --author \"Name <email>\""
            ),
        }
    }

    /// Writes a tree: `base` (a commit) with `changes` applied. Objects only; no ref moves.
    pub fn write_tree(&self, base: ObjectId, changes: &[FileChange]) -> anyhow::Result<ObjectId> {
        let tree = self.repo.find_commit(base)?.tree_id()?.detach();
        let mut editor = self.repo.edit_tree(tree)?;
        for (path, content) in changes {
            match content {
                Some(bytes) => {
                    let blob = self.repo.write_blob(bytes)?.detach();
                    editor.upsert(path.as_str(), gix::object::tree::EntryKind::Blob, blob)?;
                }
                None => {
                    editor.remove(path.as_str())?;
                }
            }
        }
        Ok(editor.write()?.detach())
    }

    /// Writes a commit object with `parent`. No ref moves.
    pub fn write_commit(
        &self,
        parent: ObjectId,
        tree: ObjectId,
        message: &str,
        sig: &gix::actor::Signature,
    ) -> anyhow::Result<ObjectId> {
        let commit = gix::objs::Commit {
            tree,
            parents: vec![parent].into(),
            author: sig.clone(),
            committer: sig.clone(),
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        Ok(self.repo.write_object(&commit)?.detach())
    }

    /// Commits on top of the branch of `dest` as a compare-and-swap on its
    /// ref: `prepare` is given the parent commit and returns the changes and
    /// message (or `None`: nothing to do at that parent); a lost race (the
    /// branch moved, or its ref lock is held) prepares again on the new tip,
    /// with backoff. For the current branch, Git's index lock is held from
    /// the first read to the last write, so concurrent `fleetctl` runs on one
    /// checkout queue instead of failing, and only the edited files are
    /// written to the work tree and only their index entries change (a
    /// staged change to another file stays staged). An edited file with
    /// uncommitted or staged changes is refused. `after_ref` runs once the ref
    /// moved (a push); if it fails, the ref is moved back and nothing else
    /// changed.
    pub fn commit_with(
        &self,
        dest: &Dest,
        sig: &gix::actor::Signature,
        mut prepare: impl FnMut(&gix::Repository, ObjectId) -> anyhow::Result<Option<Prepared>>,
        after_ref: impl FnOnce(&Workspace, ObjectId, ObjectId, &str) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<Committed>> {
        let workdir = match dest {
            Dest::CurrentBranch => self.repo.workdir().map(Path::to_path_buf),
            Dest::NewBranch(_) => None,
        };
        let lock = match &workdir {
            Some(_) => Some(self.lock_index()?),
            None => None,
        };
        let mut attempt = 0u32;
        loop {
            // A fresh handle each attempt: no cached refs or packs from before the race.
            let ws = Workspace::open(&self.path)?;
            let parent = ws.head_commit()?;
            let Some(prep) = prepare(&ws.repo, parent)? else {
                return Ok(None);
            };
            let mut index = match &workdir {
                Some(wd) => Some(ws.check_clean(wd, parent, &prep.changes)?),
                None => None,
            };
            let tree = ws.write_tree(parent, &prep.changes)?;
            let id = ws.write_commit(parent, tree, &prep.message, sig)?;
            let (refname, constraint) = match dest {
                Dest::CurrentBranch => (
                    ws.repo
                        .head_name()?
                        .context("HEAD is detached: check out a branch first")?
                        .as_bstr()
                        .to_string(),
                    PreviousValue::MustExistAndMatch(gix::refs::Target::Object(parent)),
                ),
                Dest::NewBranch(b) => (format!("refs/heads/{b}"), PreviousValue::MustNotExist),
            };
            let log = format!("fleetctl: {}", prep.message.lines().next().unwrap_or(""));
            if let Err(e) = ws.repo.reference(refname.as_str(), id, constraint, log) {
                if matches!(dest, Dest::NewBranch(_)) {
                    return Err(anyhow::Error::new(e)
                        .context(format!("creating {refname} (does the branch exist?)")));
                }
                attempt += 1;
                if attempt >= 50 {
                    return Err(anyhow::Error::new(e).context(format!(
                        "updating {refname}: it kept moving under {attempt} attempts"
                    )));
                }
                tracing::debug!(%refname, attempt, error = %e, "lost the race for the branch; retrying on its new tip");
                backoff(attempt);
                continue;
            }
            if let Err(e) = after_ref(&ws, parent, id, &refname) {
                // Nothing else changed yet: move the ref back (or drop the new branch).
                let undo = match dest {
                    Dest::NewBranch(_) => ws
                        .repo
                        .find_reference(refname.as_str())
                        .map_err(anyhow::Error::new)
                        .and_then(|r| r.delete().map_err(anyhow::Error::new))
                        .map(|_| "the local branch was removed"),
                    Dest::CurrentBranch => ws
                        .repo
                        .reference(
                            refname.as_str(),
                            parent,
                            PreviousValue::MustExistAndMatch(gix::refs::Target::Object(id)),
                            "fleetctl: undo after a rejected push",
                        )
                        .map_err(anyhow::Error::new)
                        .map(|_| "the local commit was undone"),
                };
                return Err(match undo {
                    Ok(what) => e.context(what),
                    Err(u) => e.context(format!("and undoing the local commit failed too: {u}")),
                });
            }
            if let (Some(wd), Some(index), Some(lock)) = (&workdir, index.as_mut(), lock) {
                ws.write_files(wd, index, &prep.changes)?;
                index.remove_tree();
                let mut lock = lock;
                index
                    .write_to(&mut lock, Default::default())
                    .map_err(|e| anyhow::anyhow!("writing the Git index: {e}"))?;
                lock.commit()
                    .map_err(|e| anyhow::anyhow!("writing the Git index: {}", e.error))?;
            }
            return Ok(Some(Committed {
                id,
                refname,
                message: prep.message,
            }));
        }
    }

    /// Takes Git's index lock (`index.lock`), waiting with backoff while
    /// another process holds it.
    fn lock_index(&self) -> anyhow::Result<gix::lock::File> {
        let path = self.repo.index_path();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let mut attempt = 0;
        loop {
            match gix::lock::File::acquire_to_update_resource(
                &path,
                gix::lock::acquire::Fail::Immediately,
                None,
                0,
            ) {
                Ok(l) => return Ok(l),
                Err(e) if std::time::Instant::now() < deadline => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "the Git index is locked; waiting");
                    backoff(attempt.min(6));
                }
                Err(e) => bail!(
                    "the Git index of {} stayed locked for 120s ({e}); if no Git process runs, remove {}.lock",
                    self.path.display(),
                    path.display()
                ),
            }
        }
    }

    /// Refuses edits of files with uncommitted or staged changes; returns
    /// the index (read under the lock).
    fn check_clean(
        &self,
        wd: &Path,
        parent: ObjectId,
        changes: &[FileChange],
    ) -> anyhow::Result<gix::index::File> {
        let index = match self.repo.open_index() {
            Ok(i) => i,
            Err(_) => {
                let tree = self.repo.find_commit(parent)?.tree_id()?.detach();
                self.repo.index_from_tree(&tree)?
            }
        };
        let ptree = self.repo.find_commit(parent)?.tree()?;
        for (path, _) in changes {
            let committed = self.read_at(parent, path)?;
            let on_disk = std::fs::read(wd.join(path)).ok();
            if on_disk != committed {
                bail!(
                    "{path} has uncommitted changes in {}; commit or stash them first",
                    wd.display()
                );
            }
            let staged = index.entry_by_path(path.as_str().into()).map(|e| e.id);
            let head = ptree
                .lookup_entry_by_path(path)?
                .filter(|e| !e.mode().is_tree())
                .map(|e| e.object_id());
            if staged != head {
                bail!(
                    "{path} has staged changes in {}; commit or unstage them first",
                    wd.display()
                );
            }
        }
        Ok(index)
    }

    /// Writes the edited files (atomically) and their index entries.
    fn write_files(
        &self,
        wd: &Path,
        index: &mut gix::index::File,
        changes: &[FileChange],
    ) -> anyhow::Result<()> {
        let mut added = false;
        for (path, content) in changes {
            let p = wd.join(path);
            match content {
                Some(bytes) => {
                    if let Some(d) = p.parent() {
                        std::fs::create_dir_all(d)?;
                    }
                    let tmp = p.with_file_name(format!(
                        ".{}.fleetctl-{}",
                        p.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
                        std::process::id()
                    ));
                    std::fs::write(&tmp, bytes)
                        .with_context(|| format!("writing {}", tmp.display()))?;
                    std::fs::rename(&tmp, &p)
                        .with_context(|| format!("writing {}", p.display()))?;
                    // Already in the object database (the commit's tree has it).
                    let blob = self.repo.write_blob(bytes)?.detach();
                    let meta = gix::index::fs::Metadata::from_path_no_follow(&p)?;
                    let stat = gix::index::entry::Stat::from_fs(&meta)?;
                    match index.entry_index_by_path(path.as_str().into()) {
                        Ok(i) => {
                            let e = &mut index.entries_mut()[i];
                            e.id = blob;
                            e.stat = stat;
                        }
                        Err(_) => {
                            index.dangerously_push_entry(
                                stat,
                                blob,
                                gix::index::entry::Flags::empty(),
                                gix::index::entry::Mode::FILE,
                                path.as_str().into(),
                            );
                            added = true;
                        }
                    }
                }
                None => {
                    let _ = std::fs::remove_file(&p);
                    index.remove_entries(|_, ep, _| ep == path.as_str());
                }
            }
        }
        if added {
            index.sort_entries();
        }
        Ok(())
    }

    pub fn read_at(&self, commit: ObjectId, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        read_at(&self.repo, commit, path)
    }

    /// Pushes `refname` at `id` to `remote`, requiring the remote branch to be
    /// at `expected` (or absent when `None`): a remote that moved meanwhile
    /// rejects the push. Works for local paths and `file://` URLs.
    pub fn push(
        &self,
        remote: &str,
        refname: &str,
        id: ObjectId,
        expected: Option<ObjectId>,
    ) -> anyhow::Result<()> {
        let url = self
            .repo
            .find_remote(remote)
            .with_context(|| format!("no remote {remote:?} in the fleet repo"))?
            .url(gix::remote::Direction::Push)
            .with_context(|| format!("remote {remote:?} has no URL"))?
            .to_bstring()
            .to_string();
        let path = match url.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None if !url.contains("://") && !url.contains('@') => {
                let p = PathBuf::from(&url);
                if p.is_absolute() {
                    p
                } else {
                    self.path.join(p)
                }
            }
            None => bail!(
                "pushing to {url} needs Git's push protocol, which gix does not implement yet; the commit is on {refname} locally: run `git push {remote} {refname}`"
            ),
        };
        let target = gix::open(&path)
            .with_context(|| format!("opening remote {remote} at {}", path.display()))?;
        if let Some(parent) = self.repo.find_commit(id)?.parent_ids().next() {
            if !target.has_object(parent.detach()) {
                bail!(
                    "remote {remote} does not have {} (the commit this one builds on): fetch and retry",
                    parent.to_hex_with_len(8)
                );
            }
        }
        self.copy_missing(&target, id)?;
        let constraint = match expected {
            Some(e) => PreviousValue::MustExistAndMatch(gix::refs::Target::Object(e)),
            None => PreviousValue::MustNotExist,
        };
        target.reference(refname, id, constraint, "push from fleetctl").map_err(|e| {
            anyhow::anyhow!("push to {remote} rejected: {refname} changed there since you last fetched (someone pushed first): {e}")
        })?;
        Ok(())
    }

    /// Copies the objects of `commit` the target lacks (trees it has are complete).
    fn copy_missing(&self, target: &gix::Repository, commit: ObjectId) -> anyhow::Result<()> {
        let mut stack = vec![commit];
        while let Some(id) = stack.pop() {
            if target.has_object(id) {
                continue;
            }
            let obj = self.repo.find_object(id)?;
            match obj.kind {
                gix::object::Kind::Commit => {
                    let c = obj.clone().into_commit();
                    stack.push(c.tree_id()?.detach());
                }
                gix::object::Kind::Tree => {
                    let t = obj.clone().into_tree();
                    for e in t.iter() {
                        let e = e?;
                        if !e.mode().is_commit() {
                            stack.push(e.oid().to_owned());
                        }
                    }
                }
                _ => {}
            }
            gix::prelude::Write::write_buf(&target.objects, obj.kind, &obj.data)?;
        }
        Ok(())
    }
}

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

    /// Commits `changes` on top of HEAD to `dest`. Refuses when a changed file
    /// has uncommitted edits in the work tree.
    pub fn commit(
        &self,
        changes: &[FileChange],
        message: &str,
        sig: &gix::actor::Signature,
        dest: &Dest,
    ) -> anyhow::Result<(ObjectId, String)> {
        let parent = self.head_commit()?;
        let workdir = self.repo.workdir().map(Path::to_path_buf);
        if let (Dest::CurrentBranch, Some(wd)) = (dest, &workdir) {
            for (path, _) in changes {
                let committed = self.read_at(parent, path)?;
                let on_disk = std::fs::read(wd.join(path)).ok();
                if on_disk != committed {
                    bail!(
                        "{path} has uncommitted changes in {}; commit or stash them first",
                        wd.display()
                    );
                }
            }
        }
        let tree = self.write_tree(parent, changes)?;
        let id = self.write_commit(parent, tree, message, sig)?;
        let refname = match dest {
            Dest::CurrentBranch => self
                .repo
                .head_name()?
                .context("HEAD is detached: check out a branch first")?
                .as_bstr()
                .to_string(),
            Dest::NewBranch(b) => format!("refs/heads/{b}"),
        };
        let constraint = match dest {
            Dest::CurrentBranch => {
                PreviousValue::MustExistAndMatch(gix::refs::Target::Object(parent))
            }
            Dest::NewBranch(_) => PreviousValue::MustNotExist,
        };
        self.repo
            .reference(
                refname.as_str(),
                id,
                constraint,
                format!("fleetctl: {}", message.lines().next().unwrap_or("")),
            )
            .with_context(|| {
                format!("updating {refname} (did someone else commit, or does the branch exist?)")
            })?;
        if let (Dest::CurrentBranch, Some(wd)) = (dest, workdir) {
            for (path, content) in changes {
                let p = wd.join(path);
                match content {
                    Some(bytes) => {
                        if let Some(d) = p.parent() {
                            std::fs::create_dir_all(d)?;
                        }
                        std::fs::write(&p, bytes)
                            .with_context(|| format!("writing {}", p.display()))?;
                    }
                    None => {
                        let _ = std::fs::remove_file(&p);
                    }
                }
            }
            let mut index = self.repo.index_from_tree(&tree)?;
            index
                .write(Default::default())
                .context("writing the Git index")?;
        }
        Ok((id, refname))
    }

    pub fn read_at(&self, commit: ObjectId, path: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let tree = self.repo.find_commit(commit)?.tree()?;
        match tree.lookup_entry_by_path(path)? {
            Some(e) if !e.mode().is_tree() => Ok(Some(e.object()?.data.clone())),
            _ => Ok(None),
        }
    }

    /// Moves `refname` back from `from` to `to` (undoing a local commit after a rejected push).
    pub fn reset_ref(
        &self,
        refname: &str,
        from: ObjectId,
        to: Option<ObjectId>,
    ) -> anyhow::Result<()> {
        match to {
            Some(to) => {
                self.repo.reference(
                    refname,
                    to,
                    PreviousValue::MustExistAndMatch(gix::refs::Target::Object(from)),
                    "fleetctl: undo after rejected push",
                )?;
                if let Some(wd) = self.repo.workdir() {
                    let tree = self.repo.find_commit(to)?.tree_id()?.detach();
                    let mut index = self.repo.index_from_tree(&tree)?;
                    index.write(Default::default())?;
                    let _ = wd;
                }
            }
            None => {
                self.repo.find_reference(refname)?.delete()?;
            }
        }
        Ok(())
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

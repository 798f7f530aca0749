//! Writing commits to a fleet repo with gix (no `git` subprocess): used by
//! `fleetctl demo` to create its repo.

use std::path::Path;

use anyhow::Context as _;

/// Creates a non-bare repository at `dir` whose first commit holds `files`
/// (written to the work tree and the index too, so `git` sees a clean tree).
pub fn init_with_files(
    dir: &Path,
    files: &[(String, String)],
    message: &str,
) -> anyhow::Result<String> {
    let repo = gix::init(dir)
        .with_context(|| format!("creating a Git repository at {}", dir.display()))?;
    let mut editor = repo.edit_tree(repo.empty_tree().id)?;
    for (path, content) in files {
        let full = dir.join(path);
        if let Some(p) = full.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&full, content).with_context(|| format!("writing {}", full.display()))?;
        let blob = repo.write_blob(content.as_bytes())?.detach();
        editor.upsert(path.as_str(), gix::object::tree::EntryKind::Blob, blob)?;
    }
    let tree = editor.write()?.detach();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let sig = gix::actor::Signature {
        name: "fleet demo".into(),
        email: "demo@fleet.invalid".into(),
        time: gix::date::Time {
            seconds: now,
            offset: 0,
        },
    };
    let (mut b1, mut b2) = (
        gix::date::parse::TimeBuf::default(),
        gix::date::parse::TimeBuf::default(),
    );
    let commit = repo.commit_as(
        sig.to_ref(&mut b1),
        sig.to_ref(&mut b2),
        "HEAD",
        message,
        tree,
        None::<gix::ObjectId>,
    )?;
    let mut index = repo.index_from_tree(&tree)?;
    index
        .write(Default::default())
        .context("writing the Git index")?;
    Ok(commit.to_string())
}

//! `fleetctl bundle export`: one cluster's signed state as one file, from the
//! hub (its released state, signed by the hub) or offline from the repo with
//! the signing key. Format: `fleet_proto::bundle`; docs/airgap.md.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use fleet_proto::v1 as pb;

use crate::client::{Admin, HubArgs};

/// Where the state comes from.
pub enum Source<'a> {
    Hub(&'a HubArgs),
    Offline {
        repo: &'a Path,
        rev: &'a str,
        key: &'a Path,
    },
}

/// Writes the bundle of `cluster` to `out`; returns the revision.
pub fn export(cluster: &str, source: Source<'_>, out: &Path) -> anyhow::Result<String> {
    let (bytes, revision) = match source {
        Source::Hub(hub) => crate::runtime().block_on(async {
            let r = Admin::connect(hub)?
                .export_bundle(pb::ExportBundleRequest {
                    cluster: cluster.into(),
                })
                .await?;
            anyhow::Ok((r.bundle.to_vec(), r.revision))
        })?,
        Source::Offline { repo, rev, key } => {
            let r =
                fleet_hub::repo::Repo::open(fleet_hub::repo::Source::Local(repo.to_path_buf()))?;
            let commit = r.resolve(rev)?;
            let tree = r.tree_at(&commit.id)?;
            let rendered = fleet_hub::renderer::Renderer::new()
                .render(&tree, &commit, &())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let state = rendered.states.get(cluster).ok_or_else(|| {
                crate::release::bad(format!(
                    "cluster {cluster:?} is not in the fleet repo at {rev}; clusters: {}",
                    fleet_hub::release::list_names(rendered.states.keys())
                ))
            })?;
            if let Some(e) = state.errors().next() {
                anyhow::bail!(
                    "app {} does not render at {rev}: {}: {}",
                    e.app,
                    e.file,
                    e.reason
                );
            }
            let signer =
                fleet_hub::signing::StateSigner::load(key, &repo.display().to_string(), rev)?;
            (signer.bundle(state), state.commit.id.clone())
        }
    };
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(revision)
}

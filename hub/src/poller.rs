//! Keeps the rendered fleet current: fetch the repo on an interval or when
//! the webhook says so, render every new commit, publish what changed.

use std::sync::Arc;
use std::time::Duration;

use crate::Hub;
use crate::renderer::Renderer;
use crate::repo::{Repo, Source};

pub struct Poller {
    pub hub: Arc<Hub>,
    pub source: Source,
    pub branch: String,
    pub interval: Duration,
    /// Commits must be signed by these keys (`--allowed-signers`).
    pub policy: Option<Arc<crate::commitsig::CommitPolicy>>,
}

impl Poller {
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let renderer = Arc::new(std::sync::Mutex::new(Renderer::new()));
        let mut repo: Option<Arc<Repo>> = None;
        loop {
            self.poll_once(&mut repo, &renderer).await;
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = self.hub.refresh.notified() => tracing::info!("refresh requested"),
                _ = shutdown.changed() => return,
            }
        }
    }

    #[tracing::instrument(skip_all, fields(repo = %self.source.describe(), branch = %self.branch))]
    async fn poll_once(
        &self,
        repo: &mut Option<Arc<Repo>>,
        renderer: &Arc<std::sync::Mutex<Renderer>>,
    ) {
        let source = self.source.clone();
        let opened = repo.clone();
        let branch = self.branch.clone();
        let hub = self.hub.clone();
        let renderer = renderer.clone();
        let policy = self.policy.clone();
        let result = tokio::task::spawn_blocking(move || -> anyhow::Result<Arc<Repo>> {
            let woke = std::time::Instant::now();
            let repo = match opened {
                Some(r) => r,
                None => Arc::new(Repo::open(source)?),
            };
            repo.fetch()?;
            let commit = repo.resolve(&branch)?;
            if hub.current_commit().as_deref() == Some(commit.id.as_str()) {
                if hub.notifications_commit().as_deref() != Some(commit.id.as_str())
                    && hub.rendered_commit() == commit.id
                {
                    // A restart resumed at a commit rendered (and verified) before;
                    // a refused commit is "seen" too, but never read for receivers.
                    let tree = repo.tree_at(&commit.id)?;
                    hub.set_notifications(&commit.id, notifications(&tree, &hub));
                }
                // Nothing new in Git; a sync window may have opened.
                hub.release_due(crate::status::now())?;
                return Ok(repo);
            }
            if let Some(p) = &policy {
                match p.check(&repo.raw_commit(&commit.id)?) {
                    Ok(signer) => {
                        tracing::info!(commit = %commit.short_id(), %signer, "commit signature verified");
                        hub.note_commit_signer(&commit.id, &signer);
                    }
                    Err(reason) => {
                        tracing::warn!(commit = %commit.short_id(), %reason, "not rendering a commit that fails the signature policy; keeping the last good states");
                        hub.set_git_error(Some(format!("commit {}: {reason}", commit.short_id())));
                        hub.mark_commit_seen(&commit);
                        return Ok(repo);
                    }
                }
            }
            let tree = repo.tree_at(&commit.id)?;
            // Receivers come only from a commit that passed the signature policy.
            hub.set_notifications(&commit.id, notifications(&tree, &hub));
            let started = std::time::Instant::now();
            let read = started - woke;
            let rendered = hub.releases.with_desired(|previous| {
                renderer.lock().expect("renderer lock").render(&tree, &commit, previous)
            });
            match rendered {
                Ok(r) => {
                    let render = started.elapsed();
                    let (clusters, stats) = (r.states.len(), r.stats);
                    hub.publish_render(r, render)?;
                    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                    tracing::info!(
                        commit = %commit.short_id(),
                        clusters,
                        rendered = stats.rendered,
                        reused = stats.reused,
                        read_ms = format_args!("{:.1}", ms(read)),
                        render_ms = format_args!("{:.1}", ms(render)),
                        publish_ms = format_args!("{:.1}", ms(started.elapsed() - render)),
                        "published fleet"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, commit = %commit.short_id(), "fleet repo does not render; keeping the last good states");
                    hub.set_git_error(Some(format!("commit {}: {e}", commit.short_id())));
                    hub.mark_commit_seen(&commit);
                }
            }
            Ok(repo)
        })
        .await;
        match result {
            Ok(Ok(r)) => {
                *repo = Some(r);
                if self.hub.git_error_is_fetch() {
                    self.hub.set_git_error(None);
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %format!("{e:#}"), "fleet repo unreachable; serving the last rendered states");
                self.hub.set_fetch_error(format!("{e:#}"));
            }
            Err(e) => tracing::error!(error = %e, "render task panicked"),
        }
    }
}

/// The receivers of the fleet repo's notifications.yaml at this commit; a
/// broken file keeps the receivers the hub had (logged). Addresses and
/// secrets named by file are read from the hub's disk.
fn notifications(
    tree: &dyn fleet_render::source::FileSource,
    hub: &crate::Hub,
) -> crate::notify::Config {
    let text = match tree.read(crate::notify::FILE) {
        Ok(Some(t)) => t,
        Ok(None) => return crate::notify::Config::default(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read notifications.yaml; keeping the receivers");
            return hub.notifications_config();
        }
    };
    let read = |path: &str| std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"));
    match crate::notify::parse(&text, read) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "notifications.yaml is not valid; keeping the receivers the hub had");
            hub.notifications_config()
        }
    }
}

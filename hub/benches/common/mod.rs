//! The benches' fleet: the fleet of `fleet-load` (bench/src/repo.rs) with
//! `clusters` clusters, apps web, api and monitoring everywhere and canary on
//! ring r00 (1%), made with `git` in a temporary directory.

use std::path::Path;
use std::process::Command;

use fleet_hub::repo::{GitTree, Repo, Source};
use fleet_render::CommitMeta;

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git");
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn write(dir: &Path, path: &str, content: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

pub fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: {name}\n        image: example/{name}:1\n"
    )
}

/// Commits the working tree; returns the commit id.
pub fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// Writes the fleet's first commit; returns its id.
pub fn fleet(dir: &Path, clusters: usize) -> String {
    git(dir, &["init", "-q", "-b", "main"]);
    for i in 0..clusters {
        write(
            dir,
            &format!("clusters/c{i:05}.yaml"),
            &format!(
                "name: c{i:05}\nlabels:\n  tier: workload\n  env: {}\n  ring: r{:02}\n",
                ["dev", "staging", "prod"][i % 3],
                i % 100
            ),
        );
    }
    let sel = "selector:\n  matchLabels: {tier: workload}\n";
    for app in ["web", "api", "monitoring"] {
        write(
            dir,
            &format!("apps/{app}/app.yaml"),
            &format!("namespace: {app}\n{sel}"),
        );
        write(
            dir,
            &format!("apps/{app}/base/deployment.yaml"),
            &deployment(app),
        );
        write(
            dir,
            &format!("apps/{app}/base/config.yaml"),
            &config_map(&format!("{app}-config"), "0"),
        );
    }
    write(
        dir,
        "apps/canary/app.yaml",
        "namespace: canary\nselector:\n  matchLabels: {tier: workload, ring: r00}\n",
    );
    write(
        dir,
        "apps/canary/base/config.yaml",
        &config_map("canary", "0"),
    );
    commit(dir, "fleet")
}

/// The tree and commit metadata at `id`.
pub fn tree_at(repo: &Repo, id: &str) -> (GitTree, CommitMeta) {
    let c = repo.resolve(id).unwrap();
    (repo.tree_at(&c.id).unwrap(), c)
}

pub fn open(dir: &Path) -> Repo {
    Repo::open(Source::Local(dir.to_path_buf())).unwrap()
}

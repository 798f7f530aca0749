//! The benches' fleet: the fleet of `fleet-load` (bench/src/repo.rs) with
//! `clusters` workload clusters (labels tier, env, region, ring), apps web
//! and api (three resources each) and monitoring (two) everywhere, canary on
//! ring r00 (1%) and footprint (500 ConfigMaps) on one more cluster, made
//! with `git` in a temporary directory.

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

fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  labels: {{app: {name}}}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: {name}\n        image: {image}\n        ports:\n        - containerPort: 8080\n        resources:\n          requests: {{cpu: 100m, memory: 128Mi}}\n"
    )
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  selector: {{app: {name}}}\n  ports:\n  - port: 80\n    targetPort: 8080\n"
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
                "name: c{i:05}\nlabels:\n  tier: workload\n  env: {}\n  region: {}\n  ring: r{:02}\n",
                ["dev", "staging", "prod"][i % 3],
                ["eu-west", "eu-north", "us-east", "ap-south"][(i / 3) % 4],
                i % 100
            ),
        );
    }
    write(
        dir,
        "clusters/footprint.yaml",
        "name: footprint\nlabels:\n  role: footprint\n",
    );
    let sel = "selector:\n  matchLabels: {tier: workload}\n";
    for (app, image) in [("web", "nginx:1.27"), ("api", "example/api:2.4")] {
        write(
            dir,
            &format!("apps/{app}/app.yaml"),
            &format!("namespace: {app}\n{sel}"),
        );
        write(
            dir,
            &format!("apps/{app}/base/deployment.yaml"),
            &deployment(app, image),
        );
        write(dir, &format!("apps/{app}/base/service.yaml"), &service(app));
        write(
            dir,
            &format!("apps/{app}/base/config.yaml"),
            &config_map(&format!("{app}-config"), "0"),
        );
    }
    write(
        dir,
        "apps/monitoring/app.yaml",
        &format!("namespace: monitoring\n{sel}"),
    );
    write(
        dir,
        "apps/monitoring/base/agent.yaml",
        &deployment("node-agent", "example/agent:1.0"),
    );
    write(
        dir,
        "apps/monitoring/base/config.yaml",
        &config_map("agent-config", "scrape: 30s"),
    );
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
    write(
        dir,
        "apps/footprint/app.yaml",
        "namespace: footprint\nselector:\n  matchLabels: {role: footprint}\n",
    );
    let docs: Vec<String> = (0..500)
        .map(|i| config_map(&format!("fp-{i:03}"), &format!("0-{i}")))
        .collect();
    write(
        dir,
        "apps/footprint/base/resources.yaml",
        &docs.join("---\n"),
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

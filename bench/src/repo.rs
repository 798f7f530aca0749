//! A generated fleet repo, made and changed with `git` (harness code, not product
//! code: the hub itself reads it with gix).
//!
//! Layout: `clusters/cNNNNN.yaml` with labels `tier: workload`, `env`
//! (dev/staging/prod), `region` and `ring` (r00..r99, so one ring is 1% of the
//! fleet); apps `web`, `api` and `monitoring` (plain YAML; fleet's renderer
//! does not build Kustomize overlays yet) on every workload cluster, `canary` on ring r00 only,
//! and `footprint` (500 ConfigMaps) on the one cluster named `footprint`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

pub const FOOTPRINT_CLUSTER: &str = "footprint";
pub const FOOTPRINT_RESOURCES: usize = 500;
const ENVS: [&str; 3] = ["dev", "staging", "prod"];
const REGIONS: [&str; 4] = ["eu-west", "eu-north", "us-east", "ap-south"];

pub fn cluster_name(i: usize) -> String {
    format!("c{i:05}")
}

/// Whether cluster `i` runs the `canary` app (ring r00: 1% of clusters).
pub fn in_canary_ring(i: usize) -> bool {
    i.is_multiple_of(100)
}

pub struct FleetRepo {
    pub dir: PathBuf,
}

fn config_map(name: &str, value: &str) -> String {
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

impl FleetRepo {
    /// An empty repo (branch `main`, nothing committed yet).
    pub fn init(dir: &Path) -> anyhow::Result<FleetRepo> {
        std::fs::create_dir_all(dir)?;
        let r = FleetRepo {
            dir: dir.to_path_buf(),
        };
        r.git(&["init", "-q", "-b", "main"])?;
        Ok(r)
    }

    /// Creates the repo with `clusters` workload clusters plus the footprint
    /// cluster; app `api` carries `state_kib` KiB more when that is not 0.
    pub fn generate(dir: &Path, clusters: usize, state_kib: usize) -> anyhow::Result<FleetRepo> {
        std::fs::create_dir_all(dir)?;
        let r = FleetRepo {
            dir: dir.to_path_buf(),
        };
        r.git(&["init", "-q", "-b", "main"])?;
        for i in 0..clusters {
            let name = cluster_name(i);
            r.write(
                &format!("clusters/{name}.yaml"),
                &format!(
                    "name: {name}\nlabels:\n  tier: workload\n  env: {}\n  region: {}\n  ring: r{:02}\n",
                    ENVS[i % ENVS.len()],
                    REGIONS[(i / 3) % REGIONS.len()],
                    i % 100
                ),
            )?;
        }
        r.write(
            &format!("clusters/{FOOTPRINT_CLUSTER}.yaml"),
            &format!("name: {FOOTPRINT_CLUSTER}\nlabels:\n  role: footprint\n"),
        )?;
        let workload = "selector:\n  matchLabels: {tier: workload}\n";
        r.write("apps/web/app.yaml", &format!("namespace: web\n{workload}"))?;
        r.write(
            "apps/web/base/deployment.yaml",
            &deployment("web", "nginx:1.27"),
        )?;
        r.write("apps/web/base/service.yaml", &service("web"))?;
        r.write("apps/web/base/config.yaml", &config_map("web-config", "0"))?;
        r.write("apps/api/app.yaml", &format!("namespace: api\n{workload}"))?;
        r.write(
            "apps/api/base/deployment.yaml",
            &deployment("api", "example/api:2.4"),
        )?;
        r.write("apps/api/base/service.yaml", &service("api"))?;
        r.write("apps/api/base/config.yaml", &config_map("api-config", "a"))?;
        if state_kib > 0 {
            r.write(
                "apps/api/base/bulk.yaml",
                &config_map("api-bulk", &"x".repeat(state_kib * 1024)),
            )?;
        }
        r.write(
            "apps/monitoring/app.yaml",
            &format!("namespace: monitoring\n{workload}"),
        )?;
        r.write(
            "apps/monitoring/base/agent.yaml",
            &deployment("node-agent", "example/agent:1.0"),
        )?;
        r.write(
            "apps/monitoring/base/config.yaml",
            &config_map("agent-config", "scrape: 30s"),
        )?;
        r.write(
            "apps/canary/app.yaml",
            "namespace: canary\nselector:\n  matchLabels: {tier: workload, ring: r00}\n",
        )?;
        r.write(
            "apps/canary/base/config.yaml",
            &config_map("canary-config", "0"),
        )?;
        r.write(
            "apps/footprint/app.yaml",
            "namespace: footprint\nselector:\n  matchLabels: {role: footprint}\n",
        )?;
        r.write_footprint("0")?;
        r.commit("initial fleet")?;
        Ok(r)
    }

    pub fn write_footprint(&self, value: &str) -> anyhow::Result<()> {
        let docs: Vec<String> = (0..FOOTPRINT_RESOURCES)
            .map(|i| config_map(&format!("fp-{i:03}"), &format!("{value}-{i}")))
            .collect();
        self.write("apps/footprint/base/resources.yaml", &docs.join("---\n"))
    }

    /// A change to app `web` on every workload cluster.
    pub fn change_everywhere(&self, value: &str) -> anyhow::Result<()> {
        self.write(
            "apps/web/base/config.yaml",
            &config_map("web-config", value),
        )
    }

    /// A change to app `canary`, which runs on 1% of the clusters.
    pub fn change_one_percent(&self, value: &str) -> anyhow::Result<()> {
        self.write(
            "apps/canary/base/config.yaml",
            &config_map("canary-config", value),
        )
    }

    pub fn write(&self, path: &str, content: &str) -> anyhow::Result<()> {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent"))?;
        std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))
    }

    /// Stages everything; the caller starts its clock, then calls [`FleetRepo::commit_staged`].
    pub fn stage(&self) -> anyhow::Result<()> {
        self.git(&["add", "-A"]).map(drop)
    }

    /// Commits what is staged; returns the commit id.
    pub fn commit_staged(&self, message: &str) -> anyhow::Result<String> {
        self.git(&["commit", "-q", "-m", message])?;
        self.git(&["rev-parse", "HEAD"])
    }

    pub fn commit(&self, message: &str) -> anyhow::Result<String> {
        self.stage()?;
        self.commit_staged(message)
    }

    fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(&self.dir)
            .env("GIT_AUTHOR_NAME", "Bench Bot")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "Bench Bot")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", &self.dir)
            .output()
            .context("running git (is it installed?)")?;
        if !out.status.success() {
            anyhow::bail!(
                "git {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

//! End-to-end release management: promote, the gate, rollback and freeze,
//! history, offline diff, manual sync and sync windows — real Git, real hub
//! and spokes, `fleetctl` as a process.

use fleet_tests::*;

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: api}\n  template:\n    metadata:\n      labels: {app: api}\n    spec:\n      containers:\n      - name: api\n        image: ghcr.io/example/api:v0\n";
const API_FILE: &str = "api/Deployment.apps/api.yaml";

fn overlay(env: &str, tag: &str) -> String {
    format!(
        "# {env} overlay\nresources:\n- ../../base\nimages:\n- name: ghcr.io/example/api\n  newTag: {tag}\nlabels:\n- pairs:\n    env: {env}\n"
    )
}

struct Fleet {
    work: tempfile::TempDir,
    repo: GitRepo,
    pki: Pki,
}

const CLUSTERS: &[(&str, &str)] = &[
    ("dev-1", "dev"),
    ("staging-1", "staging"),
    ("prod-1", "prod"),
    ("prod-2", "prod"),
];

impl Fleet {
    fn new(extra: &[(&str, &str)]) -> Fleet {
        let work = tempfile::tempdir().unwrap();
        let repo = GitRepo::new(work.path().join("repo"));
        for (c, env) in CLUSTERS {
            repo.write(
                &format!("clusters/{c}.yaml"),
                &format!("name: {c}\nlabels: {{env: {env}}}\n"),
            );
        }
        repo.write("apps/api/app.yaml", "namespace: api\n")
            .write("apps/api/base/deployment.yaml", DEPLOY)
            .write(
                "apps/api/base/kustomization.yaml",
                "resources:\n- deployment.yaml\n",
            );
        for env in ["dev", "staging", "prod"] {
            repo.write(
                &format!("apps/api/overlays/{env}/kustomization.yaml"),
                &overlay(env, "v1"),
            );
        }
        for (path, content) in extra {
            repo.write(path, content);
        }
        repo.commit("initial fleet");
        let pki = Pki::new(work.path().join("pki"));
        pki.issue(&["admin", "rm"]);
        for (c, _) in CLUSTERS {
            pki.issue(&["spoke", c]);
        }
        Fleet { work, repo, pki }
    }

    fn hub(&self) -> Hub {
        let data = self.work.path().join("hub-data");
        Hub::start(
            &HubSpec {
                repo: self.repo.dir.to_str().unwrap(),
                data_dir: &data,
                pki: &self.pki,
                branch: "main",
            },
            self.work.path(),
            "hub",
        )
    }

    fn spoke(&self, hub: &Hub, cluster: &str) -> Spoke {
        Spoke::start(
            &hub.grpc,
            &self.pki,
            &format!("spoke-{cluster}"),
            &self.pki,
            self.work.path(),
            cluster,
        )
    }

    /// fleetctl with the repo, the admin identity and an author.
    fn ctl(&self, hub: &Hub, args: &[&str]) -> std::process::Output {
        let (cert, key) = self.pki.pair("admin-rm");
        let mut all: Vec<&str> = args.to_vec();
        let repo = self.repo.dir.to_str().unwrap().to_string();
        let ca = self.pki.ca().to_str().unwrap().to_string();
        let (cert, key) = (
            cert.to_str().unwrap().to_string(),
            key.to_str().unwrap().to_string(),
        );
        let cmd = args[0];
        let takes_repo = matches!(
            cmd,
            "promote" | "rollback" | "unfreeze" | "history" | "diff"
        );
        let takes_hub = matches!(cmd, "promote" | "history" | "sync" | "status");
        let takes_author = matches!(cmd, "promote" | "rollback" | "unfreeze");
        let mut owned: Vec<String> = Vec::new();
        if takes_repo {
            owned.extend(["--repo".into(), repo]);
        }
        if takes_hub {
            owned.extend([
                "--hub".into(),
                hub.grpc.clone(),
                "--hub-name".into(),
                "localhost".into(),
            ]);
            owned.extend([
                "--ca".into(),
                ca,
                "--cert".into(),
                cert,
                "--key".into(),
                key,
            ]);
        }
        if takes_author {
            owned.extend(["--author".into(), "Rita Release <rita@example.com>".into()]);
        }
        all.extend(owned.iter().map(String::as_str));
        fleetctl(&all)
    }

    fn ctl_ok(&self, hub: &Hub, args: &[&str]) -> String {
        let out = self.ctl(hub, args);
        assert!(
            out.status.success(),
            "fleetctl {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn head_message(&self) -> String {
        self.repo.git(&["log", "-1", "--format=%B"])
    }
}

fn wait_tag(s: &Spoke, tag: &str) {
    s.wait_file(API_FILE, &format!("api at {tag}"), |c| {
        c.contains(&format!("ghcr.io/example/api:{tag}"))
    });
}

fn wait_synced(f: &Fleet, hub: &Hub, clusters: &[&str]) {
    wait_until(
        &format!("{clusters:?} synced at the hub's revision"),
        TIMEOUT,
        || {
            let s = hub.status(&f.pki);
            clusters
                .iter()
                .all(|c| {
                    let c = cluster(&s, c);
                    c["sync"] == "synced" && c["appliedDigest"] == c["desiredDigest"]
                })
                .then_some(())
        },
    );
}

#[test]
fn promotion_gate_rollback_freeze_and_history() {
    let f = Fleet::new(&[]);
    let hub = f.hub();
    // Status uses the admin-tester identity in the harness: issue it too.
    f.pki.issue(&["admin", "tester"]);
    let spokes: Vec<Spoke> = CLUSTERS.iter().map(|(c, _)| f.spoke(&hub, c)).collect();
    for s in &spokes {
        wait_tag(s, "v1");
    }
    let [dev, staging, prod1, prod2] = &spokes[..] else {
        unreachable!()
    };

    // A new image in dev reaches dev only.
    f.repo.write(
        "apps/api/overlays/dev/kustomization.yaml",
        &overlay("dev", "v2"),
    );
    f.repo.commit("dev: api v2");
    hub.webhook();
    wait_tag(dev, "v2");
    wait_synced(&f, &hub, &["dev-1", "staging-1", "prod-1", "prod-2"]);
    assert!(staging.file(API_FILE).unwrap().contains("api:v1"));

    // staging and prod hold the same pins: nothing to promote, and no commit.
    let same = f.ctl_ok(
        &hub,
        &["promote", "api", "--from", "staging", "--to", "prod"],
    );
    assert!(same.contains("nothing to promote"), "{same}");

    // dev is synced and healthy at HEAD: the gate lets the promotion through.
    let out = f.ctl_ok(
        &hub,
        &["promote", "api", "--from", "dev", "--to", "staging"],
    );
    assert!(out.contains("committed"), "{out}");
    let msg = f.head_message();
    assert!(
        msg.starts_with("api: image ghcr.io/example/api v1 -> v2, from dev at "),
        "{msg}"
    );
    assert!(
        msg.contains("Promoted-From: dev")
            && msg.contains("Promoted-To: staging")
            && msg.contains("Promoted-Revision: "),
        "{msg}"
    );
    assert_eq!(
        f.repo.git(&["log", "-1", "--format=%an <%ae>"]),
        "Rita Release <rita@example.com>"
    );
    // Only the pin moved in the target overlay.
    let diff = f.repo.git(&["diff", "HEAD~1", "HEAD", "--stat"]);
    assert!(
        diff.contains("apps/api/overlays/staging/kustomization.yaml")
            && diff.contains("1 file changed, 1 insertion(+), 1 deletion(-)"),
        "{diff}"
    );
    hub.webhook();
    wait_tag(staging, "v2");
    assert!(prod1.file(API_FILE).unwrap().contains("api:v1"));
    wait_synced(&f, &hub, &["staging-1"]);

    // The gate refuses when the source environment does not run HEAD: stop
    // staging's spoke and commit a change it cannot apply.
    let mut spokes = spokes;
    let mut staging_stopped = spokes.remove(1);
    staging_stopped.proc.kill();
    f.repo.write(
        "apps/api/overlays/staging/kustomization.yaml",
        &overlay("staging", "v2").replace("# staging overlay", "# staging overlay, touched"),
    );
    f.repo.write(
        "apps/api/base/deployment.yaml",
        &DEPLOY.replace("replicas: 1", "replicas: 2"),
    );
    f.repo.commit("api: two replicas");
    hub.webhook();
    wait_until("hub to see the new commit", TIMEOUT, || {
        (cluster(&hub.status(&f.pki), "staging-1")["sync"] == "out_of_sync").then_some(())
    });
    let refused = f.ctl(
        &hub,
        &["promote", "api", "--from", "staging", "--to", "prod"],
    );
    assert!(
        !refused.status.success(),
        "gate let an out-of-sync environment promote"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("promotion refused") && err.contains("staging-1: runs"),
        "{err}"
    );

    // Forced promotion goes through and says so.
    f.ctl_ok(
        &hub,
        &[
            "promote", "api", "--from", "staging", "--to", "prod", "--force",
        ],
    );
    assert!(f.head_message().contains("Promotion-Forced: true"));
    hub.webhook();
    let prod1 = &spokes[1];
    let prod2 = &spokes[2];
    wait_tag(prod1, "v2");
    wait_tag(prod2, "v2");

    // Rollback prod: one commit restoring v1 on every prod cluster, and a freeze.
    let out = f.ctl_ok(
        &hub,
        &["rollback", "prod", "--reason", "v2 breaks checkout"],
    );
    assert!(out.contains("committed"), "{out}");
    let msg = f.head_message();
    assert!(
        msg.starts_with("rollback prod to ") && msg.contains("image ghcr.io/example/api v2 -> v1"),
        "{msg}"
    );
    let env_file = std::fs::read_to_string(f.repo.dir.join("environments/prod.yaml")).unwrap();
    assert!(
        env_file.contains("frozen:") && env_file.contains("v2 breaks checkout"),
        "{env_file}"
    );
    hub.webhook();
    wait_tag(prod1, "v1");
    wait_tag(prod2, "v1");

    // A frozen environment refuses promotions until unfreeze.
    let refused = f.ctl(
        &hub,
        &[
            "promote", "api", "--from", "staging", "--to", "prod", "--force",
        ],
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("environment prod is frozen"));
    f.ctl_ok(&hub, &["unfreeze", "prod"]);
    assert!(
        !std::fs::read_to_string(f.repo.dir.join("environments/prod.yaml"))
            .unwrap()
            .contains("frozen")
    );
    f.ctl_ok(
        &hub,
        &[
            "promote", "api", "--from", "staging", "--to", "prod", "--force",
        ],
    );
    hub.webhook();
    wait_tag(prod1, "v2");
    wait_synced(&f, &hub, &["prod-1", "prod-2"]);

    // History: who promoted what into prod, and when each cluster applied it.
    let h = f.ctl_ok(&hub, &["history", "prod"]);
    assert!(h.contains("Rita Release <rita@example.com>"), "{h}");
    assert!(h.contains("rollback prod to"), "{h}");
    assert!(
        h.contains("applied on prod-1 at") && h.contains("applied on prod-2 at"),
        "{h}"
    );
    assert!(
        !h.contains("dev: api v2"),
        "a dev-only commit is in prod's history:\n{h}"
    );

    // Offline diff between two revisions.
    let d = f.ctl_ok(
        &hub,
        &[
            "diff",
            "--from",
            "HEAD~1",
            "--to",
            "HEAD",
            "--cluster",
            "prod-1",
        ],
    );
    assert!(
        d.contains("-        image: ghcr.io/example/api:v1")
            || d.contains("-      - image: ghcr.io/example/api:v1"),
        "{d}"
    );
    assert!(d.contains("ghcr.io/example/api:v2"), "{d}");
}

#[test]
fn dry_run_changes_nothing_and_branch_pushes_for_review() {
    let f = Fleet::new(&[]);
    let hub = f.hub();
    f.repo.write(
        "apps/api/overlays/staging/kustomization.yaml",
        &overlay("staging", "v5"),
    );
    f.repo.commit("staging: api v5");
    let head = f.repo.git(&["rev-parse", "HEAD"]);

    let out = f.ctl_ok(
        &hub,
        &[
            "promote",
            "api",
            "--from",
            "staging",
            "--to",
            "prod",
            "--dry-run",
            "--force",
        ],
    );
    assert!(
        out.contains("-  newTag: v1") && out.contains("+  newTag: v5"),
        "{out}"
    );
    assert!(
        out.contains("cluster prod-1: 1 object(s) change")
            && out.contains("+      - image: ghcr.io/example/api:v5"),
        "{out}"
    );
    assert_eq!(
        f.repo.git(&["rev-parse", "HEAD"]),
        head,
        "dry run committed"
    );

    // A bare "origin" to push review branches to.
    let origin = f.work.path().join("origin.git");
    run(std::process::Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&f.repo.dir)
        .arg(&origin));
    f.repo
        .git(&["remote", "add", "origin", origin.to_str().unwrap()]);
    let out = f.ctl_ok(
        &hub,
        &[
            "promote",
            "api",
            "--from",
            "staging",
            "--to",
            "prod",
            "--force",
            "--branch",
            "promote-api-v5",
        ],
    );
    assert!(
        out.contains("pushed refs/heads/promote-api-v5 to origin"),
        "{out}"
    );
    assert_eq!(
        f.repo.git(&["rev-parse", "HEAD"]),
        head,
        "--branch moved the current branch"
    );
    let pushed = run(std::process::Command::new("git")
        .args(["log", "-1", "--format=%s", "promote-api-v5"])
        .current_dir(&origin));
    assert!(
        String::from_utf8_lossy(&pushed.stdout)
            .starts_with("api: image ghcr.io/example/api v1 -> v5")
    );

    // Someone pushed a branch of that name first: a clear error, and no local branch left behind.
    run(std::process::Command::new("git")
        .args(["branch", "promote-api-next", "main"])
        .current_dir(&origin));
    let again = f.ctl(
        &hub,
        &[
            "promote",
            "api",
            "--from",
            "staging",
            "--to",
            "prod",
            "--force",
            "--branch",
            "promote-api-next",
        ],
    );
    assert!(
        !again.status.success(),
        "push over someone else's branch succeeded"
    );
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("rejected") && err.contains("someone pushed first"),
        "{err}"
    );
    let local = run(std::process::Command::new("git")
        .args(["branch", "--list", "promote-api-next"])
        .current_dir(&f.repo.dir));
    assert!(
        String::from_utf8_lossy(&local.stdout).trim().is_empty(),
        "the local branch was left behind"
    );
    assert_eq!(f.repo.git(&["rev-parse", "HEAD"]), head);
}

#[test]
fn manual_sync_policy_and_sync_windows_hold_until_fleetctl_sync() {
    let f = Fleet::new(&[
        ("environments/staging.yaml", "sync:\n  policy: manual\n"),
        // A deny window that is always open.
        (
            "environments/prod.yaml",
            "sync:\n  windows:\n  - kind: deny\n    start: \"00:00\"\n    end: \"24:00\"\n",
        ),
    ]);
    f.pki.issue(&["admin", "tester"]);
    let hub = f.hub();
    let staging = f.spoke(&hub, "staging-1");
    let prod = f.spoke(&hub, "prod-1");
    // Nothing is released to manual or window-held clusters, even the first state.
    wait_until("staging held", TIMEOUT, || {
        let s = hub.status(&f.pki);
        let c = cluster(&s, "staging-1");
        (c["sync"] == "out_of_sync"
            && c["heldReason"]
                .as_str()
                .is_some_and(|r| r.contains("manual")))
        .then_some(())
    });
    let s = hub.status(&f.pki);
    assert!(
        cluster(&s, "prod-1")["heldReason"]
            .as_str()
            .unwrap()
            .contains("deny"),
        "{s}"
    );
    assert!(staging.file(API_FILE).is_none());

    f.ctl_ok(&hub, &["sync", "staging-1"]);
    wait_tag(&staging, "v1");

    let refused = f.ctl(&hub, &["sync", "prod-1"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("use --force"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(prod.file(API_FILE).is_none());
    f.ctl_ok(&hub, &["sync", "prod-1", "--force"]);
    wait_tag(&prod, "v1");
    let h = f.ctl_ok(&hub, &["history", "prod-1"]);
    assert!(h.contains("applied on prod-1"), "{h}");
}

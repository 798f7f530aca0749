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
            "promote" | "rollback" | "unfreeze" | "history" | "diff" | "approve" | "reject"
        );
        let takes_hub = matches!(
            cmd,
            "promote" | "history" | "sync" | "status" | "diff" | "rollout" | "rollback"
        );
        let takes_author = matches!(
            cmd,
            "promote" | "rollback" | "unfreeze" | "approve" | "reject"
        );
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
    let [dev, staging, prod1, _prod2] = &spokes[..] else {
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
        err.contains("promotion refused") && err.contains("staging-1: not connected"),
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
    wait_until(
        "staging held (manual) and prod held (deny window)",
        TIMEOUT,
        || {
            let s = hub.status(&f.pki);
            let held = |name: &str, why: &str| {
                s["clusters"]
                    .as_array()
                    .and_then(|a| a.iter().find(|c| c["name"] == name))
                    .is_some_and(|c| {
                        c["sync"] == "out_of_sync"
                            && c["heldReason"].as_str().is_some_and(|r| r.contains(why))
                    })
            };
            (held("staging-1", "manual") && held("prod-1", "deny")).then_some(())
        },
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
    wait_until("the history of prod-1 to show the apply", TIMEOUT, || {
        f.ctl_ok(&hub, &["history", "prod-1"])
            .contains("applied on prod-1")
            .then_some(())
    });
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn short(id: &str) -> &str {
    &id[..8]
}

/// Regression: the gate passed while a source cluster was disconnected (its
/// stale "synced" report counted), and a render error read "runs X, not X".
#[test]
fn gate_refuses_a_disconnected_source_cluster_and_names_render_errors() {
    let f = Fleet::new(&[]);
    let hub = f.hub();
    let mut dev = f.spoke(&hub, "dev-1");
    wait_tag(&dev, "v1");
    f.repo.write(
        "apps/api/overlays/dev/kustomization.yaml",
        &overlay("dev", "v2"),
    );
    f.repo.commit("dev: api v2");
    hub.webhook();
    wait_tag(&dev, "v2");
    wait_synced(&f, &hub, &["dev-1"]);

    // A render error at the source revision is named, not "runs X, not X".
    f.repo.write(
        "apps/api/overlays/dev/kustomization.yaml",
        &overlay("dev", "v3").replace("- ../../base", "- ../../base\n- missing.yaml"),
    );
    let broken = f.repo.commit("dev: api v3, with a typo");
    hub.webhook();
    wait_until("the hub to see the broken commit", TIMEOUT, || {
        (cluster(&hub.status(&f.pki), "dev-1")["desired"]["id"] == broken.as_str()).then_some(())
    });
    let refused = f.ctl(
        &hub,
        &["promote", "api", "--from", "dev", "--to", "staging"],
    );
    let err = stderr(&refused);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains("dev-1: the source revision")
            && err.contains("does not render for it: app api:"),
        "{err}"
    );
    assert!(err.contains("missing.yaml"), "{err}");
    let s = short(&broken);
    assert!(
        !err.contains(&format!("runs {s}")),
        "runs X, not X again:\n{err}"
    );

    // Fixed; then the spoke goes away: its last "synced" report must not count.
    f.repo.write(
        "apps/api/overlays/dev/kustomization.yaml",
        &overlay("dev", "v3"),
    );
    f.repo.commit("dev: api v3");
    hub.webhook();
    wait_tag(&dev, "v3");
    wait_synced(&f, &hub, &["dev-1"]);
    dev.proc.kill();
    wait_until("the hub to see dev-1 disconnected", TIMEOUT, || {
        (cluster(&hub.status(&f.pki), "dev-1")["connected"] == false).then_some(())
    });
    let head = f.repo.git(&["rev-parse", "HEAD"]);
    let refused = f.ctl(
        &hub,
        &["promote", "api", "--from", "dev", "--to", "staging"],
    );
    let err = stderr(&refused);
    assert!(
        !refused.status.success(),
        "the gate let a disconnected cluster pass:\n{err}"
    );
    assert!(
        err.contains("dev-1: not connected (last seen") && err.contains("--seen-within"),
        "{err}"
    );
    assert_eq!(
        f.repo.git(&["rev-parse", "HEAD"]),
        head,
        "a refused promotion committed"
    );
    // Within a stated bound, a recently seen cluster passes.
    let out = f.ctl_ok(
        &hub,
        &[
            "promote",
            "api",
            "--from",
            "dev",
            "--to",
            "staging",
            "--seen-within",
            "3600",
        ],
    );
    assert!(out.contains("committed"), "{out}");
}

const RENOVATE_OVERLAY: &str = "# prod overlay\nresources:\n- ../../base\nimages:\n# renovate: datasource=docker depName=ghcr.io/example/api\n- name: ghcr.io/example/api\n  newTag: v1   # pinned by release\n  # keep the digest out\nlabels:\n- pairs:\n    env: prod\n";

/// Regression: promote deleted a comment inside `images:` (a `# renovate:`
/// marker), and silently added a pin to an overlay that had none.
#[test]
fn promote_keeps_every_byte_but_the_pin_and_refuses_to_add_a_missing_pin() {
    let f = Fleet::new(&[
        (
            "apps/api/overlays/prod/kustomization.yaml",
            RENOVATE_OVERLAY,
        ),
        ("apps/web/app.yaml", "namespace: web\n"),
        (
            "apps/web/base/kustomization.yaml",
            "resources:\n- deployment.yaml\n",
        ),
        (
            "apps/web/base/deployment.yaml",
            &DEPLOY.replace("api", "web"),
        ),
        (
            "apps/web/overlays/staging/kustomization.yaml",
            "resources:\n- ../../base\nimages:\n- name: ghcr.io/example/web\n  newTag: v7\n",
        ),
        (
            "apps/web/overlays/prod/kustomization.yaml",
            "# no pins yet\nresources:\n- ../../base\n",
        ),
    ]);
    let hub = f.hub();
    f.repo.write(
        "apps/api/overlays/staging/kustomization.yaml",
        &overlay("staging", "v2"),
    );
    f.repo.commit("staging: api v2");
    f.ctl_ok(
        &hub,
        &[
            "promote", "api", "--from", "staging", "--to", "prod", "--force",
        ],
    );
    let now = std::fs::read_to_string(f.repo.dir.join("apps/api/overlays/prod/kustomization.yaml"))
        .unwrap();
    assert_eq!(
        now,
        RENOVATE_OVERLAY.replace("newTag: v1   #", "newTag: v2   #"),
        "promotion changed more than the pin"
    );
    let diff = f.repo.git(&["diff", "HEAD~1", "HEAD", "--numstat"]);
    assert_eq!(diff, "1\t1\tapps/api/overlays/prod/kustomization.yaml");

    // No pin for web in prod: refused, naming the overlay; nothing committed.
    let head = f.repo.git(&["rev-parse", "HEAD"]);
    let refused = f.ctl(
        &hub,
        &[
            "promote", "web", "--from", "staging", "--to", "prod", "--force",
        ],
    );
    let err = stderr(&refused);
    assert_eq!(refused.status.code(), Some(64), "{err}");
    assert!(
        err.contains(
            "apps/web/overlays/prod/kustomization.yaml has no pin for image ghcr.io/example/web"
        ) && err.contains("--add-pins"),
        "{err}"
    );
    assert_eq!(f.repo.git(&["rev-parse", "HEAD"]), head);
    // Asked to add it: added, the rest of the file kept.
    f.ctl_ok(
        &hub,
        &[
            "promote",
            "web",
            "--from",
            "staging",
            "--to",
            "prod",
            "--force",
            "--add-pins",
        ],
    );
    let web = std::fs::read_to_string(f.repo.dir.join("apps/web/overlays/prod/kustomization.yaml"))
        .unwrap();
    assert_eq!(
        web,
        "# no pins yet\nresources:\n- ../../base\nimages:\n- name: ghcr.io/example/web\n  newTag: v7\n"
    );
}

/// Regression: with concurrent promotions on one checkout, one exited 1
/// ("could not acquire index lock") although its commit landed, the index
/// kept an old pin (the next `git commit` reverted the promotion), and a
/// staged change to an unrelated file was lost.
#[test]
fn eight_concurrent_promoters_land_every_promotion_once_and_keep_the_index() {
    const APPS: usize = 8;
    const ROUNDS: usize = 5;
    let mut extra: Vec<(String, String)> = Vec::new();
    for i in 0..APPS {
        let app = format!("app{i}");
        extra.push((
            format!("apps/{app}/app.yaml"),
            format!("namespace: {app}\n"),
        ));
        extra.push((
            format!("apps/{app}/base/kustomization.yaml"),
            "resources:\n- deployment.yaml\n".into(),
        ));
        extra.push((
            format!("apps/{app}/base/deployment.yaml"),
            DEPLOY.replace("api", &app),
        ));
        for env in ["staging", "prod"] {
            extra.push((
                format!("apps/{app}/overlays/{env}/kustomization.yaml"),
                format!("# {app} {env}\nresources:\n- ../../base\nimages:\n- name: ghcr.io/example/{app}\n  newTag: r0\n"),
            ));
        }
    }
    let refs: Vec<(&str, &str)> = extra
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let f = Fleet::new(&refs);
    let repo = f.repo.dir.to_str().unwrap().to_string();
    for round in 1..=ROUNDS {
        for i in 0..APPS {
            f.repo.write(
                &format!("apps/app{i}/overlays/staging/kustomization.yaml"),
                &format!("# app{i} staging\nresources:\n- ../../base\nimages:\n- name: ghcr.io/example/app{i}\n  newTag: r{round}\n"),
            );
        }
        let source = f.repo.commit(&format!("staging: round {round}"));
        // A user's staged change to an unrelated file.
        f.repo.write("NOTES.md", &format!("round {round}\n"));
        f.repo.git(&["add", "NOTES.md"]);
        let children: Vec<_> = (0..APPS)
            .map(|i| {
                std::process::Command::new(bin("fleetctl"))
                    .args([
                        "promote",
                        &format!("app{i}"),
                        "--from",
                        "staging",
                        "--to",
                        "prod",
                        "--force",
                    ])
                    .args([
                        "--repo",
                        &repo,
                        "--author",
                        "Pat Promoter <pat@example.com>",
                    ])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (i, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            let err = stderr(&out);
            assert!(
                out.status.success(),
                "round {round}: promoter {i} failed: {err}"
            );
            assert!(!err.to_lowercase().contains("lock"), "round {round}: {err}");
            assert!(
                String::from_utf8_lossy(&out.stdout).contains("committed"),
                "round {round}: promoter {i} did not commit"
            );
        }
        let log = f
            .repo
            .git(&["log", "--format=%B%x00", &format!("{source}..HEAD")]);
        // A promoter gates the branch tip it starts on: the staging commit or
        // one of the other promoters' commits on top of it (same staging pins).
        let mut gated: Vec<String> = f
            .repo
            .git(&["rev-list", &format!("{source}..HEAD")])
            .lines()
            .map(String::from)
            .collect();
        gated.push(source.to_string());
        for i in 0..APPS {
            let landed = log
                .split('\0')
                .filter(|m| {
                    m.contains(&format!("Promoted-App: app{i}\n"))
                        && m.lines().any(|l| {
                            l.strip_prefix("Promoted-Revision: ")
                                .is_some_and(|r| gated.iter().any(|g| g == r))
                        })
                })
                .count();
            assert_eq!(
                landed, 1,
                "round {round}: app{i} landed {landed} times:\n{log}"
            );
            let at_head = f.repo.git(&[
                "show",
                &format!("HEAD:apps/app{i}/overlays/prod/kustomization.yaml"),
            ]);
            assert!(
                at_head.contains(&format!("newTag: r{round}")),
                "round {round}: {at_head}"
            );
        }
        assert_eq!(
            f.repo
                .git(&["rev-list", "--count", &format!("{source}..HEAD")]),
            APPS.to_string()
        );
        // The index matches HEAD for every edited file; the staged note is still staged.
        assert_eq!(
            f.repo.git(&["diff", "--cached", "--name-only"]),
            "NOTES.md",
            "round {round}"
        );
        assert_eq!(
            f.repo.git(&["status", "--porcelain"]),
            "A  NOTES.md".replace('A', if round == 1 { "A" } else { "M" }),
            "round {round}"
        );
        // A plain `git commit` now commits the note and reverts nothing.
        f.repo.git(&["commit", "-q", "-m", "notes"]);
        assert_eq!(
            f.repo.git(&["diff", "HEAD~1", "HEAD", "--name-only"]),
            "NOTES.md"
        );
    }
    // A dirty edited file is refused, naming it; nothing commits.
    let file = "apps/app0/overlays/prod/kustomization.yaml";
    let clean = std::fs::read_to_string(f.repo.dir.join(file)).unwrap();
    f.repo.write(file, &format!("{clean}# local edit\n"));
    f.repo.write(
        "apps/app0/overlays/staging/kustomization.yaml",
        "resources:\n- ../../base\nimages:\n- name: ghcr.io/example/app0\n  newTag: r99\n",
    );
    f.repo
        .git(&["add", "apps/app0/overlays/staging/kustomization.yaml"]);
    f.repo.git(&["commit", "-q", "-m", "staging: app0 r99"]);
    let head = f.repo.git(&["rev-parse", "HEAD"]);
    let out = fleetctl(&[
        "promote",
        "app0",
        "--from",
        "staging",
        "--to",
        "prod",
        "--force",
        "--repo",
        &repo,
        "--author",
        "P <p@example.com>",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("{file} has uncommitted changes")),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.repo.git(&["rev-parse", "HEAD"]), head);
}

/// Regression: bad input exited 0 ("nothing to promote", "prdo is not
/// frozen", a rollback of a cluster with no overrides froze all of prod).
#[test]
fn bad_input_exits_non_zero_naming_it_and_listing_what_exists() {
    let f = Fleet::new(&[]);
    let hub = f.hub();
    let head = f.repo.git(&["rev-parse", "HEAD"]);
    let cases: &[(&[&str], Option<i32>, &[&str])] = &[
        (
            &[
                "promote", "api", "--from", "staging", "--to", "staging", "--force",
            ],
            Some(64),
            &["--from and --to are both staging"],
        ),
        (
            &[
                "promote", "api", "--from", "staging", "--to", "prdo", "--force",
            ],
            Some(64),
            &[
                "no environment \"prdo\"",
                "environments: dev, prod, staging",
            ],
        ),
        (
            &[
                "promote", "apo", "--from", "staging", "--to", "prod", "--force",
            ],
            Some(64),
            &["no app \"apo\"", "apps: api"],
        ),
        (
            &["unfreeze", "prdo"],
            Some(64),
            &[
                "no environment \"prdo\"",
                "environments: dev, prod, staging",
            ],
        ),
        (&["unfreeze", "prod"], Some(64), &["prod is not frozen"]),
        (
            &["rollback", "prod-1", "--to", "HEAD"],
            Some(64),
            &["cluster prod-1 has no overrides", "fleetctl rollback prod"],
        ),
        (
            &["rollback", "prdo"],
            Some(64),
            &[
                "\"prdo\" is neither a cluster nor an environment",
                "environments: dev, prod, staging",
                "clusters: dev-1, prod-1, prod-2, staging-1",
            ],
        ),
        (
            &["history", "prdo"],
            Some(64),
            &[
                "\"prdo\" is not a cluster, an app or an environment",
                "clusters: dev-1",
            ],
        ),
        (
            &["sync", "prod-9"],
            Some(1),
            &[
                "cluster prod-9 is not in the fleet repo",
                "clusters: dev-1, prod-1, prod-2, staging-1",
            ],
        ),
    ];
    for (args, code, wants) in cases {
        let out = f.ctl(&hub, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "fleetctl {args:?} exited 0:\n{err}");
        if let Some(c) = code {
            assert_eq!(out.status.code(), Some(*c), "fleetctl {args:?}:\n{err}");
        }
        for w in *wants {
            assert!(err.contains(w), "fleetctl {args:?}: no {w:?} in:\n{err}");
        }
        assert_eq!(
            f.repo.git(&["rev-parse", "HEAD"]),
            head,
            "fleetctl {args:?} committed"
        );
        assert_eq!(
            f.repo.git(&["status", "--porcelain"]),
            "",
            "fleetctl {args:?} left changes"
        );
    }
}

/// Regression: `sync --force` was logged by the hub but absent from
/// `fleetctl history`; the rollback reason was in neither the commit nor
/// history; unfreeze was absent from history and took no `--reason`.
#[test]
fn history_shows_forced_syncs_rollback_reasons_and_unfreezes() {
    let f = Fleet::new(&[(
        "environments/prod.yaml",
        "# prod: no automatic syncs\nsync:\n  windows:\n  - kind: deny\n    start: \"00:00\"\n    end: \"24:00\"\n",
    )]);
    let hub = f.hub();
    let prod = f.spoke(&hub, "prod-1");
    wait_until("the hub to read prod-1 from the repo", TIMEOUT, || {
        let s = hub.status(&f.pki);
        s["clusters"]
            .as_array()?
            .iter()
            .any(|c| c["name"] == "prod-1")
            .then_some(())
    });
    f.ctl_ok(
        &hub,
        &["sync", "prod-1", "--force", "--reason", "hotfix INC-42"],
    );
    wait_tag(&prod, "v1");
    f.repo.write(
        "apps/api/overlays/staging/kustomization.yaml",
        &overlay("staging", "v2"),
    );
    f.repo.commit("staging: api v2");
    f.ctl_ok(
        &hub,
        &[
            "promote", "api", "--from", "staging", "--to", "prod", "--force",
        ],
    );
    f.ctl_ok(
        &hub,
        &["rollback", "prod", "--reason", "v2 breaks checkout"],
    );
    let msg = f.head_message();
    assert!(
        msg.lines().any(|l| l == "Reason: v2 breaks checkout"),
        "{msg}"
    );
    // The freeze edit kept the comment and the windows of the environment file.
    let env = std::fs::read_to_string(f.repo.dir.join("environments/prod.yaml")).unwrap();
    assert!(
        env.starts_with("# prod: no automatic syncs\nsync:\n  windows:\n"),
        "{env}"
    );
    // Frozen: a second rollback is a break-glass and needs a reason.
    let refused = f.ctl(&hub, &["rollback", "prod", "--to", "HEAD~3"]);
    assert_eq!(refused.status.code(), Some(64), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("break-glass"),
        "{}",
        stderr(&refused)
    );
    f.ctl_ok(&hub, &["unfreeze", "prod", "--reason", "fixed in v3"]);
    let env = std::fs::read_to_string(f.repo.dir.join("environments/prod.yaml")).unwrap();
    assert!(
        !env.contains("frozen") && env.starts_with("# prod: no automatic syncs\n"),
        "{env}"
    );
    let h = f.ctl_ok(&hub, &["history", "prod"]);
    for want in [
        "sync --force by rm on prod-1",
        "why: hotfix INC-42 (closed window:",
        "rollback prod to",
        "why: v2 breaks checkout",
        "unfreeze prod: fixed in v3",
        "why: fixed in v3",
        "Rita Release <rita@example.com>",
        "revisions: ",
    ] {
        assert!(h.contains(want), "no {want:?} in history:\n{h}");
    }
}

/// Regression: `fleetctl diff CLUSTER` said "in sync" while a promotion was
/// held for the cluster: it compared with the released state, not the latest commit.
#[test]
fn live_diff_compares_with_the_latest_commit_while_a_sync_is_held() {
    let f = Fleet::new(&[("environments/staging.yaml", "sync:\n  policy: manual\n")]);
    let hub = f.hub();
    let staging = f.spoke(&hub, "staging-1");
    // `sync` before the hub's first render is refused as "not rendered yet".
    wait_until("the hub to hold v1 for staging-1", TIMEOUT, || {
        let s = hub.status(&f.pki);
        s["clusters"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["name"] == "staging-1"))
            .is_some_and(|c| c["heldReason"].is_string())
            .then_some(())
    });
    f.ctl_ok(&hub, &["sync", "staging-1"]);
    wait_tag(&staging, "v1");
    wait_synced(&f, &hub, &["staging-1"]);
    let d = f.ctl_ok(&hub, &["diff", "staging-1"]);
    assert!(d.contains("in sync"), "{d}");
    f.repo.write(
        "apps/api/overlays/staging/kustomization.yaml",
        &overlay("staging", "v2"),
    );
    let held = f.repo.commit("staging: api v2");
    hub.webhook();
    wait_until("the hub to hold v2 for staging-1", TIMEOUT, || {
        let s = hub.status(&f.pki);
        let c = cluster(&s, "staging-1");
        (c["desired"]["id"] == held.as_str() && c["heldReason"].is_string()).then_some(())
    });
    let d = f.ctl_ok(&hub, &["diff", "staging-1"]);
    assert!(
        d.contains(&format!(
            "compared with the latest commit {}, held from the spoke (manual sync policy",
            short(&held)
        )),
        "{d}"
    );
    assert!(
        d.contains("1 object(s) would change") && d.contains("ghcr.io/example/api:v2"),
        "{d}"
    );
    assert!(
        staging.file(API_FILE).unwrap().contains("api:v1"),
        "the diff applied"
    );
}

const PROD_ROLLOUT: &str = "# prod rolls out in rings\nrollout:\n  soak: 2s\n  waves:\n  - name: canary\n    selector:\n      matchLabels: {ring: canary}\n  - name: early\n    maxParallel: 1\n    selector:\n      matchLabels: {ring: early}\n";

/// Puts a plain file where the spoke writes the directory `dir`, so the next apply
/// there fails. The spoke heals drift meanwhile and may restore the directory at any
/// moment: the directory is moved aside in one rename and the file created only if
/// nothing is there, until the file stands.
fn block_with_a_file(dir: &std::path::Path) {
    for attempt in 0..50 {
        let aside = dir.with_extension(format!("aside-{attempt}"));
        match std::fs::rename(dir, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("moving {} aside: {e}", dir.display()),
        }
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir)
            .and_then(|mut file| std::io::Write::write_all(&mut file, b"not a directory\n"));
        match created {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("writing {}: {e}", dir.display()),
        }
    }
    panic!("{} kept coming back as a directory", dir.display());
}

/// `fleetctl rollout status prod -o json` (null until the hub has read the repo).
fn rollout_json(f: &Fleet, hub: &Hub) -> serde_json::Value {
    let out = f.ctl(hub, &["rollout", "status", "prod", "-o", "json"]);
    if !out.status.success() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(&out.stdout).unwrap()
}

fn wait_rollout(
    f: &Fleet,
    hub: &Hub,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    wait_until(what, Duration::from_secs(60), || {
        let r = rollout_json(f, hub);
        pred(&r).then_some(r)
    })
}

use std::time::Duration;

/// Progressive rollout inside an environment: waves by label selector,
/// parallelism, soak, a health gate and an automatic pause naming the
/// degraded cluster and its objects; pause, resume and abort; a
/// break-glass rollback.
#[test]
fn rollout_goes_wave_by_wave_pauses_on_a_degraded_cluster_and_allows_a_break_glass_rollback() {
    let f = Fleet::new(&[
        ("environments/prod.yaml", PROD_ROLLOUT),
        (
            "clusters/prod-1.yaml",
            "name: prod-1\nlabels: {env: prod, ring: canary}\n",
        ),
        (
            "clusters/prod-2.yaml",
            "name: prod-2\nlabels: {env: prod, ring: early}\n",
        ),
        (
            "clusters/prod-3.yaml",
            "name: prod-3\nlabels: {env: prod, ring: early}\n",
        ),
        (
            "clusters/prod-4.yaml",
            "name: prod-4\nlabels: {env: prod}\n",
        ),
    ]);
    for c in ["prod-3", "prod-4"] {
        f.pki.issue(&["spoke", c]);
    }
    let hub = f.hub();
    let names = ["prod-1", "prod-2", "prod-3", "prod-4"];
    let spokes: Vec<Spoke> = names.iter().map(|c| f.spoke(&hub, c)).collect();
    // The first revision rolls out too, wave by wave.
    wait_rollout(&f, &hub, "the first rollout to finish", |r| {
        r["phase"] == "done"
    });
    for s in &spokes {
        wait_tag(s, "v1");
    }

    f.repo.write(
        "apps/api/overlays/prod/kustomization.yaml",
        &overlay("prod", "v2"),
    );
    let v2 = f.repo.commit("prod: api v2");
    hub.webhook();
    // While the canary soaks, no later wave is released v2 (one status
    // snapshot: the clusters are read before the rollout, which only moves on).
    let s = wait_until(
        "the canary wave to soak v2",
        Duration::from_secs(60),
        || {
            let s = hub.status(&f.pki);
            let r = &s["rollouts"][0];
            (r["revision"]["id"] == v2.as_str() && r["waves"][0]["phase"] == "soaking").then_some(s)
        },
    );
    assert_eq!(s["rollouts"][0]["waveInProgress"], "canary", "{s}");
    assert_eq!(s["rollouts"][0]["wave"], 1, "{s}");
    let canary = cluster(&s, "prod-1");
    assert_eq!(canary["releasedDigest"], canary["desiredDigest"], "{s}");
    for c in ["prod-2", "prod-3", "prod-4"] {
        let c = cluster(&s, c);
        assert_ne!(
            c["releasedDigest"], c["desiredDigest"],
            "a later wave got v2 during the canary's soak: {s}"
        );
    }
    let held = cluster(&s, "prod-4")["heldReason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        held.contains("wave 3/3 (rest) waits for wave 1/3 (canary)"),
        "{held}"
    );
    let r = wait_rollout(&f, &hub, "the v2 rollout to finish", |r| {
        r["phase"] == "done" && r["revision"]["id"] == v2.as_str()
    });
    for s in &spokes {
        wait_tag(s, "v2");
    }
    let waves = r["waves"].as_array().unwrap();
    assert_eq!(waves.len(), 3, "{r}");
    assert_eq!(
        waves[1]["clusters"],
        serde_json::json!(["prod-2", "prod-3"])
    );
    assert_eq!(waves[1]["maxParallel"], 1);
    assert_eq!(waves[2]["name"], "rest");
    for (i, w) in waves.iter().enumerate() {
        let (started, synced, finished) = (
            w["startedAt"].as_i64().unwrap(),
            w["syncedAt"].as_i64().unwrap(),
            w["finishedAt"].as_i64().unwrap(),
        );
        assert!(
            started <= synced && synced + w["soakSeconds"].as_i64().unwrap() <= finished,
            "wave {i} did not soak: {w}"
        );
        if i > 0 {
            assert!(
                waves[i - 1]["finishedAt"].as_i64().unwrap() <= started,
                "wave {i} started before wave {} finished: {r}",
                i - 1
            );
        }
    }
    println!(
        "fleetctl rollout status prod:\n{}",
        f.ctl_ok(&hub, &["rollout", "status", "prod"])
    );

    // The canary cannot apply v3: the rollout pauses, naming it and its object.
    let target = &spokes[0].target;
    block_with_a_file(&target.join("api"));
    f.repo.write(
        "apps/api/overlays/prod/kustomization.yaml",
        &overlay("prod", "v3"),
    );
    let v3 = f.repo.commit("prod: api v3");
    hub.webhook();
    let r = wait_rollout(&f, &hub, "the v3 rollout to pause on the canary", |r| {
        r["revision"]["id"] == v3.as_str() && r["phase"] == "paused"
    });
    let reason = r["reason"].as_str().unwrap();
    assert!(
        reason
            .starts_with("wave 1/3 (canary): prod-1 is degraded: Deployment.apps/api/api (api): "),
        "{r}"
    );
    assert_eq!(r["by"], "the hub");
    let s = hub.status(&f.pki);
    let held = cluster(&s, "prod-2")["heldReason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(held.contains("paused by the hub"), "{held}");
    assert!(spokes[1].file(API_FILE).unwrap().contains("api:v2"));

    // A rollback while paused is a break-glass: it needs a reason, then goes everywhere at once.
    let refused = f.ctl(&hub, &["rollback", "prod", "--to", &v2]);
    assert_eq!(refused.status.code(), Some(64), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("the rollout of prod is paused")
            && stderr(&refused).contains("--reason"),
        "{}",
        stderr(&refused)
    );
    std::fs::remove_file(target.join("api")).unwrap();
    f.ctl_ok(
        &hub,
        &[
            "rollback",
            "prod",
            "--to",
            &v2,
            "--reason",
            "v3 breaks the canary",
        ],
    );
    assert!(
        f.head_message()
            .contains("Break-Glass: the rollout of prod is paused"),
        "{}",
        f.head_message()
    );
    hub.webhook();
    let r = wait_rollout(&f, &hub, "the rollback to go out at once", |r| {
        r["immediate"] == true && r["phase"] == "done"
    });
    assert_eq!(
        r["waves"][2]["released"],
        serde_json::json!(["prod-4"]),
        "{r}"
    );
    for s in &spokes {
        wait_tag(s, "v2");
    }
    let h = f.ctl_ok(&hub, &["history", "prod"]);
    for want in [
        "rollout of",
        "paused at wave 1/3 (canary)",
        "why: prod-1 is degraded",
        "break-glass: the rollout of prod is paused",
        "why: v3 breaks the canary",
        "released to every cluster of prod at once",
    ] {
        assert!(h.contains(want), "no {want:?} in history:\n{h}");
    }

    // By hand: pause, resume, abort.
    f.repo.write(
        "apps/api/overlays/prod/kustomization.yaml",
        &overlay("prod", "v4"),
    );
    let v4 = f.repo.commit("prod: api v4");
    hub.webhook();
    wait_rollout(&f, &hub, "the v4 rollout to start", |r| {
        r["revision"]["id"] == v4.as_str() && r["phase"] == "progressing"
    });
    let out = f.ctl_ok(
        &hub,
        &["rollout", "pause", "prod", "--reason", "change freeze"],
    );
    assert!(
        out.contains("rollout paused") && out.contains("paused by rm: change freeze"),
        "{out}"
    );
    let again = f.ctl(&hub, &["rollout", "pause", "prod"]);
    assert!(
        !again.status.success()
            && stderr(&again).contains("only a progressing rollout can be paused"),
        "{}",
        stderr(&again)
    );
    f.ctl_ok(&hub, &["rollout", "resume", "prod"]);
    let out = f.ctl_ok(&hub, &["rollout", "abort", "prod", "--reason", "not today"]);
    assert!(out.contains("rollout aborted"), "{out}");
    assert!(
        spokes[3].file(API_FILE).unwrap().contains("api:v2"),
        "an aborted rollout reached the last wave"
    );
    let unknown = f.ctl(&hub, &["rollout", "status", "staging"]);
    assert!(
        !unknown.status.success()
            && stderr(&unknown).contains("environment staging has no rollout"),
        "{}",
        stderr(&unknown)
    );
    let h = f.ctl_ok(&hub, &["history", "prod-1"]);
    assert!(
        h.contains("rollout pause by rm")
            && h.contains("why: change freeze")
            && h.contains("rollout abort by rm"),
        "{h}"
    );
}

/// Promotion policy: an env order, the source environment healthy at the
/// revision for a soak, required approvals recorded as commit trailers, and
/// a rejected release that is never promoted again (not even with --force).
#[test]
fn promotion_policy_env_order_source_soak_approvals_and_rejected_releases() {
    let policy = |soak: &str| {
        format!(
            "# prod takes releases from staging only\npromotion:\n  from: [staging]\n  soak: {soak}\n  approvals: 2\n"
        )
    };
    let f = Fleet::new(&[("environments/prod.yaml", &policy("1h"))]);
    let hub = f.hub();
    let staging = f.spoke(&hub, "staging-1");
    let _dev = f.spoke(&hub, "dev-1");
    f.repo.write(
        "apps/api/overlays/staging/kustomization.yaml",
        &overlay("staging", "v2"),
    );
    let v2 = f.repo.commit("staging: api v2");
    hub.webhook();
    wait_tag(&staging, "v2");
    wait_synced(&f, &hub, &["staging-1", "dev-1"]);

    let refused = f.ctl(
        &hub,
        &["promote", "api", "--from", "dev", "--to", "prod", "--force"],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("prod is promoted from staging only"),
        "{}",
        stderr(&refused)
    );

    let refused = f.ctl(
        &hub,
        &["promote", "api", "--from", "staging", "--to", "prod"],
    );
    assert!(
        stderr(&refused).contains("prod needs 2 approval(s) of this release, it has 0")
            && stderr(&refused).contains("fleetctl approve"),
        "{}",
        stderr(&refused)
    );
    for who in [
        "Ann Approver <ann@example.com>",
        "Bob Approver <bob@example.com>",
    ] {
        let out = fleetctl_ok(&[
            "approve",
            &v2,
            "--from",
            "staging",
            "--to",
            "prod",
            "--reason",
            "looks good",
            "--repo",
            f.repo.dir.to_str().unwrap(),
            "--author",
            who,
        ]);
        assert!(out.contains("committed"), "{out}");
    }
    assert!(
        f.head_message()
            .contains(&format!("Approved-Revision: {v2}")),
        "{}",
        f.head_message()
    );
    // Approved, but staging has not soaked for an hour (once staging-1 is in
    // sync at the approval commits: until then the gate refuses for that).
    let refused = wait_until("the soak refusal", TIMEOUT, || {
        let o = f.ctl(
            &hub,
            &["promote", "api", "--from", "staging", "--to", "prod"],
        );
        assert!(!o.status.success(), "promoted before the soak");
        (!stderr(&o).contains("out of sync")).then_some(o)
    });
    assert!(
        stderr(&refused).contains("staging-1: healthy at the revision for")
            && stderr(&refused).contains("the promotion policy of prod needs 3600s (soak)"),
        "{}",
        stderr(&refused)
    );
    f.repo.write("environments/prod.yaml", &policy("1s"));
    f.repo.commit("prod: soak 1s");
    let out = wait_until("the soak to pass", TIMEOUT, || {
        let o = f.ctl(
            &hub,
            &["promote", "api", "--from", "staging", "--to", "prod"],
        );
        let err = stderr(&o);
        // Until staging-1 acknowledged the policy commit it is out of sync
        // at the hub's revision: the gate refuses that too, rightly.
        assert!(
            o.status.success() || err.contains("(soak)") || err.contains("out of sync"),
            "{err}"
        );
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    });
    assert!(out.contains("committed"), "{out}");
    let msg = f.head_message();
    assert!(
        msg.contains("Approved-By: Ann Approver <ann@example.com>")
            && msg.contains("Approved-By: Bob Approver <bob@example.com>"),
        "{msg}"
    );

    // Rejected: v2 never goes anywhere again.
    f.ctl_ok(&hub, &["reject", &v2, "--reason", "CVE-2026-1234"]);
    let refused = f.ctl(
        &hub,
        &[
            "promote", "api", "--from", "staging", "--to", "dev", "--force",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("image ghcr.io/example/api v2 was rejected in")
            && stderr(&refused).contains("CVE-2026-1234"),
        "{}",
        stderr(&refused)
    );
    let h = f.ctl_ok(&hub, &["history", "prod"]);
    assert!(
        h.contains("approve ") && h.contains("Ann Approver") && h.contains("reject "),
        "{h}"
    );
}

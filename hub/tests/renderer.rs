//! The renderer against a real Git repository (made with `git`, read with gix):
//! render once per distinct input, re-render only the app a commit changed,
//! keep the last good version of an app that breaks.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use fleet_hub::renderer::Renderer;
use fleet_hub::repo::{Repo, Source};

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "T")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "T")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write(dir: &Path, path: &str, content: &str) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

fn commit(dir: &Path, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

fn cm(name: &str, v: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: \"{v}\"\n")
}

/// 30 clusters over 3 environments, 3 apps: `web` (per-env overlay), `api` and `jobs` (base only).
fn fleet(dir: &Path) {
    git(dir, &["init", "-q", "-b", "main"]);
    for i in 0..30 {
        let env = ["dev", "staging", "prod"][i % 3];
        write(
            dir,
            &format!("clusters/c{i}.yaml"),
            &format!("name: c{i}\nlabels: {{env: {env}}}\n"),
        );
    }
    for app in ["web", "api", "jobs"] {
        write(
            dir,
            &format!("apps/{app}/app.yaml"),
            &format!("namespace: {app}\n"),
        );
        write(dir, &format!("apps/{app}/base/cm.yaml"), &cm(app, "1"));
    }
    write(
        dir,
        "apps/web/base/kustomization.yaml",
        "resources:\n- cm.yaml\n",
    );
    for env in ["dev", "staging", "prod"] {
        write(
            dir,
            &format!("apps/web/overlays/{env}/kustomization.yaml"),
            &format!("resources:\n- ../../base\nnameSuffix: -{env}\n"),
        );
    }
}

fn render(
    repo: &Repo,
    r: &mut Renderer,
    prev: &BTreeMap<String, fleet_render::DesiredState>,
) -> fleet_hub::renderer::FleetRender {
    let head = repo.resolve("main").unwrap();
    let tree = repo.tree_at(&head.id).unwrap();
    r.render(&tree, &head, prev).unwrap()
}

#[test]
fn renders_once_per_distinct_input_and_only_the_changed_app() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let mut r = Renderer::new();

    let first = render(&repo, &mut r, &BTreeMap::new());
    assert_eq!(first.states.len(), 30);
    // web: 3 overlays; api and jobs: one base each. 90 app renders needed, 5 computed.
    assert_eq!(first.stats.rendered, 5, "{:?}", first.stats);
    assert_eq!(first.stats.reused, 85);
    assert_eq!(first.stats.dirs_selected, 90);

    // A commit that changes `api` only: one render, everything else reused.
    write(dir.path(), "apps/api/base/cm.yaml", &cm("api", "2"));
    commit(dir.path(), "api: 2");
    let second = render(&repo, &mut r, &first.states);
    assert_eq!(second.stats.rendered, 1, "{:?}", second.stats);
    assert_eq!(second.stats.reused, 89);
    // Only `api`'s tree changed: its directory is chosen again on each
    // cluster, web's and jobs' are those chosen last time.
    assert_eq!(second.stats.dirs_selected, 30, "{:?}", second.stats);
    let unchanged = first.states["c0"].apps["web"].resources[0].digest.clone();
    assert_eq!(
        second.states["c0"].apps["web"].resources[0].digest,
        unchanged
    );
    assert_ne!(
        second.states["c0"].apps["api"].resources[0].digest,
        first.states["c0"].apps["api"].resources[0].digest
    );
}

#[test]
fn a_broken_app_keeps_its_last_good_version_per_cluster() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let mut r = Renderer::new();
    let first = render(&repo, &mut r, &BTreeMap::new());

    write(
        dir.path(),
        "apps/jobs/base/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n",
    );
    write(dir.path(), "apps/api/base/cm.yaml", &cm("api", "3"));
    let c2 = commit(dir.path(), "break jobs, change api");
    let second = render(&repo, &mut r, &first.states);
    let s = &second.states["c4"];
    assert_eq!(s.commit.id, c2);
    let jobs = &s.apps["jobs"];
    assert_eq!(
        jobs.resources, first.states["c4"].apps["jobs"].resources,
        "jobs lost its last good resources"
    );
    assert_eq!(s.revision_of(jobs), first.commit.id);
    let e = jobs.error.as_ref().expect("the error is recorded");
    assert_eq!(e.file, "apps/jobs/base/cm.yaml");
    assert_eq!(s.revision_of(&s.apps["api"]), c2);
    assert!(s.apps["web"].error.is_none());
}

#[test]
fn same_commit_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let a = render(&repo, &mut Renderer::new(), &BTreeMap::new());
    let b = render(&repo, &mut Renderer::new(), &BTreeMap::new());
    for (c, s) in &a.states {
        assert_eq!(
            fleet_proto::convert::encode_state(s),
            fleet_proto::convert::encode_state(&b.states[c])
        );
    }
}

/// Every state of `got` equals a cold renderer's at the same commit, given
/// the same previous states.
fn assert_same_as_cold(
    repo: &Repo,
    got: &fleet_hub::renderer::FleetRender,
    prev: &BTreeMap<String, fleet_render::DesiredState>,
) {
    let cold = render(repo, &mut Renderer::new(), prev);
    assert_eq!(got.states.len(), cold.states.len());
    for (c, s) in &cold.states {
        assert_eq!(&got.states[c], s, "cluster {c} differs from a cold render");
    }
}

#[test]
fn a_cluster_whose_inputs_did_not_change_moves_to_the_new_commit_without_being_assembled() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let mut r = Renderer::new();
    let first = render(&repo, &mut r, &BTreeMap::new());
    assert_eq!(first.stats.clusters_reused, 0);

    // Nothing a cluster reads changed: every state moves to the new commit.
    write(dir.path(), "README.md", "the fleet\n");
    let c2 = commit(dir.path(), "readme");
    let second = render(&repo, &mut r, &first.states);
    assert_eq!(second.stats.clusters_reused, 30, "{:?}", second.stats);
    assert_eq!(second.stats.rendered, 0);
    for s in second.states.values() {
        assert_eq!(s.commit.id, c2);
        assert!(s.apps.values().all(|a| s.revision_of(a) == c2));
        assert!(
            Arc::ptr_eq(&s.apps, &first.states[&s.cluster].apps),
            "a state moved to a new commit shares its apps"
        );
        assert_eq!(s.digest, first.states[&s.cluster].digest);
    }
    assert_same_as_cold(&repo, &second, &first.states);

    // One environment's overlay: only its 10 clusters are assembled again.
    write(
        dir.path(),
        "apps/web/overlays/prod/kustomization.yaml",
        "resources:\n- ../../base\nnameSuffix: -production\n",
    );
    commit(dir.path(), "web: prod suffix");
    let third = render(&repo, &mut r, &second.states);
    // The app's tree changed, so every cluster running web is assembled again.
    assert_eq!(third.stats.clusters_reused, 0, "{:?}", third.stats);
    assert_same_as_cold(&repo, &third, &second.states);

    // A cluster's labels: that cluster only.
    write(
        dir.path(),
        "clusters/c4.yaml",
        "name: c4\nlabels: {env: prod}\n",
    );
    commit(dir.path(), "c4 to prod");
    let fourth = render(&repo, &mut r, &third.states);
    assert_eq!(fourth.stats.clusters_reused, 29, "{:?}", fourth.stats);
    assert!(
        fourth.states["c4"].apps["web"].resources[0]
            .id
            .name
            .ends_with("-production")
    );
    assert_same_as_cold(&repo, &fourth, &third.states);

    // Previous states the renderer did not make (a restarted hub's): assembled.
    let mut foreign = fourth.states.clone();
    Arc::make_mut(&mut foreign.get_mut("c1").unwrap().apps).remove("jobs");
    foreign.get_mut("c1").unwrap().digest = "other".into();
    write(dir.path(), "README.md", "the fleet, again\n");
    commit(dir.path(), "readme again");
    let fifth = render(&repo, &mut r, &foreign);
    assert_eq!(fifth.stats.clusters_reused, 29, "{:?}", fifth.stats);
    assert_same_as_cold(&repo, &fifth, &foreign);
}

#[test]
fn a_kept_last_good_app_stays_kept_when_its_cluster_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    let c1 = commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let mut r = Renderer::new();
    let first = render(&repo, &mut r, &BTreeMap::new());
    write(
        dir.path(),
        "apps/jobs/base/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [\n",
    );
    commit(dir.path(), "break jobs");
    let second = render(&repo, &mut r, &first.states);
    write(dir.path(), "README.md", "x\n");
    let c3 = commit(dir.path(), "readme");
    let third = render(&repo, &mut r, &second.states);
    assert_eq!(third.stats.clusters_reused, 30, "{:?}", third.stats);
    let s = &third.states["c2"];
    assert_eq!(s.commit.id, c3);
    assert_eq!(
        s.revision_of(&s.apps["jobs"]),
        c1,
        "the kept app keeps its revision"
    );
    assert!(s.apps["jobs"].error.is_some());
    assert_eq!(s.revision_of(&s.apps["api"]), c3);
    assert_same_as_cold(&repo, &third, &second.states);
}

/// A chart app: one render per cluster (the chart sees the cluster's
/// name), reused while nothing it reads changes, and its last good
/// version kept per cluster when a commit breaks it.
#[test]
fn a_chart_app_renders_per_cluster_is_reused_and_keeps_its_last_good_version() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    write(dir.path(), "apps/cache/app.yaml", "namespace: cache\n");
    write(
        dir.path(),
        "apps/cache/chart/Chart.yaml",
        "apiVersion: v2\nname: cache\nversion: 0.1.0\n",
    );
    write(dir.path(), "apps/cache/chart/values.yaml", "size: 1\n");
    write(
        dir.path(),
        "apps/cache/chart/templates/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cache\ndata:\n  cluster: {{ .Values.global.fleet.clusterName }}\n  size: {{ .Values.size | quote }}\n",
    );
    write(
        dir.path(),
        "apps/cache/overlays/prod/values.yaml",
        "size: 3\n",
    );
    commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let mut r = Renderer::new();
    let first = render(&repo, &mut r, &BTreeMap::new());
    // 5 renders for web/api/jobs as before, and the chart once per cluster.
    assert_eq!(first.stats.rendered, 5 + 30, "{:?}", first.stats);
    let manifest =
        |s: &fleet_render::DesiredState| s.apps["cache"].resources[0].manifest.to_string();
    assert!(
        manifest(&first.states["c0"]).contains("cluster: c0"),
        "{}",
        manifest(&first.states["c0"])
    );
    assert!(
        manifest(&first.states["c2"]).contains("size: \"3\""),
        "{}",
        manifest(&first.states["c2"])
    );
    assert!(manifest(&first.states["c1"]).contains("size: \"1\""));

    // A commit elsewhere: the chart renders are reused.
    write(dir.path(), "apps/api/base/cm.yaml", &cm("api", "2"));
    commit(dir.path(), "api: 2");
    let second = render(&repo, &mut r, &first.states);
    assert_eq!(second.stats.rendered, 1, "{:?}", second.stats);

    // A commit that breaks the chart: every cluster keeps its last good cache.
    write(
        dir.path(),
        "apps/cache/chart/templates/bad.yaml",
        "{{ required \"set image\" .Values.image }}\n",
    );
    commit(dir.path(), "break the chart");
    let third = render(&repo, &mut r, &second.states);
    let s = &third.states["c5"];
    let cache = &s.apps["cache"];
    assert_eq!(cache.resources, second.states["c5"].apps["cache"].resources);
    let e = cache.error.as_ref().expect("the error is recorded");
    assert_eq!(e.file, "apps/cache/chart/Chart.yaml");
    assert!(
        e.reason
            .contains("execution error at (cache/templates/bad.yaml:1:3): set image"),
        "{}",
        e.reason
    );
}

#[test]
fn cluster_metas_are_kept_while_clusters_and_environments_stay_and_follow_them_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let mut r = Renderer::new();
    let first = render(&repo, &mut r, &BTreeMap::new());
    assert_eq!(first.clusters.len(), 30);
    assert!(first.clusters.values().all(|m| m.automatic));

    // Neither tree moved: the same map, not a copy of it.
    write(dir.path(), "README.md", "the fleet\n");
    commit(dir.path(), "readme");
    let second = render(&repo, &mut r, &first.states);
    assert!(Arc::ptr_eq(&second.clusters, &first.clusters));
    assert_eq!(second.stats.clusters_reused, 30);

    // The renders those moved clusters hold stay found: a change to `api`
    // computes one render and reuses the other 89.
    write(dir.path(), "apps/api/base/cm.yaml", &cm("api", "2"));
    commit(dir.path(), "api: 2");
    let third = render(&repo, &mut r, &second.states);
    assert_eq!(third.stats.rendered, 1, "{:?}", third.stats);
    assert_eq!(third.stats.reused, 89, "{:?}", third.stats);
    assert!(Arc::ptr_eq(&third.clusters, &first.clusters));

    // An environment turns manual: its clusters' metas and states follow
    // though no cluster file changed.
    write(
        dir.path(),
        "environments/prod.yaml",
        "sync:\n  policy: manual\n",
    );
    commit(dir.path(), "prod: manual");
    let fourth = render(&repo, &mut r, &third.states);
    assert!(!Arc::ptr_eq(&fourth.clusters, &third.clusters));
    for (name, meta) in fourth.clusters.iter() {
        let prod = meta.labels.get("env").map(String::as_str) == Some("prod");
        assert_eq!(meta.automatic, !prod, "cluster {name}");
        assert_eq!(fourth.states[name].sync.automatic, !prod, "cluster {name}");
    }
    assert_same_as_cold(&repo, &fourth, &third.states);

    // Then a cluster's labels: its meta follows, the others are kept equal.
    write(
        dir.path(),
        "clusters/c4.yaml",
        "name: c4\nlabels: {env: prod, tier: edge}\n",
    );
    commit(dir.path(), "c4: prod, edge");
    let fifth = render(&repo, &mut r, &fourth.states);
    assert_eq!(fifth.clusters["c4"].labels["tier"], "edge");
    assert!(!fifth.clusters["c4"].automatic);
    assert_eq!(fifth.clusters["c3"], fourth.clusters["c3"]);
    assert!(!fifth.states["c4"].sync.automatic);
    assert_same_as_cold(&repo, &fifth, &fourth.states);
}

/// `apps/canary` for the clusters of `env`.
fn canary(dir: &Path, env: &str, v: &str) {
    write(
        dir,
        "apps/canary/app.yaml",
        &format!("namespace: canary\nselector:\n  matchLabels:\n    env: {env}\n"),
    );
    write(dir, "apps/canary/base/cm.yaml", &cm("canary", v));
}

#[test]
fn only_the_clusters_a_changed_app_selects_or_selected_are_assembled_again() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    canary(dir.path(), "prod", "1");
    commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let mut r = Renderer::new();
    let first = render(&repo, &mut r, &BTreeMap::new());
    let runs =
        |s: &fleet_hub::renderer::FleetRender, c: &str| s.states[c].apps.contains_key("canary");
    assert!(runs(&first, "c2") && !runs(&first, "c1"));

    // Commits what the caller wrote, renders it on `r`, checks how many
    // clusters moved on unassembled and that the result is a cold render's.
    let mut next = |msg: &str, prev: &fleet_hub::renderer::FleetRender, reused: usize| {
        commit(dir.path(), msg);
        let got = render(&repo, &mut r, &prev.states);
        assert_eq!(got.stats.clusters_reused, reused, "{msg}: {:?}", got.stats);
        assert_same_as_cold(&repo, &got, &prev.states);
        got
    };

    // The app's content: its 10 prod clusters only.
    canary(dir.path(), "prod", "2");
    let second = next("canary: 2", &first, 20);

    // Its selector: the 10 clusters it leaves and the 10 it comes to.
    canary(dir.path(), "staging", "2");
    let third = next("canary to staging", &second, 10);
    assert!(runs(&third, "c1") && !runs(&third, "c2"));

    // An app that goes: the clusters that ran it.
    git(dir.path(), &["rm", "-rq", "apps/canary"]);
    let fourth = next("canary gone", &third, 20);
    assert!(!runs(&fourth, "c1"));

    // An app that comes: the clusters it selects.
    canary(dir.path(), "dev", "3");
    let fifth = next("canary on dev", &fourth, 20);
    assert!(runs(&fifth, "c0") && !runs(&fifth, "c1"));
}

#[test]
fn a_resource_two_apps_render_is_an_error_for_the_second_app_only() {
    let dir = tempfile::tempdir().unwrap();
    fleet(dir.path());
    commit(dir.path(), "initial");
    let repo = Repo::open(Source::Local(dir.path().to_path_buf())).unwrap();
    let mut r = Renderer::new();
    let first = render(&repo, &mut r, &BTreeMap::new());

    // jobs now renders api's ConfigMap (same kind, namespace and name).
    write(dir.path(), "apps/jobs/app.yaml", "namespace: api\n");
    write(dir.path(), "apps/jobs/base/cm.yaml", &cm("api", "9"));
    commit(dir.path(), "jobs: render api's ConfigMap");
    let second = render(&repo, &mut r, &first.states);
    for c in ["c0", "c7"] {
        let (s, before) = (&second.states[c], &first.states[c]);
        let jobs = &s.apps["jobs"];
        let e = jobs.error.as_ref().expect("the conflict is recorded");
        assert_eq!(e.app, "jobs");
        assert!(
            e.reason.contains("ConfigMap") && e.reason.contains("is also rendered by app api"),
            "{e:?}"
        );
        assert_eq!(
            jobs.resources, before.apps["jobs"].resources,
            "{c}: jobs lost its last good resources"
        );
        let api = &s.apps["api"];
        assert!(api.error.is_none(), "{c}: {:?}", api.error);
        assert_eq!(api.resources, before.apps["api"].resources);
    }
}

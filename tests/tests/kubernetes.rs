//! End-to-end against a real cluster: the real hub and a real spoke with
//! `--target kubernetes`. Runs only when `FLEET_TEST_KUBECONFIG` names a
//! kubeconfig (and `kubectl` is on PATH); otherwise it says loudly that it
//! was skipped. Everything it creates lives in namespaces named
//! `fleet-e2e-<pid>-*`, deleted at the end. See docs/kubernetes.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use fleet_tests::*;

const LONG: Duration = Duration::from_secs(120);

fn kubeconfig() -> Option<PathBuf> {
    match std::env::var_os("FLEET_TEST_KUBECONFIG") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!(
                "SKIPPED: real-cluster Kubernetes tests; set FLEET_TEST_KUBECONFIG to a kubeconfig to run them"
            );
            None
        }
    }
}

fn kubectl(kc: &Path, args: &[&str]) -> std::process::Output {
    run(Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kc)
        .args(args))
}

fn kubectl_ok(kc: &Path, args: &[&str]) -> String {
    let out = kubectl(kc, args);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The spoke of cluster k8s-1 with `--target kubernetes` against `kc`, its
/// inventory in namespace `sys`.
fn k8s_spoke(hub: &Hub, pki: &Pki, work: &Path, sys: &str, kc: &Path, extra: &[&str]) -> Proc {
    let (cert, key) = pki.pair("spoke-k8s-1");
    Proc::spawn(
        Command::new(bin("fleet-spoke"))
            .args(["--hub", &hub.grpc, "--hub-name", "localhost"])
            .arg("--ca")
            .arg(pki.ca())
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--cache-dir")
            .arg(work.join("spoke-cache"))
            .args(["--target", "kubernetes", "--inventory-namespace", sys])
            .args(extra)
            .arg("--kubeconfig")
            .arg(kc),
        work.join("spoke.log"),
    )
}

/// Deletes the test namespaces when the test ends, however it ends.
struct Cleanup<'a>(&'a Path, Vec<String>);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for ns in &self.1 {
            let _ = kubectl(self.0, &["delete", "namespace", ns, "--wait=false"]);
        }
    }
}

#[test]
fn spoke_applies_heals_and_prunes_in_a_real_cluster() {
    let Some(kc) = kubeconfig() else { return };
    let base = format!("fleet-e2e-{}", std::process::id());
    let (sys, app_ns) = (format!("{base}-system"), format!("{base}-web"));
    let _cleanup = Cleanup(&kc, vec![app_ns.clone(), sys.clone()]);
    kubectl_ok(&kc, &["create", "namespace", &sys]);

    let work = tempfile::tempdir().unwrap();
    let repo = GitRepo::new(work.path().join("repo"));
    let cm = |name: &str, v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {v}\n")
    };
    repo.write("clusters/k8s-1.yaml", "name: k8s-1\ntarget: kubernetes\n")
        .write("apps/web/app.yaml", &format!("namespace: {app_ns}\n"))
        .write(
            "apps/web/base/ns.yaml",
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {app_ns}\n"),
        )
        .write("apps/web/base/config.yaml", &cm("web-config", "one"))
        .write("apps/web/base/extra.yaml", &cm("web-extra", "x"));
    repo.commit("initial fleet");
    let pki = Pki::new(work.path().join("pki"));
    pki.issue(&["admin", "tester"]);
    pki.issue(&["spoke", "k8s-1"]);
    let hub = Hub::start_on(&repo, &pki, work.path());
    let mut spoke = k8s_spoke(&hub, &pki, work.path(), &sys, &kc, &[]);
    let get = |name: &str| {
        let out = kubectl(
            &kc,
            &[
                "get",
                "configmap",
                name,
                "-n",
                &app_ns,
                "-o",
                "jsonpath={.data.value}",
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };

    wait_until("web-config applied", LONG, || {
        assert!(spoke.is_running(), "fleet-spoke exited:\n{}", spoke.logs());
        get("web-config").filter(|v| v == "one")
    });
    let labels = kubectl_ok(
        &kc,
        &[
            "get",
            "configmap",
            "web-config",
            "-n",
            &app_ns,
            "-o",
            "jsonpath={.metadata.labels}",
        ],
    );
    assert!(labels.contains("fleet.dev/cluster"), "{labels}");
    let inventory = kubectl_ok(
        &kc,
        &[
            "get",
            "configmap",
            "fleet-inventory",
            "-n",
            &sys,
            "-o",
            "jsonpath={.data}",
        ],
    );
    assert!(inventory.contains("web-config"), "{inventory}");

    // A hand edit of a managed field is drift, healed by the watcher.
    kubectl_ok(
        &kc,
        &[
            "patch",
            "configmap",
            "web-config",
            "-n",
            &app_ns,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"value":"hand"}}"#,
        ],
    );
    wait_until("hand edit healed", LONG, || {
        get("web-config").filter(|v| v == "one")
    });

    // Deleted outside fleet: recreated.
    kubectl_ok(&kc, &["delete", "configmap", "web-config", "-n", &app_ns]);
    wait_until("deleted object recreated", LONG, || {
        get("web-config").filter(|v| v == "one")
    });

    // An object fleet did not create is never pruned.
    kubectl_ok(&kc, &["create", "configmap", "hand-made", "-n", &app_ns]);
    repo.remove("apps/web/base/extra.yaml");
    repo.commit("drop extra");
    hub.webhook();
    wait_until("web-extra pruned", LONG, || {
        get("web-extra").is_none().then_some(())
    });
    assert!(
        get("hand-made").is_some(),
        "prune removed an object fleet did not create"
    );

    let status = hub.status(&pki);
    let c = cluster(&status, "k8s-1");
    assert!(
        c["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["health"] == "healthy"),
        "{c}"
    );
    spoke.kill();
}

/// A kubeconfig for `sa` in `ns` with a token from the TokenRequest API, on
/// the server of `admin`: the spoke then runs with that account's RBAC only.
fn service_account_kubeconfig(admin: &Path, ns: &str, sa: &str, out: &Path) -> PathBuf {
    let token = kubectl_ok(
        admin,
        &["create", "token", sa, "-n", ns, "--duration", "1h"],
    );
    let server = kubectl_ok(
        admin,
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ],
    );
    let ca = kubectl_ok(
        admin,
        &[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ],
    );
    let path = out.join("spoke.kubeconfig");
    let ca_line = if ca.is_empty() {
        "    insecure-skip-tls-verify: true\n".to_string()
    } else {
        format!("    certificate-authority-data: {ca}\n")
    };
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n{ca_line}users:\n- name: u\n  user:\n    token: {}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\ncurrent-context: x\n",
            token.trim()
        ),
    )
    .unwrap();
    path
}

/// Several behaviours of issue-level trust on a real API server, with the
/// spoke on a narrowed role (create, not update): a conflict stays reported
/// and is never forced; a held wave holds only its app and makes no writes;
/// drift is healed during the hold; an unserved group (plain-text 404)
/// resolves once its CRD is installed; a bad name is a render error of its
/// app only.
#[test]
fn a_narrowed_spoke_keeps_conflicts_holds_waves_per_app_without_writes() {
    let Some(kc) = kubeconfig() else { return };
    let pid = std::process::id();
    let base = format!("fleet-e2e-{pid}-narrowed");
    let (sys, web, other) = (
        format!("{base}-system"),
        format!("{base}-web"),
        format!("{base}-other"),
    );
    let group = format!("e2e{pid}.example.com");
    let crd_name = format!("widgets.{group}");
    let role = format!("fleet-e2e-{pid}");
    let _cleanup = Cleanup(&kc, vec![web.clone(), other.clone(), sys.clone()]);
    struct Cluster<'a>(&'a Path, Vec<[String; 2]>);
    impl Drop for Cluster<'_> {
        fn drop(&mut self) {
            for [kind, name] in &self.1 {
                let _ = kubectl(self.0, &["delete", kind, name, "--wait=false"]);
            }
        }
    }
    let _cluster = Cluster(
        &kc,
        vec![
            ["clusterrole".into(), role.clone()],
            ["clusterrolebinding".into(), role.clone()],
            ["crd".into(), crd_name.clone()],
        ],
    );
    kubectl_ok(&kc, &["create", "namespace", &sys]);
    kubectl_ok(
        &kc,
        &["create", "serviceaccount", "fleet-spoke", "-n", &sys],
    );
    let work = tempfile::tempdir().unwrap();
    // The narrowed role of docs/kubernetes.md: the kinds this test's apps use.
    let rbac = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {role}\nrules:\n\
- apiGroups: [\"\", apps]\n  resources: [configmaps, namespaces, deployments]\n  verbs: [get, list, watch, create, patch, delete]\n\
- apiGroups: [{group}]\n  resources: [widgets]\n  verbs: [get, list, watch, create, patch, delete]\n\
- nonResourceURLs: [/api, /api/*, /apis, /apis/*]\n  verbs: [get]\n\
---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {role}\n\
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: {role}}}\n\
subjects: [{{kind: ServiceAccount, name: fleet-spoke, namespace: {sys}}}]\n"
    );
    let rbac_file = work.path().join("rbac.yaml");
    std::fs::write(&rbac_file, rbac).unwrap();
    kubectl_ok(&kc, &["apply", "-f", rbac_file.to_str().unwrap()]);
    let spoke_kc = service_account_kubeconfig(&kc, &sys, "fleet-spoke", work.path());

    // Another manager owns data.value of `contested` before fleet comes.
    kubectl_ok(&kc, &["create", "namespace", &web]);
    let contested = work.path().join("contested.yaml");
    std::fs::write(
        &contested,
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: contested\n  namespace: {web}\ndata:\n  value: theirs\n"),
    )
    .unwrap();
    kubectl_ok(
        &kc,
        &[
            "apply",
            "--server-side",
            "--field-manager=other-tool",
            "-f",
            contested.to_str().unwrap(),
        ],
    );

    let repo = GitRepo::new(work.path().join("repo"));
    // The value is quoted: unquoted, YAML reads `y` as a boolean, which the
    // API server refuses for a ConfigMap's data.
    let cm = |name: &str, v: &str, wave: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  annotations:\n    fleet.dev/sync-wave: \"{wave}\"\ndata:\n  value: \"{v}\"\n"
        )
    };
    repo.write("clusters/k8s-1.yaml", "name: k8s-1\ntarget: kubernetes\n")
        .write("apps/web/app.yaml", &format!("namespace: {web}\n"))
        .write(
            "apps/web/base/ns.yaml",
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {web}\n"),
        )
        .write("apps/web/base/config.yaml", &cm("web-config", "one", "0"))
        .write("apps/web/base/contested.yaml", &cm("contested", "fleet", "0"))
        // No nodes: this Deployment never becomes available, so wave 0 holds.
        .write(
            "apps/web/base/d.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: d}\n  template:\n    metadata:\n      labels: {app: d}\n    spec:\n      containers:\n      - name: c\n        image: registry.invalid/never:1\n",
        )
        .write("apps/web/base/late.yaml", &cm("late", "x", "1"))
        .write("apps/other/app.yaml", &format!("namespace: {other}\n"))
        .write(
            "apps/other/base/ns.yaml",
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {other}\n"),
        )
        .write("apps/other/base/late.yaml", &cm("other-late", "y", "1"))
        // In other-late's wave: a failed object holds its app's *later*
        // waves (docs/kubernetes.md), so in wave 0 it would hold other-late.
        .write(
            "apps/other/base/widget.yaml",
            &format!("apiVersion: {group}/v1\nkind: Widget\nmetadata:\n  name: w1\n  annotations:\n    fleet.dev/sync-wave: \"1\"\nspec:\n  size: 3\n"),
        )
        .write("apps/bad/app.yaml", "namespace: default\n")
        .write(
            "apps/bad/base/ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: my_ns\n",
        );
    repo.commit("initial fleet");
    let pki = Pki::new(work.path().join("pki"));
    pki.issue(&["admin", "tester"]);
    pki.issue(&["spoke", "k8s-1"]);
    let hub = Hub::start_on(&repo, &pki, work.path());
    let mut spoke = k8s_spoke(
        &hub,
        &pki,
        work.path(),
        &sys,
        &spoke_kc,
        &["--drift-interval", "1"],
    );
    let get = |ns: &str, name: &str, path: &str| {
        let out = kubectl(
            &kc,
            &[
                "get",
                "configmap",
                name,
                "-n",
                ns,
                "-o",
                &format!("jsonpath={path}"),
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let resource = |id: &str| {
        let s = hub.status(&pki);
        cluster(&s, "k8s-1")["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["id"] == id)
            .cloned()
    };

    // Applied, on the narrowed role (create works), and app other's wave 1
    // does not wait for app web's held wave 0.
    wait_until("web-config and other-late applied", LONG, || {
        assert!(spoke.is_running(), "fleet-spoke exited:\n{}", spoke.logs());
        (get(&web, "web-config", "{.data.value}").as_deref() == Some("one")
            && get(&other, "other-late", "{.data.value}").as_deref() == Some("y"))
        .then_some(())
    });
    let late_id = format!("ConfigMap/{web}/late");
    let late = wait_until("late reported pending", LONG, || {
        resource(&late_id).filter(|r| r["state"] == "pending")
    });
    assert!(
        late["message"].as_str().unwrap().contains("sync wave 0"),
        "{late}"
    );
    assert!(
        get(&web, "late", "{.data.value}").is_none(),
        "wave 1 of web applied during the hold"
    );
    // The bad name is a render error of app bad only.
    let status = hub.status(&pki);
    assert!(status.to_string().contains("my_ns"), "{status}");

    // The conflict is reported and stays so: never forced.
    let contested_id = format!("ConfigMap/{web}/contested");
    let c = wait_until("conflict reported", LONG, || {
        resource(&contested_id).filter(|r| r["state"] == "failed")
    });
    assert!(c["message"].as_str().unwrap().contains("other-tool"), "{c}");

    // A held sync writes nothing: over several drift intervals the
    // inventory and the applied objects keep their resource versions.
    let versions = || {
        (
            kubectl_ok(
                &kc,
                &[
                    "get",
                    "configmap",
                    "fleet-inventory",
                    "-n",
                    &sys,
                    "-o",
                    "jsonpath={.metadata.resourceVersion}",
                ],
            ),
            get(&web, "web-config", "{.metadata.resourceVersion}"),
        )
    };
    let before = versions();
    // Observation window (not synchronisation): five drift intervals.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(versions(), before, "the held sync wrote:\n{}", spoke.logs());
    assert_eq!(
        get(&web, "contested", "{.data.value}").as_deref(),
        Some("theirs")
    );
    assert_eq!(resource(&contested_id).unwrap()["state"], "failed");

    // Drift in an applied object is healed while the wave is held.
    kubectl_ok(
        &kc,
        &[
            "patch",
            "configmap",
            "web-config",
            "-n",
            &web,
            "--type",
            "merge",
            "-p",
            r#"{"data":{"value":"hand"}}"#,
        ],
    );
    wait_until("hand edit healed during the hold", LONG, || {
        (get(&web, "web-config", "{.data.value}").as_deref() == Some("one")).then_some(())
    });

    // A live diff answers during the hold; the Widget, whose group is not
    // served yet, is listed in its place and does not fail the others.
    let out = hub.ctl(&pki, &["diff", "k8s-1"]);
    assert!(
        out.status.success(),
        "diff: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let diff = String::from_utf8_lossy(&out.stdout);
    assert!(
        diff.contains("cannot diff: unknown apiVersion") && diff.contains("contested"),
        "{diff}"
    );

    // The Widget's group is not served (a plain-text 404): reported; once
    // its CRD is installed (outside fleet), applied.
    let w_id = format!("Widget.{group}/{other}/w1");
    let w = wait_until("unknown apiVersion reported", LONG, || {
        resource(&w_id).filter(|r| r["state"] == "failed")
    });
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("unknown apiVersion"),
        "{w}"
    );
    let crd = work.path().join("crd.yaml");
    std::fs::write(
        &crd,
        format!(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {crd_name}\nspec:\n  group: {group}\n  names: {{kind: Widget, plural: widgets, singular: widget}}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"
        ),
    )
    .unwrap();
    kubectl_ok(&kc, &["apply", "-f", crd.to_str().unwrap()]);
    wait_until("widget applied after its CRD", LONG, || {
        let out = kubectl(
            &kc,
            &[
                "get",
                "widgets.{group}".replace("{group}", &group).as_str(),
                "w1",
                "-n",
                &other,
            ],
        );
        out.status.success().then_some(())
    });
    spoke.kill();
}

/// A SOPS-encrypted Secret (age) reaches the cluster decrypted, its
/// `stringData` as the API server stores it, and is not rewritten on every
/// drift check.
#[test]
fn a_sops_secret_reaches_the_cluster_decrypted_and_stays_unwritten() {
    let Some(kc) = kubeconfig() else { return };
    if !fleet_tests::sops::have_age() {
        eprintln!("SKIPPED: the age tool is not installed (apt-get install age)");
        return;
    }
    let base = format!("fleet-e2e-{}-age", std::process::id());
    let (sys, app_ns) = (format!("{base}-system"), format!("{base}-web"));
    let _cleanup = Cleanup(&kc, vec![app_ns.clone(), sys.clone()]);
    kubectl_ok(&kc, &["create", "namespace", &sys]);
    kubectl_ok(&kc, &["create", "namespace", &app_ns]);

    let work = tempfile::tempdir().unwrap();
    let (identity, recipient) = fleet_tests::sops::keygen(work.path(), "site");
    let key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(3));
    let repo = GitRepo::new(work.path().join("repo"));
    repo.write("clusters/k8s-1.yaml", "name: k8s-1\ntarget: kubernetes\n")
        .write("apps/web/app.yaml", &format!("namespace: {app_ns}\n"))
        .write(
            "apps/web/base/db.yaml",
            &fleet_tests::sops::sops_secret("db", Some(&app_ns), &recipient, &key),
        );
    repo.commit("a SOPS secret");
    let pki = Pki::new(work.path().join("pki"));
    pki.issue(&["admin", "tester"]);
    pki.issue(&["spoke", "k8s-1"]);
    let hub = Hub::start_on(&repo, &pki, work.path());
    let mut spoke = k8s_spoke(
        &hub,
        &pki,
        work.path(),
        &sys,
        &kc,
        &[
            "--drift-interval",
            "0.5",
            "--age-identity",
            identity.to_str().unwrap(),
        ],
    );
    let field = |path: &str| {
        let out = kubectl(
            &kc,
            &[
                "get",
                "secret",
                "db",
                "-n",
                &app_ns,
                "-o",
                &format!("jsonpath={path}"),
            ],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
            .filter(|s| !s.is_empty())
    };
    let password = wait_until("the Secret applied", LONG, || {
        assert!(spoke.is_running(), "fleet-spoke exited:\n{}", spoke.logs());
        field("{.data.password}")
    });
    assert_eq!(base64_decoded(&password), fleet_tests::sops::PLAIN);
    // `data` values are base64 in the manifest already: stored as written.
    assert_eq!(
        field("{.data.token}").as_deref(),
        Some(fleet_tests::sops::TOKEN_PLAIN)
    );
    let all = kubectl_ok(&kc, &["get", "secret", "db", "-n", &app_ns, "-o", "yaml"]);
    assert!(
        !all.contains("ENC[") && !all.contains("lastmodified"),
        "{all}"
    );

    // Observation window (not synchronisation): six drift intervals.
    let version = field("{.metadata.resourceVersion}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        field("{.metadata.resourceVersion}"),
        version,
        "the Secret is rewritten on drift checks:\n{}",
        spoke.logs()
    );
}

fn base64_decoded(b64: &str) -> String {
    String::from_utf8(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).unwrap(),
    )
    .unwrap()
}

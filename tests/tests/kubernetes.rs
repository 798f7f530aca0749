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
    let hub = Hub::start(
        &HubSpec {
            repo: repo.dir.to_str().unwrap(),
            data_dir: &work.path().join("hub-data"),
            pki: &pki,
            branch: "main",
        },
        work.path(),
        "hub",
    );
    let (cert, key) = pki.pair("spoke-k8s-1");
    let mut spoke = Proc::spawn(
        Command::new(bin("fleet-spoke"))
            .args(["--hub", &hub.grpc, "--hub-name", "localhost"])
            .arg("--ca")
            .arg(pki.ca())
            .arg("--cert")
            .arg(cert)
            .arg("--key")
            .arg(key)
            .arg("--cache-dir")
            .arg(work.path().join("spoke-cache"))
            .args(["--target", "kubernetes", "--inventory-namespace", &sys])
            .arg("--kubeconfig")
            .arg(&kc),
        work.path().join("spoke.log"),
    );
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

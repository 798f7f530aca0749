//! `fleetctl spoke manifests CLUSTER`: everything a cluster needs to run its
//! spoke, printed as one YAML stream, so adding a cluster is one
//! `kubectl apply -f -`. The manifests are built as data here (pure) and
//! printed through render's canonical YAML.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::{Value, json};

/// `fleetctl spoke ...`
#[derive(clap::Subcommand, Debug)]
pub enum SpokeCommand {
    /// Print install manifests for CLUSTER's spoke: Namespace, ServiceAccount,
    /// RBAC, Secret with its certificate, PVC for the cache, Deployment.
    Manifests(ManifestArgs),
}

#[derive(clap::Args, Debug)]
pub struct ManifestArgs {
    /// The cluster, as named in the fleet repo and in its spoke certificate.
    pub cluster: String,
    /// Directory holding ca.crt and spoke-CLUSTER.crt/.key (`fleetctl ca issue spoke CLUSTER`).
    #[arg(long, env = "FLEET_PKI_DIR", default_value = "pki")]
    pub dir: PathBuf,
    /// The hub's gRPC address as reached from the cluster.
    #[arg(long, env = "FLEET_HUB")]
    pub hub: String,
    /// Namespace for the spoke (and fleet's inventory ConfigMap).
    #[arg(long, default_value = "fleet-system")]
    pub namespace: String,
    /// The fleet-spoke container image.
    #[arg(
        long,
        env = "FLEET_SPOKE_IMAGE",
        default_value = "ghcr.io/fleet-dev/fleet-spoke:latest"
    )]
    pub image: String,
    /// Size of the cache volume.
    #[arg(long, default_value = "1Gi")]
    pub cache_size: String,
    /// A Secret in the spoke's namespace whose `keys.txt` holds the age
    /// identities that open SOPS documents (`kubectl create secret generic
    /// NAME --from-file=keys.txt=site.agekey`). Without it, SOPS documents
    /// are not applied.
    #[arg(long)]
    pub age_secret: Option<String>,
}

/// What goes into the manifests besides the arguments.
pub struct Pki {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

pub fn read_pki(dir: &Path, cluster: &str) -> anyhow::Result<Pki> {
    let read = |name: String| {
        let p = dir.join(&name);
        std::fs::read_to_string(&p).with_context(|| {
            format!(
                "reading {}: run `fleetctl ca issue spoke {cluster} --dir {}` first",
                p.display(),
                dir.display()
            )
        })
    };
    Ok(Pki {
        ca: read("ca.crt".into())?,
        cert: read(format!("spoke-{cluster}.crt"))?,
        key: read(format!("spoke-{cluster}.key"))?,
    })
}

/// The verbs the spoke uses on the kinds it manages.
pub const VERBS: [&str; 6] = ["get", "list", "watch", "create", "patch", "delete"];

/// Name of the spoke's ClusterRole and ClusterRoleBinding for an install in
/// `namespace`.
pub fn cluster_scoped_name(namespace: &str) -> String {
    format!("fleet-spoke-{namespace}")
}

/// The install manifests, in apply order.
pub fn spoke_manifests(a: &ManifestArgs, pki: &Pki) -> Vec<Value> {
    let mut objects = install(a, pki);
    if let Some(secret) = &a.age_secret {
        if let Some(deploy) = objects.last_mut() {
            mount_age_secret(deploy, secret);
        }
    }
    objects
}

/// Mounts the age identities Secret into the spoke's Deployment.
fn mount_age_secret(deploy: &mut Value, secret: &str) {
    let spec = &mut deploy["spec"]["template"]["spec"];
    if let Some(v) = spec["volumes"].as_array_mut() {
        v.push(json!({"name": "age", "secret": {"secretName": secret, "defaultMode": 0o400}}));
    }
    let c = &mut spec["containers"][0];
    if let Some(env) = c["env"].as_array_mut() {
        env.push(json!({"name": "FLEET_AGE_IDENTITY", "value": "/etc/fleet/age/keys.txt"}));
    }
    if let Some(m) = c["volumeMounts"].as_array_mut() {
        m.push(json!({"name": "age", "mountPath": "/etc/fleet/age", "readOnly": true}));
    }
}

fn install(a: &ManifestArgs, pki: &Pki) -> Vec<Value> {
    let ns = a.namespace.as_str();
    let labels =
        json!({"app.kubernetes.io/name": "fleet-spoke", "app.kubernetes.io/part-of": "fleet"});
    let meta = |name: &str| json!({"name": name, "namespace": ns, "labels": labels});
    // Cluster-scoped names carry the namespace: a second install (another
    // namespace) must not rebind the first one's access.
    let cluster_scoped = cluster_scoped_name(ns);
    vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}),
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta("fleet-spoke")}),
        // The spoke needs, on every kind its apps contain: get, list, watch
        // (drift), create and patch (server-side apply creates what does not
        // exist yet), delete (prune); create, patch and delete on ConfigMaps
        // in its namespace (the inventory); and discovery (nonResourceURLs).
        // Narrow the first rule to your kinds; see deploy/spoke/rbac.yaml.
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": cluster_scoped, "labels": labels},
        "rules": [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": VERBS},
            {"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*"], "verbs": ["get"]},
        ]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": cluster_scoped, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_scoped},
            "subjects": [{"kind": "ServiceAccount", "name": "fleet-spoke", "namespace": ns}]}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta("fleet-spoke-tls"), "type": "Opaque",
            "stringData": {"ca.crt": pki.ca, "tls.crt": pki.cert, "tls.key": pki.key}}),
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("fleet-spoke-cache"),
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": a.cache_size}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("fleet-spoke"),
        "spec": {
            "replicas": 1,
            // One spoke per cluster, and the cache volume is ReadWriteOnce.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app.kubernetes.io/name": "fleet-spoke"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "fleet-spoke",
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "fsGroup": 65532},
                    "containers": [{
                        "name": "fleet-spoke",
                        "image": a.image,
                        "args": ["--target", "kubernetes", "--inventory-namespace", ns],
                        "env": [
                            {"name": "FLEET_HUB", "value": a.hub},
                            {"name": "FLEET_CA", "value": "/etc/fleet/tls/ca.crt"},
                            {"name": "FLEET_CERT", "value": "/etc/fleet/tls/tls.crt"},
                            {"name": "FLEET_KEY", "value": "/etc/fleet/tls/tls.key"},
                            {"name": "FLEET_CACHE_DIR", "value": "/var/lib/fleet"},
                            {"name": "FLEET_LOG_FORMAT", "value": "json"},
                            {"name": "FLEET_SPOKE_HTTP_ADDR", "value": "0.0.0.0:7081"},
                        ],
                        "ports": [{"name": "http", "containerPort": 7081}],
                        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "failureThreshold": 6},
                        // Ready once it applied a state (from the hub, a bundle or its cache).
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5},
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [
                            {"name": "tls", "mountPath": "/etc/fleet/tls", "readOnly": true},
                            {"name": "cache", "mountPath": "/var/lib/fleet"},
                        ],
                    }],
                    "volumes": [
                        {"name": "tls", "secret": {"secretName": "fleet-spoke-tls", "defaultMode": 0o400}},
                        {"name": "cache", "persistentVolumeClaim": {"claimName": "fleet-spoke-cache"}},
                    ],
                }
            }
        }}),
    ]
}

pub fn to_yaml_stream(objects: &[Value]) -> String {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&fleet_render::yaml::to_canonical(o));
    }
    out
}

pub fn run(cmd: SpokeCommand) -> anyhow::Result<()> {
    match cmd {
        SpokeCommand::Manifests(a) => {
            let pki = read_pki(&a.dir, &a.cluster)?;
            out!("{}", to_yaml_stream(&spoke_manifests(&a, &pki)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_parse_back_and_carry_the_certificate() {
        let a = ManifestArgs {
            cluster: "prod-1".into(),
            dir: "pki".into(),
            hub: "https://hub.example:7443".into(),
            namespace: "fleet-system".into(),
            image: "img".into(),
            cache_size: "1Gi".into(),
            age_secret: None,
        };
        let pki = Pki {
            ca: "CA".into(),
            cert: "CERT".into(),
            key: "KEY".into(),
        };
        let yaml = to_yaml_stream(&spoke_manifests(&a, &pki));
        let docs = fleet_render::yaml::parse_documents("manifests", yaml.as_bytes()).unwrap();
        let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "ServiceAccount",
                "ClusterRole",
                "ClusterRoleBinding",
                "Secret",
                "PersistentVolumeClaim",
                "Deployment"
            ]
        );
        assert_eq!(docs[4]["stringData"]["tls.key"], "KEY");
        let c = &docs[6]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["args"][1], "kubernetes");
        assert!(
            c["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["value"] == "https://hub.example:7443")
        );
    }

    #[test]
    fn the_cluster_role_can_create_and_a_second_namespace_gets_its_own_binding() {
        let pki = Pki {
            ca: "CA".into(),
            cert: "CERT".into(),
            key: "KEY".into(),
        };
        let args = |ns: &str| ManifestArgs {
            cluster: "prod-1".into(),
            dir: "pki".into(),
            hub: "h".into(),
            namespace: ns.into(),
            image: "img".into(),
            cache_size: "1Gi".into(),
            age_secret: None,
        };
        let a = spoke_manifests(&args("fleet-system"), &pki);
        let b = spoke_manifests(&args("fleet-b"), &pki);
        let verbs = a[2]["rules"][0]["verbs"].as_array().unwrap();
        for v in ["get", "list", "watch", "create", "patch", "delete"] {
            assert!(verbs.iter().any(|x| x == v), "{v} missing: {verbs:?}");
        }
        for i in [2, 3] {
            assert_ne!(a[i]["metadata"]["name"], b[i]["metadata"]["name"]);
        }
        assert_eq!(b[2]["metadata"]["name"], "fleet-spoke-fleet-b");
        assert_eq!(b[3]["roleRef"]["name"], "fleet-spoke-fleet-b");
        assert_eq!(b[3]["subjects"][0]["namespace"], "fleet-b");
    }

    #[test]
    fn an_age_secret_is_mounted_and_named_to_the_spoke() {
        let pki = Pki {
            ca: "CA".into(),
            cert: "CERT".into(),
            key: "KEY".into(),
        };
        let a = ManifestArgs {
            cluster: "prod-1".into(),
            dir: "pki".into(),
            hub: "h".into(),
            namespace: "fleet-system".into(),
            image: "img".into(),
            cache_size: "1Gi".into(),
            age_secret: Some("fleet-age".into()),
        };
        let docs = spoke_manifests(&a, &pki);
        let spec = &docs[6]["spec"]["template"]["spec"];
        assert!(
            spec["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["secret"]["secretName"] == "fleet-age")
        );
        let c = &spec["containers"][0];
        assert!(
            c["env"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["name"] == "FLEET_AGE_IDENTITY"
                    && e["value"] == "/etc/fleet/age/keys.txt")
        );
        assert!(
            c["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["mountPath"] == "/etc/fleet/age")
        );
    }

    #[test]
    fn a_missing_certificate_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_pki(dir.path(), "prod-1").err().unwrap();
        assert!(
            format!("{e:#}").contains("fleetctl ca issue spoke prod-1"),
            "{e:#}"
        );
    }
}

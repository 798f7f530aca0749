//! `fleetctl demo`: a whole local fleet from nothing: a fleet repo, a PKI, a
//! real hub and real spokes on loopback sockets with real mTLS, each spoke
//! applying to a directory target.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use fleet_proto::v1 as pb;
use tokio::sync::watch;

use crate::ca::{self, Subject};
use crate::client::{Admin, HubArgs};

pub const CLUSTERS: &[(&str, &str, &str)] = &[
    ("dev-1", "dev", "eu"),
    ("staging-1", "staging", "eu"),
    ("prod-eu-1", "prod", "eu"),
    ("prod-us-1", "prod", "us"),
];

/// The demo fleet repo: four clusters over dev/staging/prod and three apps
/// (Kustomize overlays, plain YAML, and a Helm chart).
pub fn demo_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for (name, env, region) in CLUSTERS {
        files.push((
            format!("clusters/{name}.yaml"),
            format!("name: {name}\nlabels:\n  env: {env}\n  region: {region}\nsync:\n  prune: true\n  selfHeal: true\n"),
        ));
    }
    files.push((
        "apps/web/app.yaml".into(),
        "# Runs everywhere; each environment builds its Kustomize overlay (overlays/<env>).\nnamespace: web\n".into(),
    ));
    files.push((
        "apps/web/base/namespace.yaml".into(),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n".into(),
    ));
    files.push(("apps/web/base/deployment.yaml".into(), web_deployment()));
    files.push((
        "apps/web/base/kustomization.yaml".into(),
        "resources:\n- namespace.yaml\n- deployment.yaml\nconfigMapGenerator:\n- name: web-config\n  literals:\n  - LOG_LEVEL=debug\n".into(),
    ));
    for (env, tag, replicas, level) in [
        ("dev", "v1.1.0", 1, "debug"),
        ("staging", "v1.0.0", 2, "info"),
        ("prod", "v1.0.0", 3, "info"),
    ] {
        files.push((
            format!("apps/web/overlays/{env}/kustomization.yaml"),
            web_overlay(env, tag, replicas, level),
        ));
    }
    files.push((
        "apps/monitoring/app.yaml".into(),
        "# Only staging and prod run monitoring.\nnamespace: monitoring\nselector:\n  matchExpressions:\n  - key: env\n    operator: In\n    values: [staging, prod]\n"
            .into(),
    ));
    files.push((
        "apps/monitoring/base/all.yaml".into(),
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: monitoring\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: node-exporter\nspec:\n  selector:\n    matchLabels:\n      app: node-exporter\n  template:\n    metadata:\n      labels:\n        app: node-exporter\n    spec:\n      containers:\n      - name: node-exporter\n        image: quay.io/prometheus/node-exporter:v1.8.2\n        ports:\n        - containerPort: 9100\n"
            .into(),
    ));
    files.extend(cache_chart());
    files
}

/// The demo's Helm app: a chart vendored in the repo (`apps/cache/chart`),
/// values per environment (`overlays/<env>/values.yaml`), and the cluster's
/// name and labels from fleet (`global.fleet`).
fn cache_chart() -> Vec<(String, String)> {
    let mut files = vec![
        (
            "apps/cache/app.yaml".into(),
            "# A Helm chart, rendered by the hub as `helm template` would: values from\n# chart/values.yaml, then overlays/<env>/values.yaml, then clusters/<name>/values.yaml.\nnamespace: cache\nhelm:\n  releaseName: cache\n".into(),
        ),
        (
            "apps/cache/chart/Chart.yaml".into(),
            "apiVersion: v2\nname: cache\nversion: 0.3.0\nappVersion: \"7.2.5\"\ndescription: An in-memory cache\n".into(),
        ),
        (
            "apps/cache/chart/values.yaml".into(),
            "replicaCount: 1\nimage:\n  repository: docker.io/library/redis\n  tag: \"\"\nmaxMemory: 64mb\nresources:\n  requests:\n    cpu: 50m\n    memory: 64Mi\n".into(),
        ),
        (
            "apps/cache/chart/templates/_helpers.tpl".into(),
            "{{- define \"cache.fullname\" -}}\n{{- printf \"%s-%s\" .Release.Name .Chart.Name | trunc 63 | trimSuffix \"-\" -}}\n{{- end -}}\n\n{{- define \"cache.labels\" -}}\napp.kubernetes.io/name: {{ .Chart.Name }}\napp.kubernetes.io/instance: {{ .Release.Name }}\nhelm.sh/chart: {{ printf \"%s-%s\" .Chart.Name .Chart.Version }}\nfleet.example/cluster: {{ .Values.global.fleet.clusterName }}\n{{- end -}}\n".into(),
        ),
        (
            "apps/cache/chart/templates/namespace.yaml".into(),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ .Release.Namespace }}\n".into(),
        ),
        (
            "apps/cache/chart/templates/configmap.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ include \"cache.fullname\" . }}\n  labels:\n    {{- include \"cache.labels\" . | nindent 4 }}\ndata:\n  redis.conf: |\n    maxmemory {{ .Values.maxMemory }}\n    maxmemory-policy allkeys-lru\n  region: {{ .Values.global.fleet.clusterLabels.region | default \"unknown\" | quote }}\n".into(),
        ),
        (
            "apps/cache/chart/templates/deployment.yaml".into(),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ include \"cache.fullname\" . }}\n  labels:\n    {{- include \"cache.labels\" . | nindent 4 }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n  selector:\n    matchLabels:\n      app.kubernetes.io/name: {{ .Chart.Name }}\n  template:\n    metadata:\n      labels:\n        app.kubernetes.io/name: {{ .Chart.Name }}\n      annotations:\n        checksum/config: {{ include (print $.Template.BasePath \"/configmap.yaml\") . | sha256sum }}\n    spec:\n      containers:\n      - name: redis\n        image: \"{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}\"\n        args: [\"/etc/redis/redis.conf\"]\n        resources:\n          {{- toYaml .Values.resources | nindent 10 }}\n        volumeMounts:\n        - name: config\n          mountPath: /etc/redis\n      volumes:\n      - name: config\n        configMap:\n          name: {{ include \"cache.fullname\" . }}\n".into(),
        ),
    ];
    for (env, replicas, memory) in [("staging", 1, "128mb"), ("prod", 2, "512mb")] {
        files.push((
            format!("apps/cache/overlays/{env}/values.yaml"),
            format!("replicaCount: {replicas}\nmaxMemory: {memory}\n"),
        ));
    }
    files
}

fn web_deployment() -> String {
    "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: ghcr.io/example/web:latest\n        envFrom:\n        - configMapRef:\n            name: web-config\n        ports:\n        - containerPort: 8080\n".into()
}

/// An environment overlay: the `images` entry is the release pin `fleetctl promote` moves.
fn web_overlay(env: &str, tag: &str, replicas: u32, level: &str) -> String {
    format!(
        "resources:\n- ../../base\nimages:\n- name: ghcr.io/example/web\n  newTag: {tag}\nreplicas:\n- name: web\n  count: {replicas}\nconfigMapGenerator:\n- name: web-config\n  behavior: merge\n  literals:\n  - LOG_LEVEL={level}\n  - ENVIRONMENT={env}\n"
    )
}

pub struct DemoArgs {
    pub dir: Option<PathBuf>,
    pub exit_when_converged: bool,
    pub timeout: Duration,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<bool> {
    let root = match &args.dir {
        Some(d) => {
            if d.exists() && std::fs::read_dir(d)?.next().is_some() {
                anyhow::bail!("{} is not empty; give an empty or new --dir", d.display());
            }
            std::fs::create_dir_all(d)?;
            d.canonicalize()?
        }
        None => tempfile::Builder::new()
            .prefix("fleet-demo-")
            .tempdir()?
            .keep(),
    };
    let repo = root.join("fleet-repo");
    let pki = root.join("pki");
    eprintln!("creating the demo fleet in {}", root.display());
    crate::gitwrite::init_with_files(&repo, &demo_files(), "demo: initial fleet")?;
    ca::init(&pki, ca::CA_DAYS)?;
    // The hub signs every state; the spokes apply only what it signed.
    ca::signing_key(&pki, "signing")?;
    let hub_cert = ca::issue(
        &pki,
        &Subject::Hub {
            names: ca::default_hub_names(),
        },
        ca::HUB_DAYS,
        false,
    )?;
    let admin = ca::issue(
        &pki,
        &Subject::User {
            name: "demo".into(),
            role: fleet_proto::identity::Role::Admin,
        },
        ca::CLIENT_DAYS,
        false,
    )?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let hub_cfg = fleet_hub::HubConfig {
        repo: repo.display().to_string(),
        branch: "HEAD".into(),
        poll_interval: Duration::from_secs(2),
        data_dir: root.join("hub"),
        grpc_addr: "127.0.0.1:0".parse()?,
        http_addr: "127.0.0.1:0".parse()?,
        page_addr: Some("127.0.0.1:0".parse()?),
        webhook_secret_file: None,
        signer: None,
        signing_key: Some(pki.join("signing.key")),
        allowed_signers: None,
        tls: fleet_hub::TlsFiles {
            crl: None,
            ca: pki.join(ca::CA_CERT),
            cert: hub_cert.cert,
            key: hub_cert.key,
        },
    };
    let hub_task = tokio::spawn(fleet_hub::run(hub_cfg, shutdown_rx.clone(), move |b| {
        let _ = bound_tx.send(b);
    }));
    let bound = bound_rx.await.context("the hub did not start")?;
    let hub_url = format!("https://{}", bound.grpc);

    let mut spokes = Vec::new();
    for (cluster, _, _) in CLUSTERS {
        let issued = ca::issue(
            &pki,
            &Subject::Spoke {
                cluster: cluster.to_string(),
            },
            ca::CLIENT_DAYS,
            false,
        )?;
        let dir = root.join("spokes").join(cluster);
        let cfg = fleet_spoke::SpokeConfig {
            link: fleet_spoke::LinkConfig {
                hub: hub_url.clone(),
                hub_name: Some("localhost".into()),
                ca: pki.join(ca::CA_CERT),
                cert: issued.cert,
                key: issued.key,
            },
            cache_dir: dir.join("cache"),
            target: fleet_spoke::Target::Directory(dir.join("target")),
            drift_interval: Duration::from_secs(2),
            renew_before: None,
            trust_keys: Some(pki.join("signing.pub")),
            allow_older: false,
            import: None,
            rollback_to: None,
            keep_states: 5,
            age_identity: None,
            http_addr: None,
        };
        spokes.push(tokio::spawn(fleet_spoke::run(cfg, shutdown_rx.clone())));
    }

    let hub_args = HubArgs {
        hub: hub_url.clone(),
        hub_name: Some("localhost".into()),
        ca: Some(pki.join(ca::CA_CERT)),
        cert: Some(admin.cert.clone()),
        key: Some(admin.key.clone()),
        timeout: Duration::from_secs(10),
    };
    let client = Admin::connect(&hub_args)?;
    let started = Instant::now();
    let mut last: Option<pb::FleetStatus> = None;
    let converged = loop {
        if let Ok(s) = client.status().await {
            let done = crate::status::converged(&s) && s.clusters.len() == CLUSTERS.len();
            last = Some(s);
            if done {
                break true;
            }
        }
        if started.elapsed() > args.timeout {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if let Some(s) = &last {
        print!("{}", crate::status::table(s));
    }
    if !converged {
        eprintln!(
            "error: the demo fleet did not converge within {}s (see the table above and the logs)",
            args.timeout.as_secs()
        );
        let _ = shutdown_tx.send(true);
        return Ok(false);
    }
    println!(
        "\nall {} clusters converged in {:.1}s",
        CLUSTERS.len(),
        started.elapsed().as_secs_f64()
    );
    if args.exit_when_converged {
        let _ = shutdown_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), hub_task).await;
        return Ok(true);
    }
    print_next_steps(&root, &repo, &pki, &admin, &bound);
    tokio::signal::ctrl_c().await?;
    eprintln!("stopping the demo fleet");
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), hub_task).await;
    Ok(true)
}

fn print_next_steps(
    root: &Path,
    repo: &Path,
    pki: &Path,
    admin: &ca::Issued,
    bound: &fleet_hub::Bound,
) {
    let (grpc, http) = (bound.grpc, bound.http);
    let page = bound
        .page
        .map(|p| {
            format!("  # the status page (read-only, refreshes itself)\n  open http://{p}/\n\n")
        })
        .unwrap_or_default();
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "fleetctl".into());
    println!(
        "\nThe demo fleet runs until Ctrl-C. Try, in another terminal:\n\n\
         {page}\
         \x20 # watch the fleet\n\
         \x20 export FLEET_HUB=https://{grpc} FLEET_HUB_NAME=localhost FLEET_CA={ca} FLEET_CERT={cert} FLEET_KEY={key}\n\
         \x20 watch -n1 {exe} status\n\n\
         \x20 # change the fleet: edit, commit, and the spokes follow (the hub polls every 2s)\n\
         \x20 cd {repo}\n\
         \x20 sed -i 's/newTag: v1.1.0/newTag: v1.2.0/' apps/web/overlays/dev/kustomization.yaml\n\
         \x20 git commit -am 'web: v1.2.0 in dev'\n\
         \x20 curl -X POST http://{http}/webhook   # or wait for the next poll\n\n\
         \x20 # the Helm app (apps/cache/chart), rendered for one cluster, offline\n\
         \x20 {exe} render --repo {repo} --cluster prod-eu-1\n\n\
         \x20 # promote what dev runs to staging: one commit, gated on dev being synced and healthy\n\
         \x20 {exe} promote web --from dev --to staging --repo {repo} --dry-run\n\
         \x20 {exe} promote web --from dev --to staging --repo {repo}\n\
         \x20 {exe} history staging --repo {repo}\n\n\
         \x20 # what each cluster got (its directory target)\n\
         \x20 ls -R {spokes}\n\n\
         \x20 # hand-edit a managed file: it is restored within seconds (self-heal)\n\
         \x20 echo tampered > {spokes}/dev-1/target/web/Deployment.apps/web.yaml\n",
        ca = pki.join(ca::CA_CERT).display(),
        cert = admin.cert.display(),
        key = admin.key.display(),
        repo = repo.display(),
        spokes = root.join("spokes").display(),
    );
}

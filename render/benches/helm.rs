//! A 30-template chart (helpers with `include` + `nindent`, `toYaml`,
//! `range`, `tpl`, a checksum annotation over a rendered ConfigMap)
//! rendered with per-cluster values, as the hub renders a chart app for
//! each cluster: one render, and 1,000 clusters.
//!
//! Run with `cargo bench -p fleet-render --bench helm`. With
//! `FLEET_BENCH_WRITE_CHART=DIR` the chart and one cluster's values file
//! are written to DIR first, so that `helm template` can be timed on the
//! same input (docs/benchmarks.md).

use std::hint::black_box;
use std::rc::Rc;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_render::helm::{Capabilities, Release, template};

const HELPERS: &str = r#"{{- define "bench.name" -}}{{ .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- define "bench.fullname" -}}
{{- if .Values.fullnameOverride -}}{{ .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name (include "bench.name" .) | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}
{{- define "bench.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "bench.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
fleet/cluster: {{ .Values.global.fleet.clusterName }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}
"#;

fn component(i: usize) -> String {
    format!(
        r#"{{{{- $c := index .Values.components {i} }}}}
{{{{- if $c.enabled }}}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{{{ include "bench.fullname" . }}}}-{{{{ $c.name }}}}
  labels:
    {{{{- include "bench.labels" . | nindent 4 }}}}
spec:
  replicas: {{{{ $c.replicas | default .Values.replicaCount }}}}
  selector:
    matchLabels:
      app.kubernetes.io/component: {{{{ $c.name }}}}
  template:
    metadata:
      annotations:
        checksum/config: {{{{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}}}
      labels:
        app.kubernetes.io/component: {{{{ $c.name }}}}
    spec:
      containers:
      - name: {{{{ $c.name }}}}
        image: "{{{{ .Values.image.repository }}}}:{{{{ .Values.image.tag | default .Chart.AppVersion }}}}"
        env:
        {{{{- range $k, $v := .Values.env }}}}
        - name: {{{{ $k | upper }}}}
          value: {{{{ tpl ($v | toString) $ | quote }}}}
        {{{{- end }}}}
        resources:
          {{{{- toYaml .Values.resources | nindent 10 }}}}
---
apiVersion: v1
kind: Service
metadata:
  name: {{{{ include "bench.fullname" . }}}}-{{{{ $c.name }}}}
  labels:
    {{{{- include "bench.labels" . | nindent 4 }}}}
spec:
  ports:
  {{{{- range $c.ports }}}}
  - name: p{{{{ . }}}}
    port: {{{{ . }}}}
  {{{{- end }}}}
{{{{- end }}}}
"#
    )
}

const CONFIGMAP: &str = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "bench.fullname" . }}
  labels:
    {{- include "bench.labels" . | nindent 4 }}
data:
  settings.yaml: |
    {{- toYaml .Values.settings | nindent 4 }}
  region: {{ .Values.global.fleet.clusterLabels.region | default "none" | quote }}
"#;

/// The chart's files: Chart.yaml, values.yaml, helpers and 30 templates.
pub fn chart() -> Vec<(String, Rc<[u8]>)> {
    let mut files: Vec<(String, String)> = vec![
        (
            "Chart.yaml".into(),
            "apiVersion: v2\nname: bench\nversion: 1.2.3\nappVersion: \"4.5.6\"\n".into(),
        ),
        ("templates/_helpers.tpl".into(), HELPERS.into()),
        ("templates/configmap.yaml".into(), CONFIGMAP.into()),
    ];
    let mut values = String::from(
        "replicaCount: 2\nimage:\n  repository: ghcr.io/example/bench\n  tag: \"\"\nextraLabels:\n  team: platform\nenv:\n  LOG_LEVEL: info\n  RELEASE: \"{{ .Release.Name }}\"\nresources:\n  requests:\n    cpu: 100m\n    memory: 128Mi\n  limits:\n    memory: 256Mi\nsettings:\n  cache: {size: 128, ttl: 60}\n  features: [a, b, c]\ncomponents:\n",
    );
    for i in 0..29 {
        files.push((format!("templates/component-{i:02}.yaml"), component(i)));
        values.push_str(&format!(
            "- name: c{i:02}\n  enabled: true\n  ports: [80, 443]\n"
        ));
    }
    files.push(("values.yaml".into(), values));
    files
        .into_iter()
        .map(|(n, t)| (n, Rc::from(t.into_bytes().into_boxed_slice())))
        .collect()
}

fn cluster_values(i: usize) -> serde_json::Map<String, serde_json::Value> {
    let v = serde_json::json!({
        "replicaCount": 1 + i % 3,
        "env": {"CLUSTER": format!("cluster-{i:04}")},
        "global": {"fleet": {"clusterName": format!("cluster-{i:04}"), "clusterLabels": {"region": if i.is_multiple_of(2) { "eu" } else { "us" }}}}
    });
    v.as_object().cloned().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let files = chart();
    let release = Release {
        name: "bench".into(),
        namespace: "bench".into(),
    };
    let caps = Capabilities::default();
    if let Ok(dir) = std::env::var("FLEET_BENCH_WRITE_CHART") {
        let dir = std::path::Path::new(&dir);
        for (n, d) in &files {
            let p = dir.join("chart").join(n);
            std::fs::create_dir_all(p.parent().expect("a parent")).expect("writable");
            std::fs::write(&p, d).expect("writable");
        }
        let v = serde_json::to_string(&serde_json::Value::Object(cluster_values(7))).expect("json");
        std::fs::write(dir.join("cluster-0007.json"), v).expect("writable");
    }
    let one =
        template(&files, &[cluster_values(7)], &release, &caps).expect("the bench chart renders");
    assert_eq!(one.manifests.len(), 59);
    c.bench_function("helm template: 30-template chart, one cluster", |b| {
        b.iter(|| template(black_box(&files), &[cluster_values(7)], &release, &caps).unwrap())
    });
    let mut g = c.benchmark_group("helm template: 1,000 clusters");
    g.sample_size(10);
    g.bench_function("30-template chart, per-cluster values", |b| {
        b.iter(|| {
            for i in 0..1000 {
                black_box(template(&files, &[cluster_values(i)], &release, &caps).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

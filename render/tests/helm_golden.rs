//! Golden tests for charts (`fleet_render::helm::template`) against what
//! `helm template` of Helm 3.19 printed for them.
//!
//! Each directory under `tests/helm/` is one case:
//! - `chart/`: the chart (subcharts in `chart/charts/` as directories or
//!   `.tgz` archives);
//! - `values/`: optional values files, applied in name order as `-f`;
//! - `options`: optional `key=value` lines: `release=` (default `rel`),
//!   `namespace=` (default `default`), `kube-version=` (default `1.31.0`),
//!   `api-versions=a/v1,b/v1`;
//! - `expected.yaml`: what `helm template RELEASE chart --namespace NS
//!   --include-crds --kube-version KV [--api-versions ...] -f ...` printed,
//!   or `expected-error.txt`: its error (the text after `Error: `).
//!
//! The expectations were written once by a small program over Helm's own
//! Go packages (v3.19, see docs/helm.md); neither Go nor Helm is needed
//! to run these tests. A case passes when the output is the same text, or
//! the same documents object for object in the same order with the same
//! `# Source:` lines (CRDs from several subcharts in any order: Helm walks
//! them from a Go map). Errors compare as text, except for the wording of
//! a YAML parser's own message after `error converting YAML to JSON`.
//!
//! Two markers change what a case checks:
//! - `fleet-refuses`: fleet refuses what Helm rendered (a function whose
//!   result changes on every call); the file holds a part of fleet's error.
//! - `known-divergence`: fleet is known to differ from Helm here; the file
//!   says how. The case must still differ, so that a fix removes the marker.

mod golden;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use fleet_render::helm::{Capabilities, Release, template};
use fleet_render::yaml::parse_documents;

fn cases() -> Vec<PathBuf> {
    golden::cases("helm", "chart", "HELM_CASE")
}

fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, Rc<[u8]>)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_tree(root, &p, out);
        } else {
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read(&p).expect("readable file").into()));
        }
    }
}

struct Options {
    release: Release,
    caps: Capabilities,
}

fn options(case: &Path) -> Options {
    let mut o = Options {
        release: Release {
            name: "rel".into(),
            namespace: "default".into(),
        },
        caps: Capabilities {
            kube_version: "1.31.0".into(),
            api_versions: Vec::new(),
        },
    };
    if let Ok(text) = std::fs::read_to_string(case.join("options")) {
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k.trim() {
                "release" => o.release.name = v.trim().into(),
                "namespace" => o.release.namespace = v.trim().into(),
                "kube-version" => o.caps.kube_version = v.trim().into(),
                "api-versions" => {
                    o.caps.api_versions = v.split(',').map(|s| s.trim().to_string()).collect()
                }
                other => panic!("{}: unknown option {other}", case.display()),
            }
        }
    }
    o
}

fn layers(case: &Path) -> Result<Vec<serde_json::Map<String, serde_json::Value>>, String> {
    let dir = case.join("values");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut files: Vec<PathBuf> = rd.map(|e| e.expect("entry").path()).collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).expect("readable values file");
        let name = format!(
            "values/{}",
            f.file_name().expect("a file").to_string_lossy()
        );
        let docs = parse_documents(&name, &bytes).map_err(|e| e.to_string())?;
        match docs.into_iter().next() {
            None => out.push(serde_json::Map::new()),
            Some(serde_json::Value::Object(m)) => out.push(m),
            Some(v) => {
                let kind = if v.is_array() { "array" } else { "string" };
                return Err(format!(
                    "failed to parse {name}: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
                ));
            }
        }
    }
    Ok(out)
}

/// A `helm template` output as (source, document) pairs.
fn documents(text: &str) -> Result<Vec<(String, Option<serde_json::Value>)>, String> {
    let mut out = Vec::new();
    for chunk in text.split("---\n# Source: ").skip(1) {
        let (source, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
        let docs =
            parse_documents(source, body.as_bytes()).map_err(|e| format!("{source}: {e}"))?;
        if docs.is_empty() {
            out.push((source.to_string(), None));
        }
        for d in docs {
            out.push((source.to_string(), Some(d)));
        }
    }
    // CRDs of several subcharts come in Go map order: compare them as a set.
    let (mut crds, rest): (Vec<_>, Vec<_>) =
        out.into_iter().partition(|(s, _)| s.contains("/crds/"));
    crds.sort_by(|a, b| a.0.cmp(&b.0));
    crds.extend(rest);
    Ok(crds)
}

fn check(case: &Path) -> Result<(), String> {
    let mut files = Vec::new();
    let chart_dir = case.join("chart");
    read_tree(&chart_dir, &chart_dir, &mut files);
    let o = options(case);
    let result = layers(case).and_then(|l| {
        template(&files, &l, &o.release, &o.caps).map_err(|e| e.helm_template_message())
    });
    let expected_error = std::fs::read_to_string(case.join("expected-error.txt")).ok();
    match (result, expected_error) {
        (Ok(r), None) => {
            let got = r.text();
            let want = std::fs::read_to_string(case.join("expected.yaml"))
                .map_err(|e| format!("expected.yaml: {e}"))?;
            if got == want {
                return Ok(());
            }
            let (g, w) = (documents(&got)?, documents(&want)?);
            if g == w {
                return Ok(());
            }
            Err(format!("output differs\n--- want\n{want}\n--- got\n{got}"))
        }
        (Ok(r), Some(want)) => Err(format!(
            "rendered, but Helm failed with: {want}\n--- got\n{}",
            r.text()
        )),
        (Err(e), None) => Err(format!("failed: {e}")),
        (Err(e), Some(want)) => {
            let want = want.strip_suffix('\n').unwrap_or(&want);
            let cut = "error converting YAML to JSON";
            let same = match (want.find(cut), e.find(cut)) {
                (Some(i), Some(j)) => want[..i] == e[..j],
                _ => want == e,
            };
            if same {
                Ok(())
            } else {
                Err(format!("error differs\n--- want\n{want}\n--- got\n{e}"))
            }
        }
    }
}

fn check_case(case: &Path) -> Result<(), String> {
    if let Ok(want) = std::fs::read_to_string(case.join("fleet-refuses")) {
        let mut files = Vec::new();
        let chart_dir = case.join("chart");
        read_tree(&chart_dir, &chart_dir, &mut files);
        let o = options(case);
        let l = layers(case)?;
        return match template(&files, &l, &o.release, &o.caps) {
            Ok(_) => Err("rendered, but fleet refuses this chart".into()),
            Err(e) if e.to_string().contains(want.trim()) => Ok(()),
            Err(e) => Err(format!("refused, but not with {:?}: {e}", want.trim())),
        };
    }
    let result = check(case);
    if case.join("known-divergence").exists() {
        return match result {
            Ok(()) => Err("passes now: remove its known-divergence marker".into()),
            Err(_) => Ok(()),
        };
    }
    result
}

#[test]
fn charts_render_as_helm_template_renders_them() {
    let cases = cases();
    if std::env::var("HELM_CASE").is_err() {
        assert!(cases.len() >= 60, "{} cases under tests/helm", cases.len());
    }
    let marked = cases
        .iter()
        .filter(|c| c.join("known-divergence").exists())
        .count();
    println!("{} cases, {marked} known divergences", cases.len());
    golden::check_all(&cases, check_case);
}

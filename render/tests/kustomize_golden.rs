//! Golden tests for the native kustomize engine.
//!
//! Each directory under `tests/kustomize/` is one case:
//! - `input/` is a small repository tree;
//! - `dir` (optional) names the directory to build, relative to `input/`
//!   (default: `input/` itself);
//! - `expected.yaml` is what `kubectl kustomize` (kustomize v5.5) printed for
//!   it, written by `tests/kustomize/regenerate.sh` and committed; or
//! - `error.txt` (refused cases) lists, one per line, strings the error must
//!   contain (the first line is the file the error must name).
//!
//! Objects are compared keyed by apiVersion, kind, namespace and name, and
//! then their order (kubectl's legacy sort, or the case's `sortOptions`);
//! kubectl is not needed to run these tests.

mod golden;

use std::path::{Path, PathBuf};

use fleet_render::kustomize::build;
use fleet_render::source::MemTree;
use fleet_render::yaml::{parse_documents, to_canonical};
use serde_json::Value;

fn cases() -> Vec<PathBuf> {
    golden::cases("kustomize", "input", "KUSTOMIZE_CASE")
}

fn key(v: &Value) -> String {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    format!(
        "{} {} {}/{}",
        s("/apiVersion"),
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name")
    )
}

fn build_dir(case: &Path) -> String {
    std::fs::read_to_string(case.join("dir"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Runs one case; `Err` describes the mismatch.
fn check(case: &Path) -> Result<(), String> {
    let tree = MemTree::from_dir(&case.join("input")).map_err(|e| e.to_string())?;
    let dir = build_dir(case);
    let got = build(&tree, &dir);
    if let Ok(want) = std::fs::read_to_string(case.join("error.txt")) {
        let err = match got {
            Ok(_) => return Err("built, but the case expects an error".into()),
            Err(e) => e,
        };
        let mut lines = want.lines().filter(|l| !l.trim().is_empty());
        let file = lines.next().unwrap_or_default().trim();
        if err.file != file {
            return Err(format!(
                "error names file {:?}, want {file:?}: {err}",
                err.file
            ));
        }
        for l in lines {
            if !err.reason.contains(l.trim()) {
                return Err(format!(
                    "error {:?} does not contain {:?}",
                    err.reason,
                    l.trim()
                ));
            }
        }
        return Ok(());
    }
    let got = got.map_err(|e| format!("build failed: {e}"))?;
    let expected = std::fs::read(case.join("expected.yaml")).map_err(|e| e.to_string())?;
    let want = parse_documents("expected.yaml", &expected).map_err(|e| e.to_string())?;
    let mut got: Vec<(String, &Value)> = got.iter().map(|v| (key(v), v)).collect();
    let mut want: Vec<(String, &Value)> = want.iter().map(|v| (key(v), v)).collect();
    let got_order: Vec<String> = got.iter().map(|x| x.0.clone()).collect();
    let want_order: Vec<String> = want.iter().map(|x| x.0.clone()).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let got_keys: Vec<&str> = got.iter().map(|x| x.0.as_str()).collect();
    let want_keys: Vec<&str> = want.iter().map(|x| x.0.as_str()).collect();
    if got_keys != want_keys {
        return Err(format!(
            "objects differ:\n  got  {got_keys:?}\n  want {want_keys:?}"
        ));
    }
    for ((k, g), (_, w)) in got.iter().zip(&want) {
        if g != w {
            return Err(format!(
                "{k} differs\n--- got\n{}--- want\n{}",
                to_canonical(g),
                to_canonical(w)
            ));
        }
    }
    if got_order != want_order {
        return Err(format!(
            "objects are in another order:\n  got  {got_order:?}\n  want {want_order:?}"
        ));
    }
    Ok(())
}

#[test]
fn kustomize_goldens_match_kubectl() {
    let cases = cases();
    if std::env::var_os("KUSTOMIZE_CASE").is_none() {
        assert!(cases.len() >= 40, "only {} golden cases", cases.len());
    }
    golden::check_all(&cases, check);
}

#[test]
fn every_case_has_an_expectation() {
    for case in cases() {
        assert!(
            case.join("expected.yaml").is_file() || case.join("error.txt").is_file(),
            "{} has neither expected.yaml nor error.txt",
            case.display()
        );
    }
}

#[test]
fn same_input_same_output() {
    for case in cases()
        .into_iter()
        .filter(|c| c.join("expected.yaml").is_file())
    {
        let tree = MemTree::from_dir(&case.join("input")).unwrap();
        let dir = build_dir(&case);
        assert_eq!(build(&tree, &dir), build(&tree, &dir), "{}", case.display());
    }
}

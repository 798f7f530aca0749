//! Errors of the fields added to the native engine: each names the
//! kustomization file and the field.

use super::{KustomizeError, build};
use crate::source::MemTree;

const SVC: &str =
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n";

fn err(files: &[(&str, &str)], dir: &str) -> KustomizeError {
    let mut t = MemTree::new();
    for (p, c) in files {
        t = t.with(p, c);
    }
    build(&t, dir).expect_err("the build must fail")
}

fn assert_names(e: &KustomizeError, file: &str, parts: &[&str]) {
    assert_eq!(e.file, file, "{e}");
    for p in parts {
        assert!(e.reason.contains(p), "{e:?} does not contain {p:?}");
    }
}

#[test]
fn configurations_conflicting_create_names_the_file() {
    let e = err(
        &[
            ("app/svc.yaml", SVC),
            (
                "app/kustomization.yaml",
                "resources: [svc.yaml]\nconfigurations: [cfg.yaml]\n",
            ),
            (
                "app/cfg.yaml",
                "commonLabels:\n- path: spec/selector\n  version: v1\n  kind: Service\n  create: false\n",
            ),
        ],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["configurations:", "cfg.yaml", "conflicting fieldspecs"],
    );
}

#[test]
fn configurations_missing_file_is_named() {
    let e = err(
        &[("app/kustomization.yaml", "configurations: [nope.yaml]\n")],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["configurations:", "app/nope.yaml", "not found"],
    );
}

#[test]
fn replacements_source_that_matches_nothing() {
    let e = err(
        &[
            ("app/svc.yaml", SVC),
            (
                "app/kustomization.yaml",
                "resources: [svc.yaml]\nreplacements:\n- source: {kind: ConfigMap, name: missing}\n  targets:\n  - select: {kind: Service}\n",
            ),
        ],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["replacements[0]:", "nothing selected", "kind=ConfigMap"],
    );
}

#[test]
fn replacements_target_field_missing_without_create() {
    let e = err(
        &[
            ("app/svc.yaml", SVC),
            (
                "app/kustomization.yaml",
                "resources: [svc.yaml]\nreplacements:\n- source: {kind: Service, name: web}\n  targets:\n  - select: {kind: Service}\n    fieldPaths: [spec.clusterIP]\n",
            ),
        ],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &[
            "replacements[0]:",
            "unable to find field \"spec.clusterIP\"",
        ],
    );
}

#[test]
fn replacements_path_and_inline_together() {
    let e = err(
        &[
            ("app/r.yaml", "[]\n"),
            (
                "app/kustomization.yaml",
                "replacements:\n- path: r.yaml\n  source: {kind: Service}\n",
            ),
        ],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["replacements[0]:", "both path and inline"],
    );
}

#[test]
fn vars_without_an_object_and_duplicates() {
    let e = err(
        &[
            ("app/svc.yaml", SVC),
            (
                "app/kustomization.yaml",
                "resources: [svc.yaml]\nvars:\n- name: SVC\n  objref: {kind: Service, name: web}\n",
            ),
        ],
        "app",
    );
    // No version: kustomize matches the GVK exactly, so nothing is bound.
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["vars:", "SVC", "cannot be mapped"],
    );

    let e = err(
        &[
            ("app/base/svc.yaml", SVC),
            (
                "app/base/kustomization.yaml",
                "resources: [svc.yaml]\nvars:\n- name: SVC\n  objref: {kind: Service, version: v1, name: web}\n",
            ),
            (
                "app/kustomization.yaml",
                "resources: [base]\nvars:\n- name: SVC\n  objref: {kind: Service, version: v1, name: web}\n",
            ),
        ],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["vars:", "var 'SVC' already encountered"],
    );
}

#[test]
fn transformers_refuse_krm_functions_and_unknown_kinds() {
    let e = err(
        &[
            ("app/svc.yaml", SVC),
            (
                "app/kustomization.yaml",
                "resources: [svc.yaml]\ntransformers: [fn.yaml]\n",
            ),
            (
                "app/fn.yaml",
                "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: x\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./label.sh\n",
            ),
        ],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &[
            "transformers:",
            "app/fn.yaml",
            "config.kubernetes.io/function",
            "refused",
        ],
    );

    let e = err(
        &[(
            "app/kustomization.yaml",
            "transformers:\n- |\n  apiVersion: builtin\n  kind: HelmChartInflationGenerator\n  metadata: {name: h}\n",
        )],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["transformers:", "HelmChartInflationGenerator", "refused"],
    );
}

#[test]
fn validators_that_change_objects_fail() {
    let e = err(
        &[
            ("app/svc.yaml", SVC),
            (
                "app/kustomization.yaml",
                "resources: [svc.yaml]\nvalidators:\n- |\n  apiVersion: builtin\n  kind: LabelTransformer\n  metadata: {name: v}\n  labels: {env: prod}\n  fieldSpecs: [{path: metadata/labels, create: true}]\n",
            ),
        ],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["validators:", "shouldn't modify"],
    );
}

#[test]
fn sort_options_and_build_metadata_are_checked() {
    let e = err(
        &[("app/kustomization.yaml", "sortOptions:\n  order: random\n")],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["sortOptions:", "fifo, legacy"],
    );
    let e = err(
        &[(
            "app/kustomization.yaml",
            "buildMetadata: [originAnnotation]\n",
        )],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["buildMetadata:", "originAnnotation"],
    );
}

#[test]
fn helm_charts_are_not_pulled() {
    let body = "helmCharts:\n- name: redis\n  repo: https://charts.example.com\n";
    let e = err(&[("app/kustomization.yaml", body)], "app");
    assert_names(
        &e,
        "app/kustomization.yaml",
        &[
            "helmCharts[0] redis",
            "not found at 'app/charts/redis'",
            "does not pull",
        ],
    );
}

#[test]
fn the_legacy_helm_plugin_field_stays_refused() {
    let body = "helmChartInflationGenerator:\n- chartName: redis\n";
    let e = err(&[("app/kustomization.yaml", body)], "app");
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["helmChartInflationGenerator", "refused"],
    );
}

#[test]
fn openapi_names_the_schema_file_and_the_version() {
    let e = err(
        &[("app/kustomization.yaml", "openapi:\n  path: schema.json\n")],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["openapi: path", "app/schema.json", "not found"],
    );
    let e = err(
        &[("app/kustomization.yaml", "openapi:\n  version: v1.30.0\n")],
        "app",
    );
    assert_names(
        &e,
        "app/kustomization.yaml",
        &["openapi: version", "v1.30.0", "v1.21.2"],
    );
    let e = err(
        &[
            (
                "app/kustomization.yaml",
                "openapi:\n  path: s.json\n  version: v1.21.2\n",
            ),
            ("app/s.json", "{}"),
        ],
        "app",
    );
    assert_names(&e, "app/kustomization.yaml", &["cannot use both"]);
}

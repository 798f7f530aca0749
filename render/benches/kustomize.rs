//! Builds a realistic overlay tree (`benches/kustomize-tree`: a base with a
//! Deployment, Service, ServiceAccount, ConfigMap and Secret generators, and
//! dev/staging/prod overlays with namespace, prefix, labels, a strategic
//! merge patch, a JSON patch, images, replicas and a merged generator).
//!
//! Run with `cargo bench -p fleet-render --bench kustomize`; docs/kustomize.md
//! compares the numbers with `kubectl kustomize` on the same tree.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_render::kustomize::build;
use fleet_render::source::MemTree;

fn tree() -> MemTree {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/kustomize-tree");
    MemTree::from_dir(&root).expect("benches/kustomize-tree is readable")
}

fn bench(c: &mut Criterion) {
    let t = tree();
    for env in ["dev", "staging", "prod"] {
        let objects = build(&t, &format!("overlays/{env}")).expect("the bench tree builds");
        assert_eq!(objects.len(), 5, "{env}");
    }
    c.bench_function("kustomize build overlays/prod", |b| {
        b.iter(|| build(black_box(&t), black_box("overlays/prod")).unwrap())
    });
    c.bench_function("kustomize build all three overlays", |b| {
        b.iter(|| {
            for env in ["overlays/dev", "overlays/staging", "overlays/prod"] {
                black_box(build(black_box(&t), env).unwrap());
            }
        })
    });
}

/// An operator scaffold (kubebuilder's `config/default`: CRD, RBAC, manager,
/// webhooks, cert-manager, with `configurations` and `replacements`), the
/// golden case `59-kubebuilder-default-replacements`.
fn bench_operator(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kustomize/59-kubebuilder-default-replacements/input");
    let t = MemTree::from_dir(&root).expect("the golden case is readable");
    assert_eq!(build(&t, "config/default").expect("it builds").len(), 15);
    c.bench_function("kustomize build kubebuilder config/default", |b| {
        b.iter(|| build(black_box(&t), black_box("config/default")).unwrap())
    });
}

/// An operator overlay with a custom OpenAPI schema (`openapi: path`), the
/// golden case `75-openapi-custom-schema-operator-overlay`: the schema is
/// compiled once and memoized, so each build after the first reuses it.
fn bench_openapi(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kustomize/75-openapi-custom-schema-operator-overlay/input");
    let t = MemTree::from_dir(&root).expect("the golden case is readable");
    assert_eq!(build(&t, "clusters/prod").expect("it builds").len(), 5);
    c.bench_function("kustomize build operator overlay with openapi", |b| {
        b.iter(|| build(black_box(&t), black_box("clusters/prod")).unwrap())
    });
}

criterion_group!(benches, bench, bench_operator, bench_openapi);
criterion_main!(benches);

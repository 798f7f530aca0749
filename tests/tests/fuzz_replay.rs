//! Replays the fuzz corpora as ordinary tests: every file of
//! `fuzz/corpus/NAME/` through the fuzz body `NAME` of `fuzz/targets.rs`
//! (the seeds, and the reproducer of every crash found). A body panics only
//! on a bug; a failure names the corpus files that made it panic.
//!
//! The generated seeds are written by the ignored test
//! `write_generated_seeds` (`cargo test --workspace --test fuzz_replay --
//! --ignored`); the others are written by hand.

#[path = "../../fuzz/targets.rs"]
mod targets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn corpus_files(name: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("readable corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "{}: the corpus of {name} is empty",
        dir.display()
    );
    files
}

fn replay(name: &str) {
    let (_, body) = targets::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fuzz target {name}"));
    let files = corpus_files(name);
    let mut failed = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            eprintln!("fuzz target {name} panicked on {}", path.display());
            failed.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(
        failed.is_empty(),
        "fuzz target {name}: {} of {} corpus files panic: {failed:?}",
        failed.len(),
        files.len()
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        #[test]
        fn every_target_is_replayed_and_every_corpus_has_a_target() {
            let tested = [$(stringify!($name)),*];
            let all: Vec<&str> = targets::ALL.iter().map(|(n, _)| *n).collect();
            assert_eq!(all, tested);
            for entry in std::fs::read_dir(fuzz_dir().join("corpus")).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().into_owned();
                assert!(all.contains(&name.as_str()), "corpus {name} has no fuzz target");
                assert!(
                    fuzz_dir().join(format!("fuzz_targets/{name}.rs")).is_file(),
                    "fuzz target {name} has no cargo-fuzz binary"
                );
            }
        }
    };
}

replay_tests!(
    yaml_load,
    yaml_kyaml,
    kustomize_build,
    decode_state,
    status_limits,
    identity_uri,
    chunk_reassembly,
    bundle_unpack,
    provenance_statement,
    sshsig_verify,
    age_decrypt,
    sops_open,
);

/// Seeds that fail early would leave the fuzzer far from the code they are
/// for: the kustomize seeds build (but the refused ones), the states decode
/// (but the one with a wrong digest), the status reports decode.
#[test]
fn seeds_reach_the_code_they_seed() {
    for path in corpus_files("kustomize_build") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let (tree, dir) = targets::kustomize_tree(&data).expect("a repository");
        let built = fleet_render::kustomize::build(&tree, &dir);
        let refused = name.contains("cycle") || name.contains("bad-paths");
        match built {
            Ok(objs) => assert!(!refused && !objs.is_empty(), "{name}: built {objs:?}"),
            Err(e) => assert!(refused, "{name}: {e}"),
        }
    }
    for path in corpus_files("decode_state") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let got = fleet_proto::convert::decode_state(&std::fs::read(&path).unwrap());
        assert_eq!(
            got.is_ok(),
            !name.contains("wrong-digest"),
            "{name}: {got:?}"
        );
    }
    for path in corpus_files("status_limits") {
        let data = std::fs::read(&path).unwrap();
        assert!(
            <fleet_proto::v1::StatusReport as prost::Message>::decode(&data[2..]).is_ok(),
            "{}",
            path.display()
        );
    }
}

/// Writes the generated seeds (`gen-*`) of the corpora: encoded states,
/// status reports and hub message streams, and kustomize builds taken from
/// the golden cases of `render/tests/kustomize/`.
#[test]
#[ignore = "writes the generated seeds into fuzz/corpus"]
fn write_generated_seeds() {
    seeds::write_all(&fuzz_dir().join("corpus"));
}

mod seeds {
    use std::collections::BTreeMap;
    use std::path::Path;

    use fleet_proto::v1 as pb;
    use fleet_render::{AppState, CommitMeta, DesiredState, RenderError, Resource, SyncPolicy};
    use prost::Message as _;
    use serde_json::json;

    fn write(corpus: &Path, target: &str, name: &str, data: &[u8]) {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("gen-{name}")), data).unwrap();
    }

    fn commit() -> CommitMeta {
        CommitMeta {
            id: "3f1c2a9d8e7b6a5f4e3d2c1b0a9f8e7d6c5b4a39".into(),
            author: "Alice <alice@example.com>".into(),
            message: "web: bump to v1.4.2\n\nRelease notes.".into(),
            time: 1_767_225_600,
        }
    }

    fn state(
        apps: &[(&str, Vec<serde_json::Value>, Option<&str>)],
        sync: SyncPolicy,
    ) -> DesiredState {
        let apps: BTreeMap<String, AppState> = apps
            .iter()
            .map(|(name, objs, error)| {
                let app = AppState {
                    source_revision: Some(commit().id),
                    error: error.map(|reason| RenderError {
                        app: name.to_string(),
                        file: format!("apps/{name}/kustomization.yaml"),
                        reason: reason.into(),
                    }),
                    resources: objs
                        .iter()
                        .map(|o| Resource::from_value(o).unwrap())
                        .collect::<Vec<_>>()
                        .into(),
                };
                (name.to_string(), app)
            })
            .collect();
        DesiredState::new("prod-eu-1".into(), commit(), sync, apps)
    }

    fn states() -> Vec<(&'static str, DesiredState)> {
        let deployment = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "ghcr.io/acme/web:v1.4.2",
                        "ports": [{"containerPort": 8080}]}]}}}
        });
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        });
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "web-config-7g2k9m4b5c", "namespace": "shop"},
            "data": {"LOG_LEVEL": "info", "ratio": "0.5", "yes": "no"}
        });
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
        let crd = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.acme.io"},
            "spec": {"group": "acme.io", "names": {"kind": "Widget", "plural": "widgets"}, "scope": "Namespaced"}
        });
        vec![
            ("empty", state(&[], SyncPolicy::default())),
            (
                "one-app",
                state(
                    &[(
                        "web",
                        vec![ns.clone(), deployment.clone(), service.clone()],
                        None,
                    )],
                    SyncPolicy::default(),
                ),
            ),
            (
                "two-apps-one-failed",
                state(
                    &[
                        ("web", vec![deployment, service, cm], None),
                        (
                            "widgets",
                            vec![crd],
                            Some("resource 2: metadata.name is missing"),
                        ),
                    ],
                    SyncPolicy {
                        automatic: false,
                        prune: true,
                        self_heal: false,
                        force_conflicts: true,
                    },
                ),
            ),
            (
                "error-only",
                state(
                    &[("api", vec![], Some("kustomize: cycle"))],
                    SyncPolicy::default(),
                ),
            ),
        ]
    }

    fn hub(msg: pb::hub_message::Msg) -> Vec<u8> {
        pb::HubMessage { msg: Some(msg) }.encode_length_delimited_to_vec()
    }

    fn header(bytes: &[u8], digest: &str, chunks: u32) -> pb::hub_message::Msg {
        pb::hub_message::Msg::Header(pb::StateHeader {
            commit: Some((&commit()).into()),
            digest: digest.into(),
            total_size: bytes.len() as u64,
            chunks,
            ..Default::default()
        })
    }

    fn chunk(index: u32, data: &[u8]) -> pb::hub_message::Msg {
        pb::hub_message::Msg::Chunk(pb::StateChunk {
            index,
            data: data.to_vec().into(),
        })
    }

    /// A header and the state in `n` chunks.
    fn split(bytes: &[u8], digest: &str, n: usize) -> Vec<u8> {
        let size = bytes.len().div_ceil(n).max(1);
        let pieces: Vec<&[u8]> = bytes.chunks(size).collect();
        let mut out = hub(header(bytes, digest, pieces.len() as u32));
        for (i, p) in pieces.iter().enumerate() {
            out.extend(hub(chunk(i as u32, p)));
        }
        out
    }

    fn status(count: u16, r: &pb::StatusReport) -> Vec<u8> {
        let mut out = count.to_le_bytes().to_vec();
        out.extend(r.encode_to_vec());
        out
    }

    fn res(id: &str, state: &str, health: &str, message: &str) -> pb::ResourceStatus {
        pb::ResourceStatus {
            app: "web".into(),
            id: id.into(),
            state: state.into(),
            message: message.into(),
            health: health.into(),
            health_message: if health == "degraded" {
                "0/3 replicas available".into()
            } else {
                String::new()
            },
        }
    }

    /// A golden kustomize case in the `kustomize_build` format: the
    /// kustomization of the build directory first.
    fn kustomize_case(case: &Path) -> Vec<u8> {
        let input = case.join("input");
        let dir = std::fs::read_to_string(case.join("dir"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let tree = fleet_render::source::MemTree::from_dir(&input).unwrap();
        let mut files: Vec<(&str, &[u8])> = tree.files().collect();
        let first = |p: &str| {
            let name = p.rsplit('/').next().unwrap();
            fleet_render::source::parent(p) == dir
                && matches!(
                    name,
                    "kustomization.yaml" | "kustomization.yml" | "Kustomization"
                )
        };
        files.sort_by_key(|(p, _)| (!first(p), p.to_string()));
        let mut out = Vec::new();
        for (p, data) in files {
            out.extend_from_slice(format!("##> {p}\n").as_bytes());
            out.extend_from_slice(data);
            if !data.ends_with(b"\n") {
                out.push(b'\n');
            }
        }
        out
    }

    pub fn write_all(corpus: &Path) {
        let states = states();
        for (name, s) in &states {
            write(
                corpus,
                "decode_state",
                name,
                &fleet_proto::convert::encode_state(s),
            );
        }
        // A state whose digest does not match its content.
        let mut wrong = fleet_proto::convert::encode_state(&states[1].1).to_vec();
        let digest = states[1].1.digest.as_bytes();
        let at = wrong
            .windows(digest.len())
            .position(|w| w == digest)
            .unwrap();
        wrong[at] = if wrong[at] == b'0' { b'1' } else { b'0' };
        write(corpus, "decode_state", "wrong-digest", &wrong);

        let (_, s) = &states[2];
        let bytes = fleet_proto::convert::encode_state(s);
        write(
            corpus,
            "chunk_reassembly",
            "one-chunk",
            &split(&bytes, &s.digest, 1),
        );
        write(
            corpus,
            "chunk_reassembly",
            "three-chunks",
            &split(&bytes, &s.digest, 3),
        );
        let mut same = hub(pb::hub_message::Msg::Header(pb::StateHeader {
            commit: Some((&commit()).into()),
            digest: s.digest.clone(),
            total_size: 0,
            chunks: 0,
            ..Default::default()
        }));
        same.extend(hub(pb::hub_message::Msg::DiffRequest(pb::DiffRequest {
            id: 7,
            app: "web".into(),
            ..Default::default()
        })));
        same.extend(split(
            &fleet_proto::convert::encode_state(&states[0].1),
            &states[0].1.digest,
            1,
        ));
        write(
            corpus,
            "chunk_reassembly",
            "same-content-then-diff-then-state",
            &same,
        );
        let mut restart = hub(header(&bytes, &s.digest, 2));
        restart.extend(hub(chunk(0, &bytes[..10])));
        restart.extend(split(&bytes, &s.digest, 2));
        write(corpus, "chunk_reassembly", "restarted", &restart);
        let mut bad = hub(chunk(0, b"orphan"));
        bad.extend(hub(header(&bytes, &s.digest, 2)));
        bad.extend(hub(chunk(1, &bytes[..10])));
        bad.extend(hub(header(&bytes[..4], &s.digest, 1)));
        bad.extend(hub(chunk(0, &bytes[..5])));
        bad.extend(hub(header(&bytes[..4], &s.digest, 3)));
        bad.extend(hub(chunk(0, &bytes[..1])));
        bad.extend(hub(chunk(1, &bytes[..1])));
        bad.extend(hub(chunk(2, &bytes[..1])));
        write(corpus, "chunk_reassembly", "framing-errors", &bad);
        let mut huge = hub(pb::hub_message::Msg::Header(pb::StateHeader {
            commit: None,
            digest: "d".into(),
            total_size: 2 << 30,
            chunks: 2048,
            ..Default::default()
        }));
        huge.extend(hub(pb::hub_message::Msg::Header(pb::StateHeader {
            commit: None,
            digest: "d".into(),
            total_size: 1 << 30,
            chunks: u32::MAX,
            ..Default::default()
        })));
        huge.extend(hub(chunk(u32::MAX, b"x")));
        write(corpus, "chunk_reassembly", "huge-announcements", &huge);

        let ok = pb::StatusReport {
            revision: commit().id,
            digest: s.digest.clone(),
            sync: "synced".into(),
            resources: vec![
                res("apps/Deployment/shop/web", "synced", "healthy", ""),
                res("/Service/shop/web", "synced", "", ""),
            ],
            observed_at: 1_767_225_660,
            ..Default::default()
        };
        write(corpus, "status_limits", "small", &status(0, &ok));
        let mut failing = ok.clone();
        failing.sync = "failed".into();
        failing.resources.push(res(
            "apps/Deployment/shop/api",
            "failed",
            "degraded",
            "admission webhook \"policy.acme.io\" denied the request: image is not signed",
        ));
        write(
            corpus,
            "status_limits",
            "many-entries",
            &status(25_000, &failing),
        );
        let mut long = failing.clone();
        long.resources[2].message = "denied ".repeat(500);
        long.resources[0].health_message = "é".repeat(1500);
        write(corpus, "status_limits", "long-texts", &status(900, &long));
        let mut words = ok.clone();
        words.sync = "x".repeat(300);
        write(corpus, "status_limits", "long-word", &status(3, &words));

        let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../render/tests/kustomize");
        for case in [
            "01-resources-files",
            "03-prefix-suffix-references",
            "08-images",
            "11-smp-containers",
            "14-json6902-patches",
            "16-configmap-generator",
            "21-overlay-of-overlay",
            "22-components",
            "35-smp-null-and-map-replace",
            "60-scalars-yaml11-and-kyaml",
            "67-vars-kubebuilder-v2",
            "69-replacements-select-reject-files",
            "93-cycle",
        ] {
            write(
                corpus,
                "kustomize_build",
                case,
                &kustomize_case(&golden.join(case)),
            );
        }
    }
}

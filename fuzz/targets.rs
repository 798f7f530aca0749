//! Fuzz bodies: one function per target, each taking arbitrary bytes and
//! panicking only when it finds a bug. They use the public APIs of
//! `fleet-render` and `fleet-proto` only.
//!
//! Included twice: by each `fuzz_targets/NAME.rs` (cargo-fuzz, libFuzzer) and
//! by `tests/tests/fuzz_replay.rs`, which replays `fuzz/corpus/NAME/` as an
//! ordinary test.
//!
//! Input formats:
//! - `yaml_load`, `yaml_kyaml`: a YAML stream.
//! - `kustomize_build`: a small repository in one text. Lines `##> PATH`
//!   start a file at `PATH`; text before the first one is `kustomization.yaml`
//!   at the root. The build runs in the directory of the first file.
//! - `decode_state`: an encoded `DesiredState`.
//! - `status_limits`: two bytes (little-endian u16, how many resource entries
//!   to grow the report to by repeating its own), then an encoded
//!   `StatusReport`.
//! - `identity_uri`: a certificate URI.
//! - `chunk_reassembly`: length-delimited `HubMessage`s.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use fleet_proto::chunks::{Reassembly, Step};
use fleet_proto::v1 as pb;
use fleet_render::source::{MemTree, normalize, parent};
use fleet_render::yaml::{self, Schema};
use prost::Message as _;
use serde_json::Value;

/// Every target, by name: what the replay test runs over `fuzz/corpus/NAME/`.
pub const ALL: &[(&str, fn(&[u8]))] = &[
    ("yaml_load", yaml_load),
    ("yaml_kyaml", yaml_kyaml),
    ("kustomize_build", kustomize_build),
    ("decode_state", decode_state),
    ("status_limits", status_limits),
    ("identity_uri", identity_uri),
    ("chunk_reassembly", chunk_reassembly),
    ("bundle_unpack", bundle_unpack),
    ("provenance_statement", provenance_statement),
    ("sshsig_verify", sshsig_verify),
    ("age_decrypt", age_decrypt),
    ("sops_open", sops_open),
];

/// The Kubernetes reading of a YAML stream; every document's canonical form
/// reads back as the same value, and is a fixed point.
pub fn yaml_load(data: &[u8]) {
    let Ok(values) = yaml::parse_documents("fuzz.yaml", data) else {
        // The other readings must not panic either.
        let _ = yaml::parse_documents_as(Schema::Kyaml, "fuzz.yaml", data);
        let _ = yaml::parse_one::<Value>("fuzz.yaml", data);
        return;
    };
    for v in &values {
        let text = yaml::to_canonical(v);
        let back = match yaml::parse_documents("canonical.yaml", text.as_bytes()) {
            Ok(back) => back,
            Err(e) => panic!("canonical form does not parse: {e}\n{text}"),
        };
        assert_eq!(
            back.as_slice(),
            std::slice::from_ref(v),
            "canonical form reads back differently:\n{text}"
        );
        assert_eq!(
            yaml::to_canonical(&back[0]),
            text,
            "canonical form is not stable"
        );
        // What the renderer does with each object.
        if let Ok(r) = fleet_render::Resource::from_value(v) {
            assert_eq!(&*r.manifest, text);
            let _ = r.id.to_string();
        }
    }
    let stream = yaml::to_canonical_stream(&values);
    let back = yaml::parse_documents("stream.yaml", stream.as_bytes())
        .unwrap_or_else(|e| panic!("canonical stream does not parse: {e}\n{stream}"));
    assert_eq!(back, values, "canonical stream reads back differently");
    let _ = yaml::parse_documents_as(Schema::Kyaml, "fuzz.yaml", data);
    let _ = yaml::parse_one::<Value>("fuzz.yaml", data);
}

/// kustomize's kyaml reading of resources; the paths it records point into
/// the document.
pub fn yaml_kyaml(data: &[u8]) {
    let Ok(docs) = yaml::parse_kyaml("fuzz.yaml", data) else {
        return;
    };
    for d in &docs {
        assert!(!d.value.is_null());
        let _ = yaml::to_canonical(&d.value);
        for path in &d.empty_nulls {
            assert!(!path.is_empty(), "an empty field at the document root");
        }
    }
}

/// Most files in one `kustomize_build` input.
const MAX_FILES: usize = 32;

/// The repository of a `kustomize_build` input and the directory to build.
pub fn kustomize_tree(data: &[u8]) -> Option<(MemTree, String)> {
    let text = std::str::from_utf8(data).ok()?;
    let mut tree = MemTree::new();
    let mut dir: Option<String> = None;
    let mut files = 0;
    let mut add = |path: Option<&str>, body: &str| {
        if let Some(p) = path {
            tree.insert(p, body.as_bytes());
            dir.get_or_insert_with(|| parent(p).to_string());
        }
    };
    // The text before the first marker, when there is any.
    let mut path = Some("kustomization.yaml".to_string());
    let mut body = String::new();
    let mut preamble = true;
    for line in text.split_inclusive('\n') {
        if let Some(name) = line.strip_prefix("##> ") {
            if !(preamble && body.is_empty()) {
                add(path.as_deref(), &body);
            }
            preamble = false;
            body.clear();
            files += 1;
            if files > MAX_FILES {
                return None;
            }
            // A path that leaves the root, or names the root, is skipped.
            path = normalize(name.trim()).filter(|p| !p.is_empty());
        } else {
            body.push_str(line);
        }
    }
    if !(preamble && body.is_empty()) {
        add(path.as_deref(), &body);
    }
    Some((tree, dir.unwrap_or_default()))
}

/// A kustomize build of a small repository: no panic, and the same output
/// twice.
pub fn kustomize_build(data: &[u8]) {
    let Some((tree, dir)) = kustomize_tree(data) else {
        return;
    };
    let first = fleet_render::kustomize::build(&tree, &dir);
    let second = fleet_render::kustomize::build(&tree, &dir);
    match (&first, &second) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "two builds of the same tree differ");
            for v in a {
                let _ = yaml::to_canonical(v);
                let _ = fleet_render::Resource::from_value(v);
            }
        }
        (Err(a), Err(b)) => assert_eq!(a, b, "two builds of the same tree fail differently"),
        _ => panic!("one build succeeds, the other fails: {first:?} / {second:?}"),
    }
}

/// Decoding a state: no panic on any bytes, and encoding is lossless for any
/// content (every decoded message, its digests made right, round trips).
pub fn decode_state(data: &[u8]) {
    if let Ok(s) = fleet_proto::convert::decode_state(data) {
        let bytes = fleet_proto::convert::encode_state(&s);
        let back = fleet_proto::convert::decode_state(&bytes)
            .unwrap_or_else(|e| panic!("a decoded state does not decode again: {e}"));
        assert_eq!(back, s);
        let _ = s.to_yaml_stream();
    }
    let Ok(msg) = pb::DesiredState::decode(data) else {
        return;
    };
    let mut apps = BTreeMap::new();
    for a in msg.apps {
        let mut resources = Vec::new();
        for r in a.resources {
            let Ok(manifest) = String::from_utf8(r.manifest.to_vec()) else {
                continue;
            };
            resources.push(fleet_render::Resource {
                id: fleet_render::ResourceId {
                    group: fleet_render::resource::group_of(&r.api_version).to_string(),
                    kind: r.kind,
                    namespace: r.namespace,
                    name: r.name,
                },
                api_version: r.api_version,
                digest: fleet_render::digest::sha256(manifest.as_bytes()),
                manifest: Arc::from(manifest),
            });
        }
        apps.insert(
            a.name,
            fleet_render::AppState {
                source_revision: Some(a.source_revision),
                error: a.error.map(Into::into),
                resources: resources.into(),
            },
        );
    }
    let sync = msg
        .sync
        .map_or_else(fleet_render::SyncPolicy::default, |s| {
            fleet_render::SyncPolicy {
                automatic: s.automatic,
                prune: s.prune,
                self_heal: s.self_heal,
                force_conflicts: s.force_conflicts,
            }
        });
    let state = fleet_render::DesiredState::new(
        msg.cluster,
        msg.commit
            .map(fleet_render::CommitMeta::from)
            .unwrap_or_default(),
        sync,
        apps,
    );
    let bytes = fleet_proto::convert::encode_state(&state);
    match fleet_proto::convert::decode_state(&bytes) {
        Ok(back) => assert_eq!(
            back, state,
            "a state changed in an encode/decode round trip"
        ),
        Err(e) => panic!("an encoded state does not decode: {e}"),
    }
}

/// Whether every field `trim_status` leaves alone is within its bound.
fn words_fit(s: &pb::StatusReport) -> bool {
    use fleet_proto::limits::MAX_WORD_LEN;
    [&s.revision, &s.digest, &s.sync]
        .iter()
        .all(|w| w.len() <= MAX_WORD_LEN)
        && s.resources
            .iter()
            .all(|r| r.state.len() <= MAX_WORD_LEN && r.health.len() <= MAX_WORD_LEN)
}

/// A spoke's status report: checking never panics, and a report trimmed by
/// `trim_status` passes `check_status` (when the words it does not trim fit),
/// keeping every entry that reports a problem as long as they fit.
pub fn status_limits(data: &[u8]) {
    let Some((count, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let Ok(mut s) = pb::StatusReport::decode(rest) else {
        return;
    };
    let mut count = u16::from_le_bytes(*count) as usize;
    if !s.resources.is_empty() && count > s.resources.len() {
        // At most about four times the byte bound, so one run stays fast.
        let each = s
            .resources
            .iter()
            .map(|r| r.encoded_len() + 3)
            .sum::<usize>()
            / s.resources.len();
        count = count.min(4 * fleet_proto::limits::MAX_STATUS_BYTES / each.max(1));
    }
    if !s.resources.is_empty() && count > s.resources.len() {
        let own = s.resources.clone();
        s.resources
            .extend(own.iter().cycle().take(count - own.len()).cloned());
    }
    let checked = fleet_proto::limits::check_status(&s);
    let before = s.resources.len();
    let mut trimmed = s.clone();
    let dropped = fleet_proto::limits::trim_status(&mut trimmed);
    assert_eq!(dropped, before - trimmed.resources.len());
    if checked.is_ok() {
        // A report within bounds is left as it is.
        assert_eq!(dropped, 0);
        assert_eq!(trimmed, s, "trim_status changed a report within bounds");
    }
    if words_fit(&s) {
        if let Err(v) = fleet_proto::limits::check_status(&trimmed) {
            panic!("a trimmed report is refused: {v}");
        }
        assert_eq!(
            fleet_proto::limits::trim_status(&mut trimmed.clone()),
            0,
            "trimming twice drops more"
        );
    }
}

/// A peer's identity from its certificate URI: what parses prints back as
/// the same URI.
pub fn identity_uri(data: &[u8]) {
    use fleet_proto::identity::{Identity, Role};
    let s = String::from_utf8_lossy(data);
    if let Some(id) = Identity::from_uri(&s) {
        let uri = id.uri();
        assert_eq!(uri, s, "an identity prints as another URI");
        assert_eq!(Identity::from_uri(&uri), Some(id.clone()));
        let _ = id.to_string();
    }
    if let Some(r) = Role::parse(&s) {
        assert_eq!(r.as_str(), s);
    }
}

/// Most messages fed from one `chunk_reassembly` input.
const MAX_MESSAGES: usize = 4096;

/// Chunk reassembly fed any sequence of hub messages: a complete state is
/// exactly the chunks sent since its header, of the announced size.
pub fn chunk_reassembly(data: &[u8]) {
    use pb::hub_message::Msg;
    let mut buf = data;
    let mut r = Reassembly::new();
    // What the chunks accepted since the last header make.
    let mut sent: Option<(pb::StateHeader, Vec<u8>)> = None;
    for _ in 0..MAX_MESSAGES {
        if buf.is_empty() {
            break;
        }
        let Ok(msg) = pb::HubMessage::decode_length_delimited(&mut buf) else {
            break;
        };
        match msg.msg {
            Some(Msg::Header(h)) => {
                let res = r.header(h.clone());
                sent = None;
                match res {
                    Ok(Step::Pending) => {
                        assert!(h.total_size > 0 && h.chunks > 0);
                        assert!(r.is_pending());
                        sent = Some((h, Vec::new()));
                    }
                    Ok(Step::SameContent(got)) => {
                        assert_eq!(h.total_size, 0);
                        assert_eq!(got, h);
                        assert!(!r.is_pending());
                    }
                    Ok(Step::Complete(..)) => panic!("a header completed a state"),
                    Err(e) => {
                        assert!(!r.is_pending(), "pending after {e}");
                        let _ = e.to_string();
                    }
                }
            }
            Some(Msg::Chunk(c)) => {
                let data = c.data.clone();
                let res = r.chunk(c);
                match res {
                    Ok(Step::Pending) => {
                        let (h, bytes) = sent.as_mut().expect("a chunk accepted without a header");
                        bytes.extend_from_slice(&data);
                        assert_eq!(r.received(), bytes.len() as u64);
                        assert!(r.received() <= h.total_size);
                    }
                    Ok(Step::Complete(h, bytes)) => {
                        let (want_h, mut want) =
                            sent.take().expect("a state completed without a header");
                        want.extend_from_slice(&data);
                        assert_eq!(h, want_h);
                        assert_eq!(bytes.len() as u64, h.total_size);
                        assert_eq!(&bytes[..], &want[..]);
                        assert!(!r.is_pending());
                        let _ = fleet_proto::convert::decode_state(&bytes);
                    }
                    Ok(Step::SameContent(_)) => panic!("a chunk gave a header's step"),
                    Err(e) => {
                        assert!(!r.is_pending(), "pending after {e}");
                        sent = None;
                        let _ = e.to_string();
                    }
                }
            }
            _ => {}
        }
    }
}

/// A bundle file (`fleet-spoke --import`): unpacking never panics, and a
/// statement it holds parses or is refused.
pub fn bundle_unpack(data: &[u8]) {
    if let Ok(b) = fleet_proto::bundle::unpack(data) {
        let _ = fleet_proto::provenance::parse(&b.statement);
        let _ = fleet_proto::convert::decode_state(&b.state);
    }
}

/// A provenance statement: what parses writes back to a statement that
/// parses to the same facts.
pub fn provenance_statement(data: &[u8]) {
    if let Ok(f) = fleet_proto::provenance::parse(data) {
        let again = fleet_proto::provenance::statement(&f);
        assert_eq!(
            fleet_proto::provenance::parse(&again).as_ref(),
            Ok(&f),
            "a statement does not round-trip"
        );
    }
}

/// Trust files and SSHSIG signatures: the first line is read as a key file,
/// the rest as an armored signature of a fixed message.
pub fn sshsig_verify(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (keys, sig) = text.split_once('\n').unwrap_or((&text, ""));
    let keys = fleet_proto::sshsig::parse_keys(keys).unwrap_or_default();
    let _ = fleet_proto::sshsig::verify(sig, "fleet-state", b"message", &keys);
    let _ = fleet_proto::sshsig::PublicKey::parse(sig);
}

/// The identity the age and SOPS seeds are encrypted to (a test key).
const TEST_AGE_IDENTITY: &str =
    "AGE-SECRET-KEY-1ST86KPNR70TJH0V0K8GF3DD4QW4GSUVU09MAYC77U3HVADT0VFDS33JXRS";

/// age files, armored or binary, decrypted with a fixed identity; the first
/// line is also read as an identity.
pub fn age_decrypt(data: &[u8]) {
    let id = fleet_proto::age::Identity::parse(TEST_AGE_IDENTITY).expect("test identity");
    let _ = fleet_proto::age::decrypt(data, std::slice::from_ref(&id));
    let text = String::from_utf8_lossy(data);
    let _ = fleet_proto::age::Identity::parse_file(text.lines().next().unwrap_or(""));
}

/// SOPS documents opened with a fixed identity: whatever opens holds no
/// encrypted value any more.
pub fn sops_open(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        if let Some(i) = line.find("ENC[") {
            let _ = fleet_proto::sops::parse_enc(line[i..].trim_end_matches(['"', ',']));
        }
    }
    let Ok(mut docs) = fleet_render::yaml::parse_documents("fuzz.yaml", data) else {
        return;
    };
    let Some(parsed) = docs.pop() else { return };
    let id = fleet_proto::age::Identity::parse(TEST_AGE_IDENTITY).expect("test identity");
    if let Ok(v) = fleet_proto::sops::open(text, &parsed, std::slice::from_ref(&id)) {
        assert_eq!(
            fleet_proto::sops::sealed_at(&v),
            None,
            "an opened document is still sealed"
        );
    }
}

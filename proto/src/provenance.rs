//! The provenance statement the hub signs for every state it publishes: an
//! in-toto Statement v1 with an SLSA provenance v1 predicate. Its subjects
//! are the cluster's state (fleet's state digest) and, in a bundle, the
//! encoded state file; the predicate names the repo, branch, commit, apps and
//! renderer, and when the hub published it (for replay protection).
//!
//! Signed as SSHSIG ([`crate::sshsig`]) in namespace [`NAMESPACE`].

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The SSHSIG namespace of state signatures.
pub const NAMESPACE: &str = "fleet-state";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const BUILD_TYPE: &str = "https://fleet.dev/render/v1";

/// What the hub states about one published state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub cluster: String,
    /// fleet's state digest, `sha256:<hex>`.
    pub digest: String,
    pub commit: String,
    pub repo: String,
    pub branch: String,
    /// App name and the commit its resources were rendered from.
    pub apps: Vec<(String, String)>,
    pub renderer: String,
    /// Milliseconds since the Unix epoch; later states have larger values.
    pub published_at_ms: u64,
    /// sha256 (hex) of the encoded state, when it travels as a file (bundles).
    pub state_file_sha256: Option<String>,
}

/// The statement's JSON bytes (compact; what is signed).
pub fn statement(f: &Facts) -> Vec<u8> {
    let mut subject = vec![json!({
        "name": format!("cluster/{}", f.cluster),
        "digest": {"sha256": f.digest.strip_prefix("sha256:").unwrap_or(&f.digest)},
    })];
    if let Some(h) = &f.state_file_sha256 {
        subject.push(json!({"name": "state.pb", "digest": {"sha256": h}}));
    }
    let v = json!({
        "_type": STATEMENT_TYPE,
        "subject": subject,
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "repo": f.repo,
                    "branch": f.branch,
                    "cluster": f.cluster,
                    "apps": f.apps.iter().map(|(name, rev)| json!({
                        "name": name,
                        "path": format!("apps/{name}"),
                        "sourceRevision": rev,
                    })).collect::<Vec<_>>(),
                },
                "internalParameters": {"publishedAtMs": f.published_at_ms},
                "resolvedDependencies": [{
                    "uri": format!("git+{}@{}", f.repo, f.branch),
                    "digest": {"gitCommit": f.commit},
                }],
            },
            "runDetails": {
                "builder": {"id": "https://fleet.dev/hub", "version": {"fleet-render": f.renderer}},
            },
        },
    });
    serde_json::to_vec(&v).expect("JSON values serialize")
}

#[derive(Deserialize, Serialize)]
struct Subject {
    name: String,
    digest: std::collections::BTreeMap<String, String>,
}

/// Reads the facts back from a statement; errors say what is missing.
pub fn parse(bytes: &[u8]) -> Result<Facts, String> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| format!("statement is not JSON: {e}"))?;
    if v["_type"] != STATEMENT_TYPE || v["predicateType"] != PREDICATE_TYPE {
        return Err("not an in-toto v1 statement with an SLSA v1 provenance predicate".into());
    }
    let subjects: Vec<Subject> = serde_json::from_value(v["subject"].clone())
        .map_err(|e| format!("statement subjects: {e}"))?;
    let mut cluster = None;
    let mut digest = None;
    let mut file = None;
    for s in subjects {
        let h = s.digest.get("sha256").cloned();
        if let Some(c) = s.name.strip_prefix("cluster/") {
            cluster = Some(c.to_string());
            digest = h.map(|h| format!("sha256:{h}"));
        } else if s.name == "state.pb" {
            file = h;
        }
    }
    let b = &v["predicate"]["buildDefinition"];
    let ext = &b["externalParameters"];
    let s = |x: &serde_json::Value, what: &str| {
        x.as_str()
            .map(String::from)
            .ok_or_else(|| format!("statement has no {what}"))
    };
    let facts = Facts {
        cluster: cluster.ok_or("statement has no cluster subject")?,
        digest: digest.ok_or("statement has no state digest")?,
        commit: s(
            &b["resolvedDependencies"][0]["digest"]["gitCommit"],
            "commit",
        )?,
        repo: s(&ext["repo"], "repo")?,
        branch: s(&ext["branch"], "branch")?,
        apps: ext["apps"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| {
                        (
                            x["name"].as_str().unwrap_or("").to_string(),
                            x["sourceRevision"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        renderer: v["predicate"]["runDetails"]["builder"]["version"]["fleet-render"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        published_at_ms: b["internalParameters"]["publishedAtMs"]
            .as_u64()
            .ok_or("statement has no publishedAtMs")?,
        state_file_sha256: file,
    };
    Ok(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_round_trip() {
        let f = Facts {
            cluster: "prod-1".into(),
            digest: "sha256:abcd".into(),
            commit: "0123".into(),
            repo: "https://git.example/fleet".into(),
            branch: "main".into(),
            apps: vec![("web".into(), "0123".into())],
            renderer: "7".into(),
            published_at_ms: 1_700_000_000_000,
            state_file_sha256: Some("ff".into()),
        };
        let bytes = statement(&f);
        assert_eq!(parse(&bytes).unwrap(), f);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["subject"][0]["digest"]["sha256"], "abcd");
        assert!(parse(b"{}").unwrap_err().contains("in-toto"));
    }
}

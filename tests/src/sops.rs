//! SOPS fixtures: age identities from the real `age-keygen`, data keys
//! encrypted by the real `age`, and Secrets laid out as `sops --encrypt`
//! writes them (no sops binary is available to the tests; fleet's own
//! encryption helpers fill in the values and the MAC).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use fleet_proto::sops::{encrypt_value, mac_value};

/// The password in the fixtures' Secrets, in plaintext.
pub const PLAIN: &str = "hunter2-only-on-the-spoke";
/// The token in the fixtures' Secrets (`data`, so base64), in plaintext.
pub const TOKEN_PLAIN: &str = "dG9rZW4tb25seS1vbi10aGUtc3Bva2U=";

pub fn have_age() -> bool {
    ["age", "age-keygen"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// An identity from `age-keygen`: (identity file, recipient).
pub fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let p = dir.join(format!("{name}.agekey"));
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success(), "age-keygen: {out:?}");
    let text = std::fs::read_to_string(&p).unwrap();
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_string();
    (p, recipient)
}

/// `age -a -r RECIPIENT` of `data`.
pub fn age_encrypt(recipient: &str, data: &[u8]) -> String {
    let mut child = Command::new("age")
        .args(["-a", "-r", recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "age: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A Secret encrypted as `sops --encrypt --age RECIPIENT
/// --encrypted-regex '^(data|stringData)$'` writes it: plaintext identity,
/// encrypted values, the data key age-encrypted, the MAC over every value.
pub fn sops_secret(name: &str, namespace: Option<&str>, recipient: &str, key: &[u8; 32]) -> String {
    let lastmodified = "2026-11-30T10:00:00Z";
    let iv = |n: u8| [n; 32];
    let pw = encrypt_value(PLAIN, "str", key, "stringData:password:", &iv(1));
    let token = encrypt_value(TOKEN_PLAIN, "str", key, "data:token:", &iv(2));
    let mut leaves = vec!["v1", "Secret", name];
    if let Some(ns) = namespace {
        leaves.push(ns);
    }
    leaves.extend(["Opaque", PLAIN, TOKEN_PLAIN]);
    let mac = mac_value(&leaves, key, lastmodified, &iv(3));
    let enc = age_encrypt(recipient, key);
    let enc_block: String = enc.lines().map(|l| format!("            {l}\n")).collect();
    let ns_line = namespace
        .map(|ns| format!("    namespace: {ns}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n    name: {name}\n{ns_line}type: Opaque\nstringData:\n    password: {pw}\ndata:\n    token: {token}\nsops:\n    kms: []\n    age:\n        - recipient: {recipient}\n          enc: |\n{enc_block}    lastmodified: \"{lastmodified}\"\n    mac: {mac}\n    pgp: []\n    encrypted_regex: ^(data|stringData)$\n    version: 3.9.0\n"
    )
}

//! The container image's binaries (issue 16, point 5): `deploy/Dockerfile`
//! copies what `deploy/build-static.sh` builds into an image with nothing
//! else in it, so those binaries must be static and run alone.
//!
//! - their ELF headers name no interpreter (PT_INTERP) and no shared
//!   library (DT_NEEDED), checked by the parser below, which must also see
//!   both in the ordinary (dynamic) debug build;
//! - each runs `--version` and `--help` with an empty environment;
//! - as root: a chroot holding only the three binaries and an /etc/hosts
//!   runs a real fleet: `fleetctl ca` makes the PKI, `fleet-hub` serves a
//!   Git repo, `fleet-spoke` dials it by name (`localhost`, so the static
//!   resolver reads /etc/hosts) and applies; the status page answers.
//!
//! Without the static build the test prints SKIPPED (run
//! `deploy/build-static.sh`; `.ci/run` does); without root, the chroot part
//! says SKIPPED.

use std::path::{Path, PathBuf};
use std::process::Command;

use fleet_tests::*;

const BINARIES: [&str; 3] = ["fleet-hub", "fleet-spoke", "fleetctl"];

fn static_dir() -> PathBuf {
    match std::env::var_os("FLEET_STATIC_BIN_DIR") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/static/image"),
    }
}

/// What an ELF file needs from the system to start.
#[derive(Debug, PartialEq, Eq)]
struct Needs {
    /// PT_INTERP: the dynamic loader's path.
    interp: Option<String>,
    /// DT_NEEDED entries of the PT_DYNAMIC segment.
    needed: usize,
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated ELF at byte {at}"))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated ELF at byte {at}"))
}

fn u64_at(b: &[u8], at: usize) -> Result<u64, String> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
        .ok_or_else(|| format!("truncated ELF at byte {at}"))
}

/// Reads the program headers of a little-endian ELF64 file.
fn elf_needs(b: &[u8]) -> Result<Needs, String> {
    if !b.starts_with(b"\x7fELF") || b.get(4) != Some(&2) || b.get(5) != Some(&1) {
        return Err("not a little-endian ELF64 file".into());
    }
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    const DT_NEEDED: u64 = 1;
    let phoff = u64_at(b, 0x20)? as usize;
    let phentsize = u16_at(b, 0x36)? as usize;
    let phnum = u16_at(b, 0x38)? as usize;
    let mut needs = Needs {
        interp: None,
        needed: 0,
    };
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (offset, size) = (u64_at(b, ph + 8)? as usize, u64_at(b, ph + 32)? as usize);
        let seg = b
            .get(offset..offset + size)
            .ok_or_else(|| format!("program header {i} points past the file"))?;
        match u32_at(b, ph)? {
            PT_INTERP => {
                needs.interp = Some(
                    String::from_utf8_lossy(seg)
                        .trim_end_matches('\0')
                        .to_string(),
                )
            }
            PT_DYNAMIC => {
                for e in seg.chunks_exact(16) {
                    match u64_at(e, 0)? {
                        0 => break,
                        DT_NEEDED => needs.needed += 1,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(needs)
}

#[test]
fn the_elf_reader_sees_what_a_dynamic_binary_needs() {
    // The ordinary debug build is dynamic: the reader must say so, or its
    // verdict on the static build would mean nothing.
    let dynamic = std::fs::read(bin("fleet-hub")).unwrap();
    let n = elf_needs(&dynamic).unwrap();
    assert!(
        n.interp.as_deref().is_some_and(|i| i.contains("ld-linux")),
        "{n:?}"
    );
    assert!(n.needed >= 1, "{n:?}");
    assert!(elf_needs(b"#!/bin/sh\n").is_err());
    assert!(elf_needs(&dynamic[..100]).is_err());
}

#[test]
fn image_binaries_are_static_and_run_alone() {
    let dir = static_dir();
    if BINARIES.iter().any(|b| !dir.join(b).exists()) {
        eprintln!(
            "\n*** SKIPPED: no static release build in {}: run deploy/build-static.sh (.ci/run does) ***\n",
            dir.display()
        );
        return;
    }
    let version = format!(" {}", env!("CARGO_PKG_VERSION"));
    for name in BINARIES {
        let path = dir.join(name);
        let n = elf_needs(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            n,
            Needs {
                interp: None,
                needed: 0
            },
            "{} is not static",
            path.display()
        );
        for arg in ["--version", "--help"] {
            let out = run(Command::new(&path).arg(arg).env_clear());
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains(name),
                "env -i {} {arg}: {stdout}{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            if arg == "--version" {
                assert!(stdout.contains(&version), "{stdout}");
            }
        }
    }
    if !is_root() {
        eprintln!("\n*** SKIPPED: the chroot part of the image test needs root ***\n");
        return;
    }
    fleet_in_a_chroot(&dir);
}

fn is_root() -> bool {
    run(Command::new("id").arg("-u")).stdout.trim_ascii() == b"0"
}

/// `chroot(8)` on this machine's PATH (the child's environment is empty, so
/// Command would not find it there).
fn chroot_bin() -> PathBuf {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("chroot"))
        .find(|p| p.exists())
        .expect("chroot(8) on PATH (coreutils)")
}

/// `chroot ROOT ARGS...` with an empty environment.
fn chroot(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(chroot_bin());
    c.arg(root).args(args).env_clear();
    c
}

fn chroot_ok(root: &Path, args: &[&str]) {
    let out = run(&mut chroot(root, args));
    assert!(
        out.status.success(),
        "chroot {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fleet_in_a_chroot(dir: &Path) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    for name in BINARIES {
        std::fs::copy(dir.join(name), root.join("bin").join(name)).unwrap();
    }
    // What a Kubernetes pod (and distroless) has: a hosts file.
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();

    chroot_ok(&root, &["/bin/fleetctl", "ca", "init", "--dir", "/pki"]);
    chroot_ok(
        &root,
        &["/bin/fleetctl", "ca", "issue", "--dir", "/pki", "hub"],
    );
    chroot_ok(
        &root,
        &[
            "/bin/fleetctl",
            "ca",
            "issue",
            "--dir",
            "/pki",
            "spoke",
            "dev-1",
        ],
    );
    let repo = GitRepo::new(root.join("repo"));
    repo.write("clusters/dev-1.yaml", "name: dev-1\nlabels: {env: dev}\n")
        .write("apps/web/app.yaml", "namespace: web\n")
        .write(
            "apps/web/base/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: static\n",
        );
    repo.commit("initial");

    let mut hub = Proc::spawn(
        &mut chroot(
            &root,
            &[
                "/bin/fleet-hub",
                "--repo",
                "/repo",
                "--branch",
                "main",
                "--data-dir",
                "/hub",
                "--ca",
                "/pki/ca.crt",
                "--cert",
                "/pki/hub.crt",
                "--key",
                "/pki/hub.key",
                "--grpc-addr",
                "127.0.0.1:0",
                "--http-addr",
                "127.0.0.1:0",
                "--page-addr",
                "127.0.0.1:0",
                "--addr-file",
                "/hub.addr",
                "--poll-interval",
                "0.5",
            ],
        ),
        work.path().join("hub.log"),
    );
    let addrs: serde_json::Value = wait_until("the chrooted hub's address file", TIMEOUT, || {
        assert!(
            hub.is_running(),
            "fleet-hub exited in the chroot:\n{}",
            hub.logs()
        );
        std::fs::read_to_string(root.join("hub.addr"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
    });
    let grpc = addrs["grpc"].as_str().unwrap();
    let port = grpc.rsplit(':').next().unwrap();
    let hub_url = format!("https://localhost:{port}");
    let mut spoke = Proc::spawn(
        &mut chroot(
            &root,
            &[
                "/bin/fleet-spoke",
                "--hub",
                &hub_url,
                "--ca",
                "/pki/ca.crt",
                "--cert",
                "/pki/spoke-dev-1.crt",
                "--key",
                "/pki/spoke-dev-1.key",
                "--cache-dir",
                "/spoke",
                "--target-dir",
                "/applied",
            ],
        ),
        work.path().join("spoke.log"),
    );
    let applied = root.join("applied/web/ConfigMap/c.yaml");
    wait_until("the chrooted spoke to apply", TIMEOUT, || {
        assert!(
            spoke.is_running(),
            "fleet-spoke exited in the chroot:\n{}",
            spoke.logs()
        );
        std::fs::read_to_string(&applied)
            .ok()
            .filter(|s| s.contains("static"))
    });
    let page = addrs["page"].as_str().unwrap();
    let body = wait_until("the page to show dev-1", TIMEOUT, || {
        let mut s = std::net::TcpStream::connect(page).ok()?;
        use std::io::{Read as _, Write as _};
        write!(s, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        r.contains(r#"<tr data-cluster="dev-1">"#).then_some(r)
    });
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    spoke.kill();
    hub.kill();
}

/// The image names the Dockerfile's instructions build are the ones the
/// manifests run: `deploy/hub/hub.yaml` and `fleetctl spoke manifests`.
#[test]
fn image_names_agree_across_dockerfile_manifests_and_fleetctl() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let read = |p: &str| std::fs::read_to_string(deploy.join(p)).unwrap();
    let dockerfile = read("Dockerfile");
    let readme = read("README.md");
    // `--target T ... -t NAME:TAG` in the Dockerfile's header and the README.
    let built = |text: &str, target: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains("docker build") && l.contains(&format!("--target {target} ")))
            .filter_map(|l| {
                let t = l.split_whitespace().skip_while(|w| *w != "-t").nth(1)?;
                Some(t.split(':').next()?.to_string())
            })
            .collect()
    };
    for (target, bin) in [("hub", "fleet-hub"), ("spoke", "fleet-spoke")] {
        let want = format!("ghcr.io/fleet-dev/{bin}");
        assert_eq!(
            built(&dockerfile, target),
            [want.clone()],
            "Dockerfile, {target}"
        );
        assert_eq!(
            built(&readme, target),
            [want.clone()],
            "deploy/README.md, {target}"
        );
        let stage = dockerfile
            .split("\nFROM ")
            .find(|s| s.contains(&format!(" AS {target}\n")))
            .unwrap_or_else(|| panic!("no stage {target} in deploy/Dockerfile"));
        assert!(
            stage.contains(&format!(
                "COPY --from=build /out/{bin} /usr/local/bin/{bin}"
            )) && stage.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]")),
            "stage {target}:\n{stage}"
        );
    }
    assert!(read("build-static.sh").contains("for b in fleet-hub fleet-spoke fleetctl; do"));
    assert!(
        read("hub/hub.yaml").contains("image: ghcr.io/fleet-dev/fleet-hub:latest"),
        "deploy/hub/hub.yaml runs another image"
    );
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::new(work.path().join("pki"));
    pki.issue(&["spoke", "dev-1"]);
    let out = fleetctl_ok(&[
        "spoke",
        "manifests",
        "dev-1",
        "--dir",
        pki.dir.to_str().unwrap(),
        "--hub",
        "https://hub.example:7443",
    ]);
    assert!(
        out.contains("image: ghcr.io/fleet-dev/fleet-spoke:latest"),
        "fleetctl spoke manifests runs another image:\n{out}"
    );
}

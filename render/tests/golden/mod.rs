//! What the golden tests share: the case directories and the run over them.

use std::path::{Path, PathBuf};

/// The case directories under `tests/<dir>` that hold `marker`, sorted;
/// with `only_env` set, those whose name contains its value.
pub fn cases(dir: &str, marker: &str, only_env: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let only = std::env::var(only_env).ok();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.join(marker).exists())
        .filter(|p| match &only {
            Some(o) => p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(o)),
            None => true,
        })
        .collect();
    out.sort();
    out
}

/// Checks every case and fails once, listing each case that failed.
pub fn check_all(cases: &[PathBuf], check: impl Fn(&Path) -> Result<(), String>) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            check(case).err().map(|e| format!("== {name}: {e}"))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} golden cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

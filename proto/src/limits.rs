//! What a spoke may send the hub. The hub rejects a message beyond these
//! bounds (logged with the peer, counted); an honest spoke trims its own
//! reports to stay within them ([`trim_status`]), so a cluster with many
//! objects is summarised rather than refused.
//!
//! The bounds keep one spoke from growing the hub's records past what an
//! admin response can carry: a cluster's status always fits in one page of
//! `GetStatus` (see [`MAX_STATUS_BYTES`]).

use prost::Message as _;

use crate::v1 as pb;

/// Encoded size of one StatusReport.
pub const MAX_STATUS_BYTES: usize = 2 * 1024 * 1024;
/// Resource entries in one StatusReport.
pub const MAX_STATUS_RESOURCES: usize = 20_000;
/// An app name or object id (`apiVersion/kind/namespace/name`).
pub const MAX_ID_LEN: usize = 1024;
/// A free-text field (an object's message, its health message).
pub const MAX_TEXT_LEN: usize = 2048;
/// A revision, digest, sync verdict, state or health word, agent version.
pub const MAX_WORD_LEN: usize = 256;
/// Object diffs in one DiffReport, and the text of one.
pub const MAX_DIFFS: usize = 20_000;

/// Why a spoke message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {len} exceeds the limit of {max}")]
pub struct Violation {
    pub what: String,
    pub len: usize,
    pub max: usize,
}

fn word(what: &str, s: &str, max: usize) -> Result<(), Violation> {
    if s.len() > max {
        return Err(Violation {
            what: what.into(),
            len: s.len(),
            max,
        });
    }
    Ok(())
}

/// Checks a StatusReport against every bound.
pub fn check_status(s: &pb::StatusReport) -> Result<(), Violation> {
    let bytes = s.encoded_len();
    word("revision bytes", &s.revision, MAX_WORD_LEN)?;
    word("digest bytes", &s.digest, MAX_WORD_LEN)?;
    word("sync verdict bytes", &s.sync, MAX_WORD_LEN)?;
    if bytes > MAX_STATUS_BYTES {
        return Err(Violation {
            what: "status report bytes".into(),
            len: bytes,
            max: MAX_STATUS_BYTES,
        });
    }
    if s.resources.len() > MAX_STATUS_RESOURCES {
        return Err(Violation {
            what: "status report resources".into(),
            len: s.resources.len(),
            max: MAX_STATUS_RESOURCES,
        });
    }
    for r in s.resources.iter() {
        word("resource app bytes", &r.app, MAX_ID_LEN)?;
        word("resource id bytes", &r.id, MAX_ID_LEN)?;
        word("resource state bytes", &r.state, MAX_WORD_LEN)?;
        word("resource health bytes", &r.health, MAX_WORD_LEN)?;
        word("resource message bytes", &r.message, MAX_TEXT_LEN)?;
        word(
            "resource health message bytes",
            &r.health_message,
            MAX_TEXT_LEN,
        )?;
    }
    Ok(())
}

/// Checks a Hello or an Ack (revision, digest, agent version).
pub fn check_words(fields: &[(&str, &str)]) -> Result<(), Violation> {
    for (what, s) in fields {
        word(what, s, MAX_WORD_LEN)?;
    }
    Ok(())
}

/// Checks a DiffReport (its size is already bounded by the message limit).
pub fn check_diff(r: &pb::DiffReport) -> Result<(), Violation> {
    word("diff revision bytes", &r.revision, MAX_WORD_LEN)?;
    if r.diffs.len() > MAX_DIFFS {
        return Err(Violation {
            what: "diff report objects".into(),
            len: r.diffs.len(),
            max: MAX_DIFFS,
        });
    }
    for d in &r.diffs {
        word("diff app bytes", &d.app, MAX_ID_LEN)?;
        word("diff object id bytes", &d.id, MAX_ID_LEN)?;
        word("diff change bytes", &d.change, MAX_WORD_LEN)?;
    }
    Ok(())
}

/// Cuts `s` to at most `max` bytes at a character boundary, marking the cut.
fn cut(s: &mut String, max: usize) {
    const MARK: &str = "... (truncated)";
    if s.len() <= max {
        return;
    }
    let mut end = max.saturating_sub(MARK.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(MARK);
}

/// Makes a spoke's own report fit: long texts are cut, and when there are
/// too many entries (or bytes) the ones that are fine (`synced`, healthy or
/// unknown health) go first, so every problem stays reported. Returns how
/// many entries were left out.
pub fn trim_status(s: &mut pb::StatusReport) -> usize {
    for r in &mut s.resources {
        cut(&mut r.message, MAX_TEXT_LEN);
        cut(&mut r.health_message, MAX_TEXT_LEN);
        cut(&mut r.id, MAX_ID_LEN);
        cut(&mut r.app, MAX_ID_LEN);
    }
    let fine = |r: &pb::ResourceStatus| {
        matches!(r.state.as_str(), "synced" | "applied" | "healed")
            && matches!(r.health.as_str(), "" | "healthy")
    };
    let before = s.resources.len();
    if before <= MAX_STATUS_RESOURCES && s.encoded_len() <= MAX_STATUS_BYTES {
        return 0;
    }
    // Problems first (stable: each group keeps its order).
    s.resources.sort_by_key(|r| fine(r));
    s.resources.truncate(MAX_STATUS_RESOURCES);
    while s.encoded_len() > MAX_STATUS_BYTES && !s.resources.is_empty() {
        let over = s.encoded_len() - MAX_STATUS_BYTES;
        // Entries are at most a few KiB: drop about as many as the excess needs.
        let drop = (over / 64).clamp(1, s.resources.len());
        s.resources.truncate(s.resources.len() - drop);
    }
    before - s.resources.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(i: usize, state: &str, msg: &str) -> pb::ResourceStatus {
        pb::ResourceStatus {
            app: "web".into(),
            id: format!("v1/ConfigMap/default/cm-{i}"),
            state: state.into(),
            message: msg.into(),
            health: "healthy".into(),
            health_message: String::new(),
        }
    }

    #[test]
    fn a_report_within_bounds_passes_and_each_bound_is_named() {
        let mut s = pb::StatusReport {
            revision: "a".repeat(40),
            sync: "synced".into(),
            resources: (0..100).map(|i| res(i, "synced", "")).collect(),
            ..Default::default()
        };
        assert_eq!(check_status(&s), Ok(()));
        s.resources[3].message = "x".repeat(MAX_TEXT_LEN + 1);
        let e = check_status(&s).unwrap_err();
        assert_eq!(e.what, "resource message bytes");
        assert_eq!(e.len, MAX_TEXT_LEN + 1);
        s.resources[3].message.clear();
        s.revision = "r".repeat(MAX_WORD_LEN + 1);
        assert_eq!(check_status(&s).unwrap_err().what, "revision bytes");
        s.revision.clear();
        s.resources = (0..MAX_STATUS_RESOURCES + 1)
            .map(|i| res(i, "synced", ""))
            .collect();
        let e = check_status(&s).unwrap_err();
        assert!(
            e.what == "status report resources" || e.what == "status report bytes",
            "{e}"
        );
    }

    #[test]
    fn trimming_keeps_every_problem_and_fits_the_bounds() {
        // 56,000 entries, as the hostile report had, three of them failed.
        let mut s = pb::StatusReport {
            sync: "failed".into(),
            resources: (0..56_000)
                .map(|i| {
                    if i % 20_000 == 7 {
                        res(i, "failed", &"denied ".repeat(1000))
                    } else {
                        res(i, "synced", "")
                    }
                })
                .collect(),
            ..Default::default()
        };
        let dropped = trim_status(&mut s);
        assert_eq!(check_status(&s), Ok(()));
        assert!(dropped >= 36_000, "{dropped}");
        let failed: Vec<_> = s.resources.iter().filter(|r| r.state == "failed").collect();
        assert_eq!(failed.len(), 3);
        assert!(failed[0].message.ends_with("... (truncated)"));
        assert!(failed[0].message.len() <= MAX_TEXT_LEN);
        // A report that fits is left as it is.
        let mut small = pb::StatusReport {
            resources: vec![res(1, "synced", "é".repeat(10).as_str())],
            ..Default::default()
        };
        let copy = small.clone();
        assert_eq!(trim_status(&mut small), 0);
        assert_eq!(small, copy);
    }

    #[test]
    fn cutting_respects_character_boundaries() {
        let mut s = "é".repeat(2000);
        cut(&mut s, 101);
        assert!(s.len() <= 101 && s.ends_with("(truncated)"));
    }
}

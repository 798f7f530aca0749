//! What the hub refuses from spokes: each refusal is logged with the peer's
//! identity and counted by reason (`fleet_hub_rejected_messages_total`).
//! The checks themselves are pure (`fleet_proto::limits`).

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Why a spoke message was refused (a metric label: a closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// A DiffReport answering a request pending for another cluster.
    ForgedDiff,
    /// A DiffReport whose id no request is pending under.
    UnknownDiff,
    /// A message beyond `fleet_proto::limits`.
    OverLimit,
    /// A message that does not decode, or exceeds the message size.
    Malformed,
    /// A message out of protocol order (a second Hello, an empty message).
    Unexpected,
    /// A certificate renewal for another identity, or a CSR that does not verify.
    BadRenewal,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ForgedDiff => "forged_diff_report",
            Reason::UnknownDiff => "unknown_diff_report",
            Reason::OverLimit => "over_limit",
            Reason::Malformed => "malformed",
            Reason::Unexpected => "unexpected",
            Reason::BadRenewal => "bad_renewal",
        }
    }

    pub const ALL: [Reason; 6] = [
        Reason::ForgedDiff,
        Reason::UnknownDiff,
        Reason::OverLimit,
        Reason::Malformed,
        Reason::Unexpected,
        Reason::BadRenewal,
    ];
}

#[derive(Default)]
pub struct Rejections {
    counts: Mutex<BTreeMap<Reason, u64>>,
}

impl Rejections {
    /// Logs and counts one refused message from `peer` (a certificate identity).
    pub fn reject(&self, peer: &str, reason: Reason, detail: &str) {
        tracing::warn!(%peer, reason = reason.as_str(), %detail, "rejected a spoke message");
        *self.counts.lock().expect("lock").entry(reason).or_default() += 1;
    }

    /// Every reason with its count (zero included), for metrics.
    pub fn counts(&self) -> Vec<(Reason, u64)> {
        let c = self.counts.lock().expect("lock");
        Reason::ALL
            .into_iter()
            .map(|r| (r, c.get(&r).copied().unwrap_or(0)))
            .collect()
    }
}

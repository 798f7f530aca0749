//! Live diff routing: `fleetctl diff CLUSTER` becomes a DiffRequest on that
//! cluster's stream, and only a DiffReport from the same cluster's stream,
//! carrying the request's unguessable id, answers it.
//!
//! Each pending request is bound to its cluster and a random 64-bit id. A
//! report with an id that is pending for another cluster is *forged*; one
//! with no pending id is *stale* (its request timed out) or guessed. Neither
//! reaches the caller: [`LiveDiffs::answer`] says which, and the hub logs and
//! counts it with the peer's identity.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use fleet_proto::v1 as pb;
use ring::rand::{SecureRandom as _, SystemRandom};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

/// One message on a spoke's stream, boxed: a channel allocates its slots in
/// blocks of 32 and keeps a block for the stream's life, so slots of a
/// pointer rather than of the message keep an idle spoke's channel small.
pub type Outbound = Box<Result<pb::HubMessage, Status>>;

/// The send side of a spoke's stream.
pub type StreamTx = mpsc::Sender<Outbound>;

/// How long the hub waits for a spoke's answer when the caller set no deadline.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(120);

struct Pending {
    cluster: String,
    tx: oneshot::Sender<pb::DiffReport>,
}

/// What became of a DiffReport a spoke sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// It answered a request pending for its own cluster.
    Delivered,
    /// Its id is pending for another cluster: the sender tried to answer for it.
    Forged { owner: String },
    /// No request is pending with its id (timed out, or a guess).
    Unknown,
}

pub struct LiveDiffs {
    /// The send side of each connected spoke's stream.
    controls: Mutex<HashMap<String, StreamTx>>,
    pending: Mutex<HashMap<u64, Pending>>,
    rng: SystemRandom,
}

impl Default for LiveDiffs {
    fn default() -> Self {
        LiveDiffs {
            controls: Mutex::default(),
            pending: Mutex::default(),
            rng: SystemRandom::new(),
        }
    }
}

/// Removes a pending request however its wait ends (answer, timeout, or the
/// caller's deadline dropping the future).
struct Unregister<'a> {
    diffs: &'a LiveDiffs,
    id: u64,
}

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.diffs.pending.lock().expect("lock").remove(&self.id);
    }
}

impl LiveDiffs {
    pub fn register(&self, cluster: &str, tx: StreamTx) {
        self.controls
            .lock()
            .expect("lock")
            .insert(cluster.to_string(), tx);
    }

    /// Forgets a stream, unless a newer stream of the cluster replaced it.
    pub fn unregister(&self, cluster: &str, tx: &StreamTx) {
        let mut c = self.controls.lock().expect("lock");
        if c.get(cluster).is_some_and(|t| t.same_channel(tx)) {
            c.remove(cluster);
        }
    }

    pub fn pending(&self) -> usize {
        self.pending.lock().expect("lock").len()
    }

    /// A fresh id no request is pending under (never 0, which proto3 sends
    /// for a missing field).
    fn new_id(&self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.rng
                .fill(&mut b)
                .expect("the system random number generator failed");
            let id = u64::from_le_bytes(b);
            if id != 0 && !self.pending.lock().expect("lock").contains_key(&id) {
                return id;
            }
        }
    }

    /// Sends a DiffRequest to `cluster`'s stream and waits up to `wait` for
    /// that stream's answer.
    pub async fn ask(
        &self,
        cluster: &str,
        app: &str,
        state: bytes::Bytes,
        wait: Duration,
    ) -> Result<pb::DiffReport, Status> {
        let tx = self
            .controls
            .lock()
            .expect("lock")
            .get(cluster)
            .cloned()
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "the spoke of cluster {cluster} is not connected"
                ))
            })?;
        let id = self.new_id();
        let (wtx, wrx) = oneshot::channel();
        self.pending.lock().expect("lock").insert(
            id,
            Pending {
                cluster: cluster.to_string(),
                tx: wtx,
            },
        );
        let _unregister = Unregister { diffs: self, id };
        let req = pb::HubMessage {
            msg: Some(pb::hub_message::Msg::DiffRequest(pb::DiffRequest {
                id,
                app: app.to_string(),
                state,
            })),
        };
        let disconnected =
            || Status::unavailable(format!("the spoke of cluster {cluster} disconnected"));
        tokio::time::timeout(wait, tx.send(Box::new(Ok(req))))
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "the stream of cluster {cluster} did not take the diff request within {}s",
                    wait.as_secs()
                ))
            })?
            .map_err(|_| disconnected())?;
        match tokio::time::timeout(wait, wrx).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(_)) => Err(disconnected()),
            Err(_) => Err(Status::deadline_exceeded(format!(
                "the spoke of cluster {cluster} did not answer the live diff within {:.1}s",
                wait.as_secs_f64()
            ))),
        }
    }

    /// Hands a report from `from`'s stream to the request it answers, if that
    /// request is pending for `from`; a report for another cluster's request
    /// leaves that request pending.
    pub fn answer(&self, from: &str, r: pb::DiffReport) -> Answer {
        let mut pending = self.pending.lock().expect("lock");
        match pending.get(&r.id) {
            None => Answer::Unknown,
            Some(p) if p.cluster != from => Answer::Forged {
                owner: p.cluster.clone(),
            },
            Some(_) => {
                let p = pending.remove(&r.id).expect("just seen");
                let _ = p.tx.send(r);
                Answer::Delivered
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: u64, text: &str) -> pb::DiffReport {
        pb::DiffReport {
            id,
            diffs: vec![pb::ObjectDiff {
                text: text.into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    /// The request a spoke's stream received.
    async fn request_id(rx: &mut mpsc::Receiver<Outbound>) -> u64 {
        match (*rx.recv().await.unwrap()).unwrap().msg {
            Some(pb::hub_message::Msg::DiffRequest(d)) => d.id,
            other => panic!("not a diff request: {other:?}"),
        }
    }

    #[tokio::test]
    async fn only_the_asked_clusters_stream_answers_even_with_the_right_id() {
        let diffs = std::sync::Arc::new(LiveDiffs::default());
        let (btx, mut brx) = mpsc::channel(4);
        diffs.register("b", btx);
        let d = diffs.clone();
        let ask = tokio::spawn(async move {
            d.ask("b", "", Default::default(), Duration::from_secs(5))
                .await
        });
        let id = request_id(&mut brx).await;
        // Spoke a knows (or guessed) the id: still not an answer for b.
        assert_eq!(
            diffs.answer("a", report(id, "forged")),
            Answer::Forged { owner: "b".into() }
        );
        assert_eq!(diffs.answer("a", report(id ^ 1, "guess")), Answer::Unknown);
        assert_eq!(diffs.answer("b", report(id, "real")), Answer::Delivered);
        let r = ask.await.unwrap().unwrap();
        assert_eq!(r.diffs[0].text, "real");
        assert_eq!(diffs.pending(), 0);
        // A late duplicate finds nothing pending.
        assert_eq!(diffs.answer("b", report(id, "late")), Answer::Unknown);
    }

    #[tokio::test]
    async fn a_silent_spoke_times_out_and_leaves_nothing_pending() {
        let diffs = LiveDiffs::default();
        let (btx, _brx) = mpsc::channel(4);
        diffs.register("b", btx);
        let e = diffs
            .ask("b", "", Default::default(), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::DeadlineExceeded);
        assert!(e.message().contains("cluster b did not answer"), "{e}");
        assert_eq!(diffs.pending(), 0);
        let e = diffs
            .ask("c", "", Default::default(), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(e.message().contains("cluster c is not connected"), "{e}");
    }

    #[test]
    fn ids_are_random_and_never_zero() {
        let diffs = LiveDiffs::default();
        let ids: std::collections::HashSet<u64> = (0..1000).map(|_| diffs.new_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(!ids.contains(&0));
        // Not a counter: no two consecutive.
        assert!(ids.iter().filter(|i| ids.contains(&(*i + 1))).count() < 3);
    }
}

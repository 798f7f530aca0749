//! Progressive rollout inside an environment: a new revision reaches the
//! environment's clusters wave by wave (`rollout:` of `environments/<env>.yaml`),
//! at most `maxParallel` clusters of a wave updating at once, each wave soaked
//! (every cluster synced and healthy for the soak time) before the next, and
//! an automatic pause on a degraded cluster, naming it and its objects.
//!
//! The state machine here is pure: [`Rollout::step`] takes what the hub
//! knows of each cluster and the time, and says which clusters to release
//! now, which are held and why, and what to record. [`Rollouts`] keeps one
//! rollout per environment (persisted by the caller).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use fleet_render::CommitMeta;
use fleet_render::model::{ClusterSpec, RolloutSpec, parse_duration};

/// The waves of an environment, resolved against its clusters at a commit.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RolloutPlan {
    pub waves: Vec<PlannedWave>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PlannedWave {
    pub name: String,
    pub clusters: Vec<String>,
    /// 0: every cluster of the wave at once.
    pub max_parallel: u32,
    pub soak_secs: i64,
}

/// Name of the implicit last wave: clusters no wave selects.
pub const REST_WAVE: &str = "rest";

/// Resolves `spec` against the environment's clusters (a cluster joins the
/// first wave that selects it; clusters no wave selects form a last wave).
pub fn plan(spec: &RolloutSpec, clusters: &[&ClusterSpec]) -> RolloutPlan {
    let soak = |s: &Option<String>| s.as_deref().and_then(|s| parse_duration(s).ok());
    let default_soak = soak(&spec.soak).unwrap_or(0);
    let mut taken = BTreeSet::new();
    let mut waves: Vec<PlannedWave> = spec
        .waves
        .iter()
        .map(|w| {
            let members: Vec<String> = clusters
                .iter()
                .filter(|c| !taken.contains(&c.name) && w.selector.matches(&c.labels))
                .map(|c| c.name.clone())
                .collect();
            taken.extend(members.iter().cloned());
            PlannedWave {
                name: w.name.clone(),
                clusters: members,
                max_parallel: w.max_parallel.unwrap_or(spec.max_parallel),
                soak_secs: soak(&w.soak).unwrap_or(default_soak),
            }
        })
        .collect();
    let rest: Vec<String> = clusters
        .iter()
        .filter(|c| !taken.contains(&c.name))
        .map(|c| c.name.clone())
        .collect();
    if !rest.is_empty() {
        waves.push(PlannedWave {
            name: REST_WAVE.into(),
            clusters: rest,
            max_parallel: spec.max_parallel,
            soak_secs: 0,
        });
    }
    RolloutPlan { waves }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Progressing,
    Paused,
    Aborted,
    Done,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Paused => "paused",
            Phase::Aborted => "aborted",
            Phase::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WaveState {
    pub name: String,
    pub clusters: Vec<String>,
    pub max_parallel: u32,
    pub soak_secs: i64,
    /// Unix seconds; 0: not yet.
    pub started_at: i64,
    /// When every cluster of the wave first ran the revision synced and healthy.
    pub synced_at: i64,
    pub soak_until: i64,
    pub finished_at: i64,
    /// Clusters this rollout released the revision to.
    pub released: Vec<String>,
}

/// The rollout of one revision across one environment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rollout {
    pub env: String,
    pub revision: CommitMeta,
    /// What is rolled out: (cluster, desired digest) of the environment.
    pub key: String,
    pub phase: Phase,
    /// Index of the wave in progress (`waves.len()` when done).
    pub wave: usize,
    pub waves: Vec<WaveState>,
    /// Why it is paused or aborted, and by whom.
    pub reason: String,
    pub by: String,
    pub started_at: i64,
    pub finished_at: i64,
    /// A rollback: every cluster at once, no waves.
    pub immediate: bool,
}

/// What the hub knows of one cluster, for the rollout.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Its desired state differs from the released one (it waits for the revision).
    pub pending: bool,
    /// Its spoke runs the released state.
    pub runs: bool,
    pub synced: bool,
    pub connected: bool,
    /// Failed or degraded objects: `id: message`.
    pub problems: Vec<String>,
    /// Whether the cluster's own sync policy and windows allow a release now.
    pub releasable: Result<(), String>,
}

impl ClusterView {
    fn healthy_at_revision(&self) -> bool {
        !self.pending && self.runs && self.synced && self.connected && self.problems.is_empty()
    }
}

/// Something to record in a cluster's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub cluster: String,
    pub note: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Step {
    pub release: Vec<String>,
    pub held: BTreeMap<String, String>,
    pub notes: Vec<Note>,
    /// The rollout changed (persist it).
    pub changed: bool,
}

impl Rollout {
    pub fn start(
        env: &str,
        revision: CommitMeta,
        key: String,
        plan: &RolloutPlan,
        now: i64,
        immediate: bool,
    ) -> Rollout {
        Rollout {
            env: env.into(),
            revision,
            key,
            phase: Phase::Progressing,
            wave: 0,
            waves: plan
                .waves
                .iter()
                .map(|w| WaveState {
                    name: w.name.clone(),
                    clusters: w.clusters.clone(),
                    max_parallel: w.max_parallel,
                    soak_secs: w.soak_secs,
                    ..Default::default()
                })
                .collect(),
            reason: String::new(),
            by: String::new(),
            started_at: now,
            finished_at: 0,
            immediate,
        }
    }

    fn label(&self, i: usize) -> String {
        format!(
            "wave {}/{} ({})",
            i + 1,
            self.waves.len(),
            self.waves.get(i).map(|w| w.name.as_str()).unwrap_or("")
        )
    }

    fn every_cluster(&self) -> impl Iterator<Item = &String> {
        self.waves.iter().flat_map(|w| w.clusters.iter())
    }

    /// Advances the rollout at `now`.
    pub fn step(&mut self, now: i64, view: &dyn Fn(&str) -> ClusterView) -> Step {
        let mut step = Step::default();
        let rev = self.revision.short_id().to_string();
        match self.phase {
            Phase::Done => {
                // Past every wave: a cluster still waiting (a new one, or one
                // whose policy held it) gets the revision directly.
                for c in self.every_cluster() {
                    let v = view(c);
                    if v.pending {
                        match v.releasable {
                            Ok(()) => step.release.push(c.clone()),
                            Err(r) => {
                                step.held.insert(c.clone(), r);
                            }
                        }
                    }
                }
                return step;
            }
            Phase::Paused | Phase::Aborted => {
                let why = format!(
                    "rollout of {rev} {} by {}: {}",
                    self.phase.as_str(),
                    self.by,
                    self.reason
                );
                for c in self.every_cluster() {
                    if view(c).pending {
                        step.held.insert(c.clone(), why.clone());
                    }
                }
                return step;
            }
            Phase::Progressing => {}
        }
        if self.immediate {
            for c in self.every_cluster().cloned().collect::<Vec<_>>() {
                let v = view(&c);
                if v.pending {
                    match v.releasable {
                        Ok(()) => step.release.push(c),
                        Err(r) => {
                            step.held.insert(c, r);
                        }
                    }
                }
            }
            for w in &mut self.waves {
                w.started_at = now;
                w.finished_at = now;
                w.released = w.clusters.clone();
            }
            self.wave = self.waves.len();
            self.phase = Phase::Done;
            self.finished_at = now;
            step.changed = true;
            return step;
        }
        while self.wave < self.waves.len() {
            let i = self.wave;
            let label = self.label(i);
            let w = &mut self.waves[i];
            if w.started_at == 0 {
                w.started_at = now;
                step.changed = true;
            }
            let views: Vec<(String, ClusterView)> =
                w.clusters.iter().map(|c| (c.clone(), view(c))).collect();
            // A degraded cluster of this wave pauses the rollout.
            let degraded: Vec<String> = views
                .iter()
                .filter(|(c, v)| {
                    // Judged on the revision only: what the spoke reports of it.
                    (w.released.contains(c) || !v.pending) && v.runs && !v.problems.is_empty()
                })
                .map(|(c, v)| format!("{c} is degraded: {}", v.problems.join("; ")))
                .collect();
            if !degraded.is_empty() {
                let reason = format!("{label}: {}", degraded.join("; "));
                self.phase = Phase::Paused;
                self.by = "the hub".into();
                self.reason = reason.clone();
                for (c, v) in &views {
                    if !v.problems.is_empty() {
                        step.notes.push(Note {
                            cluster: c.clone(),
                            note: format!("rollout of {rev} paused at {label}"),
                            reason: format!("{c} is degraded: {}", v.problems.join("; ")),
                        });
                    }
                }
                step.changed = true;
                let again = self.step(now, view);
                step.held.extend(again.held);
                return step;
            }
            let limit = if w.max_parallel == 0 {
                usize::MAX
            } else {
                w.max_parallel as usize
            };
            let mut in_flight = views
                .iter()
                .filter(|(c, v)| w.released.contains(c) && !v.healthy_at_revision())
                .count();
            for (c, v) in &views {
                if !v.pending {
                    continue;
                }
                if let Err(r) = &v.releasable {
                    step.held.insert(c.clone(), format!("{label}: {r}"));
                    continue;
                }
                if in_flight < limit {
                    step.release.push(c.clone());
                    if !w.released.contains(c) {
                        w.released.push(c.clone());
                    }
                    in_flight += 1;
                    step.changed = true;
                } else {
                    step.held.insert(
                        c.clone(),
                        format!(
                            "rollout of {rev}, {label}: waiting for a slot (maxParallel {})",
                            w.max_parallel
                        ),
                    );
                }
            }
            let all_good = views
                .iter()
                .all(|(c, v)| v.healthy_at_revision() && !step.release.contains(c));
            if !all_good {
                if w.synced_at != 0 {
                    // A cluster stopped being synced and healthy (not
                    // degraded: disconnected, progressing): the soak restarts.
                    w.synced_at = 0;
                    w.soak_until = 0;
                    step.changed = true;
                }
                break;
            }
            if w.synced_at == 0 {
                w.synced_at = now;
                w.soak_until = now + w.soak_secs;
                step.changed = true;
            }
            if now < w.soak_until {
                break;
            }
            w.finished_at = now;
            step.changed = true;
            self.wave += 1;
        }
        // Later waves wait.
        let current = self.wave;
        if current < self.waves.len() {
            let waits_for = self.label(current);
            for j in current + 1..self.waves.len() {
                let label = self.label(j);
                for c in &self.waves[j].clusters {
                    if view(c).pending {
                        step.held.insert(
                            c.clone(),
                            format!("rollout of {rev}: {label} waits for {waits_for}"),
                        );
                    }
                }
            }
        } else if self.phase == Phase::Progressing {
            self.phase = Phase::Done;
            self.finished_at = now;
            step.changed = true;
        }
        step
    }
}

/// Why a rollout command was refused.
#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error(
        "environment {env} has no rollout (add `rollout:` to environments/{env}.yaml); environments with one: {known}"
    )]
    NoRollout { env: String, known: String },
    #[error("the rollout of {env} is {phase}: {what}")]
    Refused {
        env: String,
        phase: &'static str,
        what: String,
    },
}

/// The rollout of each environment that has one.
#[derive(Default)]
pub struct Rollouts {
    by_env: Mutex<BTreeMap<String, Rollout>>,
}

impl Rollouts {
    pub fn new(stored: BTreeMap<String, Rollout>) -> Rollouts {
        Rollouts {
            by_env: Mutex::new(stored),
        }
    }

    pub fn get(&self, env: &str) -> Option<Rollout> {
        self.by_env.lock().expect("rollouts lock").get(env).cloned()
    }

    pub fn all(&self) -> Vec<Rollout> {
        self.by_env
            .lock()
            .expect("rollouts lock")
            .values()
            .cloned()
            .collect()
    }

    pub fn any_active(&self) -> bool {
        self.by_env
            .lock()
            .expect("rollouts lock")
            .values()
            .any(|r| r.phase == Phase::Progressing)
    }

    /// Runs `f` on the environment's rollout (inserting one from `init`).
    pub fn with<T>(&self, env: &str, f: impl FnOnce(&mut Option<Rollout>) -> T) -> T {
        let mut map = self.by_env.lock().expect("rollouts lock");
        let mut slot = map.remove(env);
        let out = f(&mut slot);
        if let Some(r) = slot {
            map.insert(env.to_string(), r);
        }
        out
    }

    /// `fleetctl rollout pause|resume|abort`: the new state.
    pub fn control(
        &self,
        env: &str,
        action: &str,
        who: &str,
        reason: &str,
    ) -> Result<Rollout, RolloutError> {
        self.with(env, |slot| {
            let Some(r) = slot.as_mut() else {
                return Err(RolloutError::Refused {
                    env: env.into(),
                    phase: "not started",
                    what: "no revision has been rolled out there yet".into(),
                });
            };
            let refuse = |r: &Rollout, what: &str| RolloutError::Refused {
                env: env.into(),
                phase: r.phase.as_str(),
                what: what.into(),
            };
            match (action, r.phase) {
                ("pause", Phase::Progressing) => {
                    r.phase = Phase::Paused;
                }
                ("pause", _) => return Err(refuse(r, "only a progressing rollout can be paused")),
                ("resume", Phase::Paused) => {
                    r.phase = Phase::Progressing;
                }
                ("resume", _) => return Err(refuse(r, "only a paused rollout can be resumed")),
                ("abort", Phase::Progressing | Phase::Paused) => {
                    r.phase = Phase::Aborted;
                }
                ("abort", _) => {
                    return Err(refuse(
                        r,
                        "only a progressing or paused rollout can be aborted",
                    ));
                }
                (other, _) => {
                    return Err(refuse(
                        r,
                        &format!("unknown action {other:?} (pause, resume, abort)"),
                    ));
                }
            }
            r.by = who.into();
            r.reason = if reason.is_empty() {
                format!("{action} requested")
            } else {
                reason.into()
            };
            if r.phase == Phase::Progressing {
                // Resumed: soak and health are judged afresh.
                if let Some(w) = r.waves.get_mut(r.wave) {
                    w.synced_at = 0;
                    w.soak_until = 0;
                }
            }
            Ok(r.clone())
        })
    }
}

/// The identity of what an environment's rollout rolls out.
pub fn key_of<'a>(digests: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut h = fleet_render::digest::Hasher::new();
    for (c, d) in digests {
        h.field(c).field(d);
    }
    h.finish()
}

/// A rollback commit (trailer `Rolled-Back:`) goes to every cluster at once.
pub fn is_rollback(commit: &CommitMeta) -> bool {
    commit
        .message
        .lines()
        .any(|l| l.trim_start().starts_with("Rolled-Back:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> CommitMeta {
        CommitMeta {
            id: "abcdef0123".into(),
            ..Default::default()
        }
    }

    fn plan3() -> RolloutPlan {
        RolloutPlan {
            waves: vec![
                PlannedWave {
                    name: "canary".into(),
                    clusters: vec!["a".into()],
                    max_parallel: 0,
                    soak_secs: 10,
                },
                PlannedWave {
                    name: "rest".into(),
                    clusters: vec!["b".into(), "c".into()],
                    max_parallel: 1,
                    soak_secs: 0,
                },
            ],
        }
    }

    /// A fleet where released clusters become healthy at once, except `bad`.
    fn view_of<'a>(
        released: &'a std::cell::RefCell<BTreeSet<String>>,
        bad: &'a str,
    ) -> impl Fn(&str) -> ClusterView + 'a {
        move |c: &str| {
            let r = released.borrow().contains(c);
            ClusterView {
                pending: !r,
                runs: r,
                synced: r,
                connected: true,
                problems: if r && c == bad {
                    vec!["api/Deployment.apps/api: 0/1 available".into()]
                } else {
                    Vec::new()
                },
                releasable: Ok(()),
            }
        }
    }

    #[test]
    fn waves_in_order_with_soak_and_parallelism() {
        let released = std::cell::RefCell::new(BTreeSet::new());
        let view = view_of(&released, "");
        let mut r = Rollout::start("prod", meta(), "k".into(), &plan3(), 100, false);
        let s = r.step(100, &view);
        assert_eq!(s.release, vec!["a"]);
        assert!(
            s.held["b"].contains("wave 2/2 (rest) waits for wave 1/2 (canary)"),
            "{:?}",
            s.held
        );
        released.borrow_mut().insert("a".into());
        let s = r.step(101, &view);
        assert!(s.release.is_empty());
        assert_eq!((r.waves[0].synced_at, r.waves[0].soak_until), (101, 111));
        let s = r.step(111, &view);
        assert_eq!(s.release, vec!["b"], "one at a time in wave 2");
        assert!(s.held["c"].contains("waiting for a slot"));
        released.borrow_mut().insert("b".into());
        assert_eq!(r.step(112, &view).release, vec!["c"]);
        released.borrow_mut().insert("c".into());
        r.step(113, &view);
        assert_eq!(r.phase, Phase::Done);
        assert_eq!(r.finished_at, 113);
    }

    #[test]
    fn a_degraded_cluster_pauses_the_rollout_naming_it_and_its_objects() {
        let released = std::cell::RefCell::new(BTreeSet::new());
        let view = view_of(&released, "a");
        let mut r = Rollout::start("prod", meta(), "k".into(), &plan3(), 100, false);
        r.step(100, &view);
        released.borrow_mut().insert("a".into());
        let s = r.step(101, &view);
        assert_eq!(r.phase, Phase::Paused);
        assert_eq!(
            r.reason,
            "wave 1/2 (canary): a is degraded: api/Deployment.apps/api: 0/1 available"
        );
        assert!(s.held["b"].contains("paused by the hub"), "{:?}", s.held);
        assert_eq!(s.notes.len(), 1);
    }
}

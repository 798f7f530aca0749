//! Kustomize, rendered natively. (Placeholder until the engine lands: every
//! kustomization is refused with a clear error.)

use serde_json::Value;

use crate::source::FileSource;

/// A kustomize build error: the kustomization file and what is wrong in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {reason}")]
pub struct KustomizeError {
    pub file: String,
    pub reason: String,
}

/// Builds the kustomization in `dir` as `kustomize build` would.
pub fn build(_src: &dyn FileSource, dir: &str) -> Result<Vec<Value>, KustomizeError> {
    Err(KustomizeError {
        file: format!("{dir}/kustomization.yaml"),
        reason: "kustomize is not supported yet".into(),
    })
}

//! Kind -> API resource, through API discovery of one group version at a
//! time (`GET /api/v1`, `GET /apis/<group>/<version>`), cached. A kind the
//! cache does not know refreshes its group version once (a CRD may have been
//! established since); a kind still unknown is a per-resource error.

use std::collections::HashMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;
use kube::Client;
use kube::core::ApiResource;

/// A kind resolved by discovery.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub ar: ApiResource,
    pub namespaced: bool,
}

pub struct Discovery {
    client: Client,
    /// apiVersion -> its resources (subresources left out).
    versions: HashMap<String, Vec<APIResource>>,
}

impl Discovery {
    pub fn new(client: Client) -> Self {
        Discovery {
            client,
            versions: HashMap::new(),
        }
    }

    /// From the cache only: no I/O.
    pub fn cached(&self, api_version: &str, kind: &str) -> Option<Resolved> {
        let r = self
            .versions
            .get(api_version)?
            .iter()
            .find(|r| r.kind == kind)?;
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Some(Resolved {
            ar: ApiResource {
                group: group.into(),
                version: version.into(),
                api_version: api_version.into(),
                kind: kind.into(),
                plural: r.name.clone(),
            },
            namespaced: r.namespaced,
        })
    }

    pub async fn resolve(&mut self, api_version: &str, kind: &str) -> Result<Resolved, String> {
        if let Some(r) = self.cached(api_version, kind) {
            return Ok(r);
        }
        self.refresh(api_version).await?;
        self.cached(api_version, kind).ok_or_else(|| {
            format!("unknown kind {kind}: the cluster serves no {kind} in {api_version}")
        })
    }

    /// Drops what is cached of `api_version` (a CRD serving it became
    /// Established): the next lookup asks the API server again.
    pub fn forget(&mut self, api_version: &str) {
        self.versions.remove(api_version);
    }

    async fn refresh(&mut self, api_version: &str) -> Result<(), String> {
        let list = if api_version.contains('/') {
            self.client.list_api_group_resources(api_version).await
        } else {
            self.client.list_core_api_resources(api_version).await
        };
        match list {
            Ok(l) => {
                let resources = l
                    .resources
                    .into_iter()
                    .filter(|r| !r.name.contains('/'))
                    .collect();
                self.versions.insert(api_version.to_string(), resources);
                Ok(())
            }
            Err(e) if super::is_not_found(&e) => Err(format!(
                "unknown apiVersion {api_version}: the cluster does not serve it (is its CustomResourceDefinition installed?)"
            )),
            Err(e) => Err(format!("discovery of {api_version}: {e}")),
        }
    }
}

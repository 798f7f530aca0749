//! Release pins: what `fleetctl promote` moves between environments and
//! `fleetctl rollback` restores. A release pin is an entry of the `images`
//! list of an app's environment (or cluster) kustomization: `newName`,
//! `newTag` and `digest` for one image `name`. Nothing else in a
//! kustomization is a pin, so promotion never carries replicas, patches or
//! config from one environment to another.

use serde_json::{Map, Value};

use crate::{yaml, yaml_edit};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagePin {
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub digest: Option<String>,
}

impl ImagePin {
    /// How the pin reads in a commit message: `ghcr.io/x/api:v1.2.3`, `api@sha256:...`.
    pub fn version(&self) -> String {
        let mut s = self.new_name.clone().unwrap_or_else(|| self.name.clone());
        if let Some(t) = &self.new_tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// Just the tag or digest part, for short messages.
    pub fn short_version(&self) -> String {
        match (&self.new_tag, &self.digest) {
            (_, Some(d)) => d.clone(),
            (Some(t), None) => t.clone(),
            (None, None) => self.new_name.clone().unwrap_or_else(|| "(unpinned)".into()),
        }
    }

    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), Value::String(self.name.clone()));
        if let Some(v) = &self.new_name {
            m.insert("newName".into(), Value::String(v.clone()));
        }
        if let Some(v) = &self.new_tag {
            m.insert("newTag".into(), Value::String(v.clone()));
        }
        if let Some(v) = &self.digest {
            m.insert("digest".into(), Value::String(v.clone()));
        }
        Value::Object(m)
    }
}

/// One pin that moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinChange {
    pub name: String,
    pub from: Option<ImagePin>,
    pub to: ImagePin,
}

impl PinChange {
    pub fn describe(&self) -> String {
        let from = self
            .from
            .as_ref()
            .map(ImagePin::short_version)
            .unwrap_or_else(|| "(none)".into());
        format!(
            "image {} {} -> {}",
            self.name,
            from,
            self.to.short_version()
        )
    }
}

/// The image pins of a kustomization file.
pub fn images_of(file: &str, text: &[u8]) -> Result<Vec<ImagePin>, String> {
    let v: Value = yaml::parse_one(file, text).map_err(|e| e.to_string())?;
    let Some(images) = v.get("images") else {
        return Ok(Vec::new());
    };
    let list = images
        .as_array()
        .ok_or_else(|| format!("{file}: images must be a list"))?;
    list.iter()
        .map(|i| {
            let s = |k: &str| i.get(k).and_then(Value::as_str).map(str::to_string);
            Ok(ImagePin {
                name: s("name").ok_or_else(|| format!("{file}: an images entry has no name"))?,
                new_name: s("newName"),
                new_tag: s("newTag").or_else(|| {
                    i.get("newTag")
                        .filter(|v| v.is_number())
                        .map(|v| v.to_string())
                }),
                digest: s("digest"),
            })
        })
        .collect()
}

/// Applies `source`'s pins onto `target`: entries for the same image name take
/// the source's newName/newTag/digest; target entries the source lacks stay;
/// source entries the target lacks are appended. Returns the new list and what moved.
pub fn promote(target: &[ImagePin], source: &[ImagePin]) -> (Vec<ImagePin>, Vec<PinChange>) {
    let mut out = target.to_vec();
    let mut changes = Vec::new();
    for s in source {
        match out.iter_mut().find(|t| t.name == s.name) {
            Some(t) if t == s => {}
            Some(t) => {
                changes.push(PinChange {
                    name: s.name.clone(),
                    from: Some(t.clone()),
                    to: s.clone(),
                });
                *t = s.clone();
            }
            None => {
                changes.push(PinChange {
                    name: s.name.clone(),
                    from: None,
                    to: s.clone(),
                });
                out.push(s.clone());
            }
        }
    }
    (out, changes)
}

/// The kustomization text with its `images` list replaced by `pins`; every
/// other line is left byte for byte.
pub fn rewrite(text: &str, pins: &[ImagePin]) -> String {
    let value = Value::Array(pins.iter().map(ImagePin::to_value).collect());
    yaml::replace_top_level_key(text, "images", &value)
}

/// The kustomization text with its `images` entries moved from `old` to
/// `new` in place: only the changed values (and added or removed fields and
/// entries) change; comments, order, quoting and every other line stay. A
/// list that cannot be edited in place (flow style) is rewritten in block
/// style. The result is parsed back and must hold exactly `new`.
pub fn rewrite_in_place(
    file: &str,
    text: &str,
    old: &[ImagePin],
    new: &[ImagePin],
) -> Result<String, String> {
    let edits: Vec<yaml_edit::EntryEdit> = new
        .iter()
        .filter_map(|p| {
            let before = old.iter().find(|o| o.name == p.name);
            if before == Some(p) {
                return None;
            }
            let mut fields = Vec::new();
            for (k, was, now) in [
                (
                    "newName",
                    before.and_then(|b| b.new_name.clone()),
                    &p.new_name,
                ),
                ("newTag", before.and_then(|b| b.new_tag.clone()), &p.new_tag),
                ("digest", before.and_then(|b| b.digest.clone()), &p.digest),
            ] {
                if before.is_none() || was != *now {
                    fields.push((k.to_string(), now.clone()));
                }
            }
            Some(yaml_edit::EntryEdit {
                id: p.name.clone(),
                fields,
            })
        })
        .collect();
    let out = match yaml_edit::edit_list_entries(file, text, "images", "name", &edits) {
        Ok(o) => o,
        Err(yaml_edit::EditError::Unsupported { .. }) => rewrite(text, new),
    };
    let back = images_of(file, out.as_bytes())?;
    let same = back.len() == new.len() && new.iter().all(|p| back.contains(p));
    if !same {
        return Err(format!(
            "{file}: the edited images list does not read back as intended; edit it by hand"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAGING: &str = "resources:\n- ../../base\nimages:\n- name: api\n  newTag: v1.3.0\n- name: worker\n  newName: ghcr.io/x/worker\n  newTag: \"2.0\"\n";
    const PROD: &str = "# prod overlay\nresources:\n- ../../base\nimages:\n  - name: api\n    newTag: v1.2.3   # pinned\nreplicas:\n- name: api\n  count: 5\n";

    #[test]
    fn promotion_moves_only_pins_and_keeps_the_rest_of_the_file() {
        let src = images_of("s", STAGING.as_bytes()).unwrap();
        let dst = images_of("p", PROD.as_bytes()).unwrap();
        let (pins, changes) = promote(&dst, &src);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].describe(), "image api v1.2.3 -> v1.3.0");
        assert_eq!(changes[1].describe(), "image worker (none) -> 2.0");
        let out = rewrite(PROD, &pins);
        assert!(
            out.starts_with("# prod overlay\nresources:\n- ../../base\nimages:\n"),
            "{out}"
        );
        assert!(
            out.ends_with("replicas:\n- name: api\n  count: 5\n"),
            "{out}"
        );
        let back = images_of("p", out.as_bytes()).unwrap();
        assert_eq!(back, pins);
    }

    #[test]
    fn a_missing_images_list_is_appended() {
        let pins = vec![ImagePin {
            name: "a".into(),
            new_name: None,
            new_tag: Some("1".into()),
            digest: None,
        }];
        let out = rewrite("resources:\n- ../../base\n", &pins);
        assert_eq!(
            out,
            "resources:\n- ../../base\nimages:\n- name: a\n  newTag: \"1\"\n"
        );
        assert_eq!(images_of("k", out.as_bytes()).unwrap(), pins);
    }

    #[test]
    fn in_place_rewrite_keeps_comments_inside_images() {
        let prod = "# prod overlay\nimages:\n# renovate: datasource=docker depName=api\n  - name: api\n    newTag: v1.2.3   # pinned\nreplicas:\n- name: api\n  count: 5\n";
        let src = images_of("s", STAGING.as_bytes()).unwrap();
        let dst = images_of("p", prod.as_bytes()).unwrap();
        let (pins, _) = promote(&dst, &src);
        let out = rewrite_in_place("p", prod, &dst, &pins).unwrap();
        assert_eq!(
            out,
            "# prod overlay\nimages:\n# renovate: datasource=docker depName=api\n  - name: api\n    newTag: v1.3.0   # pinned\n  - name: worker\n    newName: ghcr.io/x/worker\n    newTag: \"2.0\"\nreplicas:\n- name: api\n  count: 5\n"
        );
    }
}

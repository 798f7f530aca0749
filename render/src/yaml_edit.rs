//! Line-preserving edits of block-style YAML documents: the companion of
//! `yaml` for `fleetctl promote`, `rollback` and `unfreeze`, which must change
//! only the values they move. Every byte outside an edited value stays: other
//! lines, comments (a `# renovate:` marker inside `images:` included), the
//! quoting style and the trailing comment of an edited line.
//!
//! What this cannot edit in place (flow style, a value spanning lines) is an
//! [`EditError`]; callers verify the result by parsing it again.

use serde_json::Value;

use crate::yaml;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{file}: `{key}:` is not a block list of maps ({what}); edit it by hand")]
    Unsupported {
        file: String,
        key: String,
        what: String,
    },
}

pub type Result<T, E = EditError> = std::result::Result<T, E>;

/// The edit of one entry of a top-level list of maps, the entry whose
/// `id_field` equals `id`: fields to set (`Some`) or remove (`None`). An entry
/// that does not exist is appended with the fields set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryEdit {
    pub id: String,
    pub fields: Vec<(String, Option<String>)>,
}

fn is_top_level_key(l: &str, key: &str) -> bool {
    l.strip_prefix(key)
        .is_some_and(|rest| rest.starts_with(':'))
}

/// The end (exclusive line index) of the value of the top-level key at `start`.
fn value_end(lines: &[&str], start: usize) -> usize {
    let mut end = start + 1;
    while end < lines.len() {
        let l = lines[end];
        let top_level = !l.starts_with([' ', '\t', '-', '#', '\n', '\r']);
        let doc_marker = l.starts_with("---") || l.starts_with("...");
        if top_level || doc_marker {
            break;
        }
        end += 1;
    }
    while end > start + 1
        && (lines[end - 1].trim_start().starts_with('#') || lines[end - 1].trim().is_empty())
    {
        end -= 1;
    }
    end
}

/// A scalar as `yaml` would write it (quoted when a plain one could read as
/// something else).
fn scalar(s: &str) -> String {
    yaml::to_canonical(&Value::String(s.into()))
        .trim_end_matches('\n')
        .to_string()
}

/// `s` in the quoting style of `like` (a scalar as it appeared in the file),
/// when that style can hold it; else the canonical scalar.
fn scalar_like(s: &str, like: &str) -> String {
    let canonical = scalar(s);
    if like.starts_with('\'') && !s.contains(['\'', '\n']) {
        format!("'{s}'")
    } else if like.starts_with('"') && !canonical.starts_with('"') {
        format!("\"{s}\"")
    } else {
        canonical
    }
}

/// A `key: value  # comment` line split into (indent, key, value span).
struct KeyLine {
    key: String,
    /// Byte range of the value in the line (empty range: no value).
    value: std::ops::Range<usize>,
}

fn parse_key_line(line: &str, at: usize) -> Option<KeyLine> {
    let body = &line[at..];
    let colon = body.find(':')?;
    let key = &body[..colon];
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    {
        return None;
    }
    let after = &body[colon + 1..];
    if !(after.is_empty() || after.starts_with([' ', '\t', '\n', '\r'])) {
        return None;
    }
    let vstart = at + colon + 1 + (after.len() - after.trim_start_matches([' ', '\t']).len());
    let rest = &line[vstart..];
    let rest_trim = rest.trim_end_matches(['\n', '\r']);
    let vlen = if rest_trim.starts_with('"') {
        let b = rest_trim.as_bytes();
        let mut i = 1;
        while i < b.len() {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            if b[i] == b'"' {
                break;
            }
            i += 1;
        }
        (i + 1).min(b.len())
    } else if rest_trim.starts_with('\'') {
        let b = rest_trim.as_bytes();
        let mut i = 1;
        while i < b.len() {
            if b[i] == b'\'' {
                if b.get(i + 1) == Some(&b'\'') {
                    i += 2;
                    continue;
                }
                break;
            }
            i += 1;
        }
        (i + 1).min(b.len())
    } else if rest_trim.starts_with('#') {
        0
    } else {
        let cut = rest_trim
            .find(" #")
            .or_else(|| rest_trim.find("\t#"))
            .unwrap_or(rest_trim.len());
        rest_trim[..cut].trim_end().len()
    };
    Some(KeyLine {
        key: key.to_string(),
        value: vstart..vstart + vlen,
    })
}

fn unquote(v: &str) -> String {
    if let Some(s) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        s.replace("\\\"", "\"").replace("\\\\", "\\")
    } else if let Some(s) = v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
        s.replace("''", "'")
    } else {
        v.to_string()
    }
}

/// One item of the list: its line range and where its keys start.
struct Item {
    first: usize,
    /// Exclusive; trailing comments and blank lines not included.
    end: usize,
    /// Column of the keys (after `- `).
    key_col: usize,
}

/// Edits entries of the top-level list `key` (a block list of maps) in place.
pub fn edit_list_entries(
    file: &str,
    text: &str,
    key: &str,
    id_field: &str,
    edits: &[EntryEdit],
) -> Result<String> {
    let unsupported = |what: &str| EditError::Unsupported {
        file: file.into(),
        key: key.into(),
        what: what.into(),
    };
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let Some(start) = refs.iter().position(|l| is_top_level_key(l, key)) else {
        // No list yet: append one in canonical block form.
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(key);
        out.push_str(":\n");
        for e in edits {
            out.push_str(&new_item("", id_field, e));
        }
        return Ok(out);
    };
    let head = parse_key_line(refs[start], 0).ok_or_else(|| unsupported("unreadable key line"))?;
    if !head.value.is_empty() {
        return Err(unsupported("a value on the key line, e.g. flow style"));
    }
    let end = value_end(&refs, start);
    // Items.
    let mut items: Vec<Item> = Vec::new();
    let mut item_indent: Option<usize> = None;
    for (i, l) in refs.iter().enumerate().take(end).skip(start + 1) {
        let t = l.trim_start_matches(' ');
        if t.trim().is_empty() || t.starts_with('#') {
            continue;
        }
        let ind = l.len() - t.len();
        if t.starts_with("- ") || t.trim_end() == "-" {
            if item_indent.is_none() {
                item_indent = Some(ind);
            }
            if Some(ind) == item_indent {
                if let Some(last) = items.last_mut() {
                    last.end = last_content_line(&refs, last.first, i) + 1;
                }
                let after = &t[1..];
                let key_col = ind + 1 + (after.len() - after.trim_start_matches(' ').len());
                items.push(Item {
                    first: i,
                    end: i + 1,
                    key_col,
                });
                continue;
            }
        }
        if items.is_empty() {
            return Err(unsupported("a line before the first list item"));
        }
    }
    if let Some(last) = items.last_mut() {
        last.end = last_content_line(&refs, last.first, end) + 1;
    }
    let item_indent_s = " ".repeat(item_indent.unwrap_or(0));
    // Find each item's id.
    let mut ids: Vec<Option<String>> = Vec::new();
    for it in &items {
        let mut id = None;
        for (i, l) in refs.iter().enumerate().take(it.end).skip(it.first) {
            let col = it.key_col;
            if l.len() <= col || (i != it.first && !l[..col].trim().is_empty()) {
                continue;
            }
            if let Some(k) = parse_key_line(l, col)
                && k.key == id_field
            {
                id = Some(unquote(&l[k.value.clone()]));
            }
        }
        ids.push(id);
    }
    drop(refs);
    // Apply edits bottom-up so line indices stay valid; appends go last.
    let mut appends = Vec::new();
    let mut per_item: Vec<(usize, &EntryEdit)> = Vec::new();
    for e in edits {
        match ids.iter().position(|i| i.as_deref() == Some(e.id.as_str())) {
            Some(n) => per_item.push((n, e)),
            None => appends.push(e),
        }
    }
    per_item.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let append_at = items.last().map(|i| i.end).unwrap_or(start + 1);
    let mut appended = String::new();
    for e in appends {
        appended.push_str(&new_item(&item_indent_s, id_field, e));
    }
    if !appended.is_empty() {
        if append_at > 0 && !lines[append_at - 1].ends_with('\n') {
            lines[append_at - 1].push('\n');
        }
        lines.insert(append_at, appended);
    }
    for (n, e) in per_item {
        let it = &items[n];
        // Key lines of this item at its key column.
        let mut found: Vec<(usize, KeyLine)> = Vec::new();
        for i in it.first..it.end {
            let l = &lines[i];
            let col = it.key_col;
            if l.len() <= col || (i != it.first && !l[..col].trim().is_empty()) {
                continue;
            }
            if let Some(k) = parse_key_line(l, col) {
                found.push((i, k));
            }
        }
        let last_key_line = found.iter().map(|(i, _)| *i).max().unwrap_or(it.first);
        let mut inserts = Vec::new();
        let mut removes = Vec::new();
        for (field, value) in &e.fields {
            match (found.iter().find(|(_, k)| &k.key == field), value) {
                (Some((i, k)), Some(v)) => {
                    if k.value.is_empty() {
                        return Err(unsupported(&format!("{field} of {} spans lines", e.id)));
                    }
                    let old = lines[*i][k.value.clone()].to_string();
                    if unquote(&old) != *v {
                        let new = scalar_like(v, &old);
                        lines[*i].replace_range(k.value.clone(), &new);
                    }
                }
                (Some((i, _)), None) => {
                    if *i == it.first {
                        return Err(unsupported(&format!(
                            "removing the first key of the entry {}",
                            e.id
                        )));
                    }
                    removes.push(*i);
                }
                (None, Some(v)) => inserts.push(format!(
                    "{}{field}: {}\n",
                    " ".repeat(it.key_col),
                    scalar(v)
                )),
                (None, None) => {}
            }
        }
        if !inserts.is_empty() {
            if !lines[last_key_line].ends_with('\n') {
                lines[last_key_line].push('\n');
            }
            lines.insert(last_key_line + 1, inserts.concat());
        }
        removes.sort_unstable_by(|a, b| b.cmp(a));
        for i in removes {
            lines.remove(i);
        }
    }
    Ok(lines.concat())
}

/// The last line of an item before `limit` that is not a comment or blank.
fn last_content_line(lines: &[&str], first: usize, limit: usize) -> usize {
    let mut i = limit;
    while i > first + 1 && {
        let t = lines[i - 1].trim();
        t.is_empty() || t.starts_with('#')
    } {
        i -= 1;
    }
    i - 1
}

fn new_item(indent: &str, id_field: &str, e: &EntryEdit) -> String {
    let mut s = format!("{indent}- {id_field}: {}\n", scalar(&e.id));
    for (k, v) in &e.fields {
        if let Some(v) = v {
            s.push_str(&format!("{indent}  {k}: {}\n", scalar(v)));
        }
    }
    s
}

/// Removes a top-level key and its value; every other line stays. Comment
/// lines directly above the key stay too.
pub fn remove_top_level_key(text: &str, key: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let Some(start) = lines.iter().position(|l| is_top_level_key(l, key)) else {
        return text.to_string();
    };
    let end = value_end(&lines, start);
    let mut out: String = lines[..start].concat();
    out.push_str(&lines[end..].concat());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(id: &str, fields: &[(&str, Option<&str>)]) -> EntryEdit {
        EntryEdit {
            id: id.into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    fn check(text: &str, edits: &[EntryEdit], want: &str) {
        let got = edit_list_entries("k.yaml", text, "images", "name", edits).unwrap();
        assert_eq!(got, want);
    }

    #[test]
    fn a_changed_value_is_the_only_change() {
        let text = "# prod\nresources:\n- ../../base\nimages:\n# renovate: datasource=docker depName=ghcr.io/x/api\n- name: ghcr.io/x/api\n  newTag: v1   # pinned\n  # the worker\n- name: worker\n  newTag: \"2.0\"\nreplicas:\n- name: api\n  count: 5\n";
        check(
            text,
            &[
                set("ghcr.io/x/api", &[("newTag", Some("v2"))]),
                set("worker", &[("newTag", Some("3.0"))]),
            ],
            &text
                .replace("newTag: v1   # pinned", "newTag: v2   # pinned")
                .replace("\"2.0\"", "\"3.0\""),
        );
    }

    #[test]
    fn indented_items_fields_added_removed_and_entries_appended() {
        let text = "images:\n  - name: api   # the api\n    newTag: v1\n    digest: sha256:aa\n  # trailing comment\nlabels: {}\n";
        check(
            text,
            &[
                set(
                    "api",
                    &[
                        ("newTag", Some("v2")),
                        ("digest", None),
                        ("newName", Some("r/api")),
                    ],
                ),
                set("web", &[("newTag", Some("1"))]),
            ],
            "images:\n  - name: api   # the api\n    newTag: v2\n    newName: r/api\n  - name: web\n    newTag: \"1\"\n  # trailing comment\nlabels: {}\n",
        );
    }

    #[test]
    fn quoting_style_is_kept_and_flow_style_is_refused() {
        check(
            "images:\n- name: 'api'\n  newTag: 'v1'\n",
            &[set("api", &[("newTag", Some("v2"))])],
            "images:\n- name: 'api'\n  newTag: 'v2'\n",
        );
        let e = edit_list_entries(
            "k.yaml",
            "images: [{name: api, newTag: v1}]\n",
            "images",
            "name",
            &[set("api", &[("newTag", Some("v2"))])],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("k.yaml: `images:` is not a block list"),
            "{e}"
        );
    }

    #[test]
    fn removing_a_key_keeps_the_rest() {
        let text = "# env\nfrozen:\n  by: a\n  reason: b\n# rollout\nrollout:\n  soak: 1m\n";
        assert_eq!(
            remove_top_level_key(text, "frozen"),
            "# env\n# rollout\nrollout:\n  soak: 1m\n"
        );
        assert_eq!(remove_top_level_key("a: 1\n", "frozen"), "a: 1\n");
    }
}

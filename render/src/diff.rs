//! Differences between rendered states: which objects were added, removed or
//! changed, with a unified line diff of their canonical YAML. Pure.

use std::collections::BTreeMap;

use crate::state::DesiredState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDiff {
    pub app: String,
    pub id: String,
    pub change: Change,
    /// Unified diff of the canonical YAML.
    pub text: String,
}

/// Object-by-object difference between two states of one cluster (`None`: no state).
pub fn state_diff(old: Option<&DesiredState>, new: Option<&DesiredState>) -> Vec<ResourceDiff> {
    let index = |s: Option<&DesiredState>| -> BTreeMap<(String, String), String> {
        s.map(|s| {
            s.resources()
                .map(|(a, r)| ((a.to_string(), r.id.to_string()), r.manifest.to_string()))
                .collect()
        })
        .unwrap_or_default()
    };
    let (a, b) = (index(old), index(new));
    let mut out = Vec::new();
    for (k, old_text) in &a {
        match b.get(k) {
            None => out.push(ResourceDiff {
                app: k.0.clone(),
                id: k.1.clone(),
                change: Change::Removed,
                text: unified(old_text, "", &k.1, "/dev/null"),
            }),
            Some(new_text) if new_text != old_text => out.push(ResourceDiff {
                app: k.0.clone(),
                id: k.1.clone(),
                change: Change::Changed,
                text: unified(old_text, new_text, &k.1, &k.1),
            }),
            Some(_) => {}
        }
    }
    for (k, new_text) in &b {
        if !a.contains_key(k) {
            out.push(ResourceDiff {
                app: k.0.clone(),
                id: k.1.clone(),
                change: Change::Added,
                text: unified("", new_text, "/dev/null", &k.1),
            });
        }
    }
    out.sort_by(|x, y| (&x.app, &x.id).cmp(&(&y.app, &y.id)));
    out
}

/// A unified diff (3 lines of context) of two texts.
pub fn unified(old: &str, new: &str, old_label: &str, new_label: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = edit_script(&a, &b);
    let mut out = format!("--- {old_label}\n+++ {new_label}\n");
    // Group ops into hunks with 3 lines of context.
    let n = ops.len();
    let mut i = 0;
    while i < n {
        if ops[i].0 == ' ' {
            i += 1;
            continue;
        }
        let start = i.saturating_sub(3);
        let mut end = i;
        let mut last_change = i;
        while end < n {
            if ops[end].0 != ' ' {
                last_change = end;
            } else if end - last_change > 6 {
                break;
            }
            end += 1;
        }
        let end = (last_change + 4).min(n);
        let (mut oa, mut ob) = (0usize, 0usize);
        for op in &ops[..start] {
            if op.0 != '+' {
                oa += 1;
            }
            if op.0 != '-' {
                ob += 1;
            }
        }
        let la = ops[start..end].iter().filter(|o| o.0 != '+').count();
        let lb = ops[start..end].iter().filter(|o| o.0 != '-').count();
        out.push_str(&format!("@@ -{},{} +{},{} @@\n", oa + 1, la, ob + 1, lb));
        for (c, line) in &ops[start..end] {
            out.push(*c);
            out.push_str(line);
            out.push('\n');
        }
        i = end;
    }
    out
}

/// Longest-common-subsequence edit script: (' ' | '-' | '+', line).
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(char, &'a str)> {
    // Trim the common prefix and suffix, then LCS on the middle (bounded).
    let pre = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let suf = a[pre..]
        .iter()
        .rev()
        .zip(b[pre..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (am, bm) = (&a[pre..a.len() - suf], &b[pre..b.len() - suf]);
    let mut ops: Vec<(char, &str)> = a[..pre].iter().map(|l| (' ', *l)).collect();
    if am.len() * bm.len() > 4_000_000 {
        ops.extend(am.iter().map(|l| ('-', *l)));
        ops.extend(bm.iter().map(|l| ('+', *l)));
    } else {
        let (n, m) = (am.len(), bm.len());
        let mut dp = vec![0u32; (n + 1) * (m + 1)];
        for i in (0..n).rev() {
            for j in (0..m).rev() {
                dp[i * (m + 1) + j] = if am[i] == bm[j] {
                    dp[(i + 1) * (m + 1) + j + 1] + 1
                } else {
                    dp[(i + 1) * (m + 1) + j].max(dp[i * (m + 1) + j + 1])
                };
            }
        }
        let (mut i, mut j) = (0, 0);
        while i < n || j < m {
            if i < n && j < m && am[i] == bm[j] {
                ops.push((' ', am[i]));
                i += 1;
                j += 1;
            } else if i < n && (j == m || dp[(i + 1) * (m + 1) + j] >= dp[i * (m + 1) + j + 1]) {
                ops.push(('-', am[i]));
                i += 1;
            } else {
                ops.push(('+', bm[j]));
                j += 1;
            }
        }
    }
    ops.extend(a[a.len() - suf..].iter().map(|l| (' ', *l)));
    ops
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_diff_shows_the_change_with_context() {
        let a = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let b = "a\nb\nc\nd\nE\nf\ng\nh\n";
        let d = unified(a, b, "x", "x");
        assert_eq!(
            d,
            "--- x\n+++ x\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n"
        );
    }

    #[test]
    fn identical_texts_have_no_hunks() {
        assert_eq!(unified("a\n", "a\n", "x", "y"), "--- x\n+++ y\n");
    }
}

//! Lookups in a map by cluster name for probes that come in name order.
//!
//! A publish walks 10,000 states in name order and looks each up in other
//! maps keyed by the same names (the stored states, the released ones, the
//! index's clusters). A search from the root costs a dozen string
//! comparisons of names with long common prefixes; walking the map next to
//! the probes costs one or two.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map;
use std::iter::Peekable;
use std::ops::Bound;

/// Looks keys up in `map` by walking it forward. Probes in ascending order
/// cost amortized one step each; a probe far ahead jumps there with one
/// search, and a probe at or below a key already passed is searched from
/// the root, so any order gives the right answer at no worse than a search.
pub struct Cursor<'a, V> {
    map: &'a BTreeMap<String, V>,
    ahead: Peekable<btree_map::Range<'a, String, V>>,
    /// The greatest key walked past.
    passed: Option<&'a str>,
}

/// Steps walked before a probe jumps ahead with a search instead.
const WALK: usize = 8;

impl<'a, V> Cursor<'a, V> {
    pub fn new(map: &'a BTreeMap<String, V>) -> Self {
        Cursor {
            map,
            ahead: map.range::<str, _>(..).peekable(),
            passed: None,
        }
    }

    pub fn get(&mut self, key: &str) -> Option<&'a V> {
        if self.passed.is_some_and(|p| key <= p) {
            return self.map.get(key);
        }
        for step in 0.. {
            let &(k, v) = self.ahead.peek()?;
            match k.as_str().cmp(key) {
                Ordering::Less if step == WALK => {
                    // Far ahead: everything below `key` is passed at once.
                    self.passed = self
                        .map
                        .range::<str, _>((Bound::Unbounded, Bound::Excluded(key)))
                        .next_back()
                        .map(|(k, _)| k.as_str());
                    self.ahead = self
                        .map
                        .range::<str, _>((Bound::Included(key), Bound::Unbounded))
                        .peekable();
                }
                Ordering::Less => {
                    self.passed = Some(k);
                    self.ahead.next();
                }
                Ordering::Equal => return Some(v),
                Ordering::Greater => return None,
            }
        }
        None
    }

    pub fn contains_key(&mut self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Sets `map[key(value)] = value` for each value, keeping existing entries in
/// place (no new key per update); values in ascending key order are matched
/// by one walk of the map, the others (and new keys) by a search. Returns
/// the values replaced.
pub fn update_sorted<V>(
    map: &mut BTreeMap<String, V>,
    values: impl IntoIterator<Item = V>,
    key: impl Fn(&V) -> &str,
) -> Vec<V> {
    let mut rest = Vec::new();
    let mut replaced = Vec::new();
    {
        let mut walk = map.iter_mut().peekable();
        for value in values {
            loop {
                match walk.peek().map(|(k, _)| k.as_str().cmp(key(&value))) {
                    Some(Ordering::Less) => {
                        walk.next();
                    }
                    Some(Ordering::Equal) => {
                        if let Some((_, slot)) = walk.next() {
                            replaced.push(std::mem::replace(slot, value));
                        }
                        break;
                    }
                    Some(Ordering::Greater) | None => {
                        rest.push(value);
                        break;
                    }
                }
            }
        }
    }
    for value in rest {
        match map.get_mut(key(&value)) {
            Some(slot) => replaced.push(std::mem::replace(slot, value)),
            None => {
                map.insert(key(&value).to_string(), value);
            }
        }
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(keys: &[&str]) -> BTreeMap<String, usize> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), i))
            .collect()
    }

    #[test]
    fn probes_in_any_order_find_what_the_map_holds() {
        let m = map(&["c-01", "c-03", "c-05", "c-07"]);
        let probes = [
            "c-00", "c-01", "c-01", "c-02", "c-05", "c-03", "c-07", "c-08", "c-01", "c-09", "c-07",
        ];
        let mut cursor = Cursor::new(&m);
        for p in probes {
            assert_eq!(cursor.get(p), m.get(p), "probe {p}");
        }
        let empty = BTreeMap::<String, usize>::new();
        assert_eq!(Cursor::new(&empty).get("c-01"), None);
    }

    #[test]
    fn probes_far_apart_jump_and_still_find_what_lies_between() {
        let keys: Vec<String> = (0..100).map(|i| format!("c-{i:03}")).collect();
        let m = map(&keys.iter().map(String::as_str).collect::<Vec<_>>());
        let probes = [
            "c-050", "c-020", "c-051", "c-099", "c-0995", "c-060", "c-100", "c-000", "c-099",
        ];
        let mut cursor = Cursor::new(&m);
        for p in probes {
            assert_eq!(cursor.get(p), m.get(p), "probe {p}");
        }
        // In order, with gaps wider than the walk: every key found.
        let mut cursor = Cursor::new(&m);
        for k in keys.iter().step_by(13) {
            assert_eq!(cursor.get(k), m.get(k.as_str()), "probe {k}");
        }
    }

    #[test]
    fn updates_replace_in_place_and_insert_the_new_keys() {
        let m = map(&["c-01", "c-03", "c-05"]);
        let updates = [
            ("c-00", 10),
            ("c-03", 13),
            ("c-04", 14),
            ("c-05", 15),
            ("c-01", 11),
            ("c-09", 19),
        ];
        let mut m: BTreeMap<String, (String, usize)> =
            m.into_iter().map(|(k, v)| (k.clone(), (k, v))).collect();
        let mut replaced = update_sorted(
            &mut m,
            updates.iter().map(|(k, v)| (k.to_string(), *v)),
            |(k, _)| k,
        );
        // The old values of the keys that were there (c-01 out of order).
        replaced.sort();
        assert_eq!(
            replaced,
            [
                ("c-01".to_string(), 0),
                ("c-03".into(), 1),
                ("c-05".into(), 2)
            ]
        );
        let m: BTreeMap<String, usize> = m
            .into_iter()
            .map(|(k, (named, v))| {
                assert_eq!(k, named);
                (k, v)
            })
            .collect();
        let want: BTreeMap<String, usize> = [
            ("c-00", 10),
            ("c-01", 11),
            ("c-03", 13),
            ("c-04", 14),
            ("c-05", 15),
            ("c-09", 19),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        assert_eq!(m, want);
    }
}

//! Sync windows: when automatic syncs may happen. Pure: the caller passes the time.
//!
//! A window is `kind: allow|deny`, optional `days` (Mon..Sun, default every
//! day), and `start`/`end` as `HH:MM` in UTC (`end` may be `24:00`; a window
//! whose end is before its start runs past midnight into the next day).
//! Syncs are held while any deny window is open, or when allow windows exist
//! and none is open.

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Allow,
    Deny,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
pub enum Weekday {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

const DAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SyncWindow {
    pub kind: WindowKind,
    #[serde(default)]
    pub days: Vec<Weekday>,
    pub start: String,
    pub end: String,
}

fn minutes(hhmm: &str) -> Result<u32, String> {
    let (h, m) = hhmm
        .split_once(':')
        .ok_or_else(|| format!("{hhmm:?} is not HH:MM"))?;
    let h: u32 = h.parse().map_err(|_| format!("{hhmm:?} is not HH:MM"))?;
    let m: u32 = m.parse().map_err(|_| format!("{hhmm:?} is not HH:MM"))?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(format!("{hhmm:?} is not a time of day"));
    }
    Ok(h * 60 + m)
}

impl SyncWindow {
    pub fn validate(&self) -> Result<(), String> {
        minutes(&self.start)?;
        minutes(&self.end)?;
        Ok(())
    }

    fn on_day(&self, d: Weekday) -> bool {
        self.days.is_empty() || self.days.contains(&d)
    }

    /// Whether the window is open at `unix` seconds (UTC).
    pub fn is_open(&self, unix: i64) -> bool {
        let (Ok(start), Ok(end)) = (minutes(&self.start), minutes(&self.end)) else {
            return false;
        };
        let day_index = unix.div_euclid(86_400);
        let minute = (unix.rem_euclid(86_400) / 60) as u32;
        // 1970-01-01 was a Thursday.
        let today = DAYS[((day_index + 3).rem_euclid(7)) as usize];
        let yesterday = DAYS[((day_index + 2).rem_euclid(7)) as usize];
        if start <= end {
            self.on_day(today) && minute >= start && minute < end
        } else {
            (self.on_day(today) && minute >= start) || (self.on_day(yesterday) && minute < end)
        }
    }

    pub fn describe(&self) -> String {
        let days = if self.days.is_empty() {
            "every day".to_string()
        } else {
            self.days
                .iter()
                .map(|d| format!("{d:?}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let kind = match self.kind {
            WindowKind::Allow => "allow",
            WindowKind::Deny => "deny",
        };
        format!("{kind} {days} {}-{} UTC", self.start, self.end)
    }
}

/// `2026-11-22 07:40:01` (UTC) from Unix seconds.
pub fn utc(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// `2026-11-22T07:40:01Z` (RFC 3339, UTC) from Unix seconds.
pub fn rfc3339(t: i64) -> String {
    utc(t).replacen(' ', "T", 1) + "Z"
}

/// `Ok` when automatic syncs may run at `unix`, else why not.
pub fn allows(windows: &[SyncWindow], unix: i64) -> Result<(), String> {
    if let Some(w) = windows
        .iter()
        .find(|w| w.kind == WindowKind::Deny && w.is_open(unix))
    {
        return Err(format!("sync window {} is open", w.describe()));
    }
    let allow: Vec<&SyncWindow> = windows
        .iter()
        .filter(|w| w.kind == WindowKind::Allow)
        .collect();
    if !allow.is_empty() && !allow.iter().any(|w| w.is_open(unix)) {
        let names: Vec<String> = allow.iter().map(|w| w.describe()).collect();
        return Err(format!("outside every allow window ({})", names.join("; ")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(kind: WindowKind, days: &[Weekday], start: &str, end: &str) -> SyncWindow {
        SyncWindow {
            kind,
            days: days.to_vec(),
            start: start.into(),
            end: end.into(),
        }
    }

    // 2026-11-23 is a Monday.
    const MON_10H: i64 = 1_795_428_000; // 2026-11-23T10:00:00Z

    #[test]
    fn weekday_arithmetic() {
        assert!(w(WindowKind::Allow, &[Weekday::Mon], "09:00", "17:00").is_open(MON_10H));
        assert!(!w(WindowKind::Allow, &[Weekday::Tue], "09:00", "17:00").is_open(MON_10H));
        assert!(!w(WindowKind::Allow, &[], "11:00", "17:00").is_open(MON_10H));
    }

    #[test]
    fn deny_wins_and_allow_restricts() {
        let deny = w(WindowKind::Deny, &[Weekday::Mon], "00:00", "24:00");
        let allow_night = w(WindowKind::Allow, &[], "22:00", "06:00");
        assert!(allows(&[], MON_10H).is_ok());
        assert!(
            allows(&[deny.clone()], MON_10H)
                .unwrap_err()
                .contains("deny Mon")
        );
        assert!(
            allows(&[allow_night.clone()], MON_10H)
                .unwrap_err()
                .contains("outside every allow window")
        );
        // Past midnight: Monday 02:00 is inside Sunday's 22:00-06:00 window.
        assert!(allow_night.is_open(MON_10H - 8 * 3600));
    }
}

//! Calendar rules in node-local civil time: cron expressions for scheduled moves and daily
//! windows for failback. Pure: the caller passes the civil time in.

use std::fmt;

/// A civil (wall-clock) time in the node's local time zone, minute resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CivilTime {
    /// Year, e.g. 2026.
    pub year: i32,
    /// Month 1–12.
    pub month: u8,
    /// Day of month 1–31.
    pub day: u8,
    /// Hour 0–23.
    pub hour: u8,
    /// Minute 0–59.
    pub minute: u8,
    /// Day of week, 0 = Sunday … 6 = Saturday.
    pub weekday: u8,
}

impl CivilTime {
    /// Minutes since local midnight.
    pub fn minute_of_day(&self) -> u16 {
        u16::from(self.hour) * 60 + u16::from(self.minute)
    }
}

/// A daily window such as `02:00-04:00` (it may wrap past midnight: `22:00-02:00`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyWindow {
    /// First minute of the day inside the window.
    pub start_min: u16,
    /// First minute of the day after the window.
    pub end_min: u16,
}

/// A five-field cron expression: minute hour day-of-month month day-of-week.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    source: String,
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl DailyWindow {
    /// Parses `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<DailyWindow, String> {
        let hm = |s: &str| -> Option<u16> {
            let (h, m) = s.trim().split_once(':')?;
            let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (a, b) = text.split_once('-').ok_or("expected HH:MM-HH:MM")?;
        let (start_min, end_min) = (hm(a).ok_or("bad start")?, hm(b).ok_or("bad end")?);
        Ok(DailyWindow { start_min, end_min })
    }

    /// Whether `t` falls inside the window.
    pub fn contains(&self, t: &CivilTime) -> bool {
        let m = t.minute_of_day();
        if self.start_min <= self.end_min {
            (self.start_min..self.end_min).contains(&m)
        } else {
            m >= self.start_min || m < self.end_min
        }
    }
}

impl CronExpr {
    /// Parses a five-field cron expression.
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        Ok(CronExpr {
            source: text.to_string(),
        })
    }

    /// Whether the expression fires at the minute `t`.
    pub fn matches(&self, t: &CivilTime) -> bool {
        let _ = t;
        todo!("schedule: cron matches")
    }
}

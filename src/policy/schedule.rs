//! Calendar rules in node-local civil time: cron expressions for scheduled moves and daily
//! windows for failback. Pure: the caller passes the civil time in.
//!
//! A [`CronExpr`] keeps each of its five fields as a bitset (`u64`, bit `n` set = value `n`
//! allowed), so [`CronExpr::matches`] is five bit tests. Errors are plain strings that name the
//! field and the offending value, e.g. `hour field "25": out of range 0-23`; the config layer
//! adds the file, line and field path.

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
///
/// Supported per field: `*`, numbers, lists `a,b`, ranges `a-b`, steps `*/n`, `a-b/n` and
/// `a/n` (= `a-max/n`), with a step `n` from 1 to the field's number of values (60 for
/// minutes, 24, 31, 12, and 8 for day-of-week; a larger step is refused, never wrapped);
/// month names `jan`..`dec` and day names `sun`..`sat` (any case); in the day-of-week field
/// both 0 and 7 mean Sunday. As in standard cron, when both day-of-month and
/// day-of-week are restricted (do not start with `*`), a day matching either one fires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CronExpr {
    /// The expression as written, fields separated by single spaces.
    source: String,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// Day-of-month was written as something other than `*…`.
    dom_restricted: bool,
    /// Day-of-week was written as something other than `*…`.
    dow_restricted: bool,
}

impl fmt::Display for CronExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl DailyWindow {
    /// Parses `HH:MM-HH:MM` (24-hour clock). The end is exclusive; an end earlier than the
    /// start wraps past midnight. A start equal to the end is refused: it is ambiguous (empty or
    /// the whole day), and neither is what a user means by a window.
    pub fn parse(text: &str) -> Result<DailyWindow, String> {
        let (start, end) = text
            .split_once('-')
            .ok_or_else(|| format!("window \"{text}\": expected HH:MM-HH:MM, e.g. 02:00-04:00"))?;
        let start_min = parse_clock(start.trim(), text)?;
        let end_min = parse_clock(end.trim(), text)?;
        if start_min == end_min {
            return Err(format!(
                "window \"{text}\": start equals end; give a window of at least one minute"
            ));
        }
        Ok(DailyWindow { start_min, end_min })
    }

    /// Whether `t` falls inside the window.
    pub fn contains(&self, t: &CivilTime) -> bool {
        let m = t.minute_of_day();
        if self.start_min < self.end_min {
            self.start_min <= m && m < self.end_min
        } else {
            m >= self.start_min || m < self.end_min
        }
    }
}

impl fmt::Display for DailyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}-{:02}:{:02}",
            self.start_min / 60,
            self.start_min % 60,
            self.end_min / 60,
            self.end_min % 60
        )
    }
}

/// Parses `HH:MM` into minutes since midnight.
fn parse_clock(part: &str, whole: &str) -> Result<u16, String> {
    let bad = || format!("window \"{whole}\": \"{part}\" is not a time HH:MM (00:00 to 23:59)");
    let (h, m) = part.split_once(':').ok_or_else(bad)?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// One cron field's rules.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTH_NAMES: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAY_NAMES: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: MONTH_NAMES,
    },
    // 7 is accepted as Sunday and folded onto bit 0 after parsing.
    Field {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: DAY_NAMES,
    },
];

impl Field {
    /// A single value: a number or, where the field has them, a name.
    fn value(&self, text: &str, item: &str) -> Result<u32, String> {
        let lower = text.to_ascii_lowercase();
        if let Some(i) = self.names.iter().position(|n| *n == lower) {
            // Names start at the field's minimum (jan = 1, sun = 0).
            return Ok(self.min + i as u32);
        }
        if !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && text.parse::<u32>().is_err()
        {
            // All digits but too long for any field: out of range, not "not a number".
            return Err(self.out_of_range(item));
        }
        let n: u32 = text.parse().map_err(|_| {
            if self.names.is_empty() {
                format!("{} field \"{item}\": \"{text}\" is not a number", self.name)
            } else {
                format!(
                    "{} field \"{item}\": \"{text}\" is not a number or a name ({}..{})",
                    self.name,
                    self.names[0],
                    self.names[self.names.len() - 1]
                )
            }
        })?;
        if n < self.min || n > self.max {
            return Err(self.out_of_range(item));
        }
        Ok(n)
    }

    /// The error for a value outside the field's range.
    fn out_of_range(&self, item: &str) -> String {
        format!(
            "{} field \"{item}\": out of range {}-{}",
            self.name, self.min, self.max
        )
    }

    /// The largest step the field takes: its number of values (`*/60` in the minute field
    /// fires at minute 0 only; anything larger means the same and is refused as a typo).
    fn max_step(&self) -> u32 {
        self.max - self.min + 1
    }

    /// Parses a whole field (a comma-separated list) into a bitset.
    fn parse(&self, text: &str) -> Result<u64, String> {
        let mut bits = 0u64;
        for item in text.split(',') {
            bits |= self.parse_item(item)?;
        }
        Ok(bits)
    }

    /// One list item: `*`, `n`, `a-b`, with an optional `/step`.
    fn parse_item(&self, item: &str) -> Result<u64, String> {
        if item.is_empty() {
            return Err(format!("{} field: empty list item", self.name));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
                if !digits {
                    return Err(format!(
                        "{} field \"{item}\": step \"{s}\" is not a number",
                        self.name
                    ));
                }
                // A step past the field's span (or past u32) is refused, never wrapped.
                let step = s
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=self.max_step()).contains(n))
                    .ok_or_else(|| {
                        format!(
                            "{} field \"{item}\": step {s} is outside 1-{}",
                            self.name,
                            self.max_step()
                        )
                    })?;
                (r, Some(step))
            }
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (self.min, self.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (self.value(a, item)?, self.value(b, item)?);
            if a > b {
                return Err(format!(
                    "{} field \"{item}\": range start {a} is after its end {b}",
                    self.name
                ));
            }
            (a, b)
        } else {
            let a = self.value(range, item)?;
            // `a/n` means from a to the field's maximum in steps of n.
            (a, if step.is_some() { self.max } else { a })
        };
        let step = step.unwrap_or(1);
        let mut bits = 0u64;
        // lo <= hi <= 63 here; the checked add ends the walk rather than wrap past u32::MAX
        // back into the range (which would set every bit).
        let mut v = lo;
        loop {
            bits |= 1u64 << v;
            match v.checked_add(step) {
                Some(next) if next <= hi => v = next,
                _ => break,
            }
        }
        Ok(bits)
    }
}

impl CronExpr {
    /// Parses a five-field cron expression.
    pub fn parse(text: &str) -> Result<CronExpr, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "cron \"{text}\": expected 5 fields (minute hour day-of-month month day-of-week), \
                 found {}",
                parts.len()
            ));
        }
        let mut bits = [0u64; 5];
        for (i, field) in FIELDS.iter().enumerate() {
            bits[i] = field.parse(parts[i])?;
        }
        // 7 is Sunday too.
        if bits[4] & (1 << 7) != 0 {
            bits[4] = (bits[4] & !(1 << 7)) | 1;
        }
        Ok(CronExpr {
            source: parts.join(" "),
            minutes: bits[0],
            hours: bits[1],
            days_of_month: bits[2],
            months: bits[3],
            days_of_week: bits[4],
            dom_restricted: !parts[2].starts_with('*'),
            dow_restricted: !parts[4].starts_with('*'),
        })
    }

    /// Whether the expression fires at the minute `t`.
    pub fn matches(&self, t: &CivilTime) -> bool {
        let has = |bits: u64, v: u8| v < 64 && bits & (1u64 << v) != 0;
        if !has(self.minutes, t.minute) || !has(self.hours, t.hour) || !has(self.months, t.month) {
            return false;
        }
        let dom = has(self.days_of_month, t.day);
        let dow = has(self.days_of_week, t.weekday);
        if self.dom_restricted && self.dow_restricted {
            dom || dow
        } else {
            dom && dow
        }
    }
}

/// (year, month, day) of `days` since 1970-01-01, proleptic Gregorian (Howard Hinnant's
/// days-to-civil algorithm): the event log's timestamps and the simulator's calendar.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    /// Day of week for a Gregorian date, 0 = Sunday (Sakamoto's method).
    fn weekday(year: i32, month: u8, day: u8) -> u8 {
        const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
        let y = if month < 3 { year - 1 } else { year };
        let w = (y + y / 4 - y / 100 + y / 400 + T[usize::from(month) - 1] + i32::from(day)) % 7;
        w as u8
    }

    /// Parses `YYYY-MM-DD HH:MM`.
    fn civil(text: &str) -> CivilTime {
        let nums: Vec<i32> = text
            .split(['-', ' ', ':'])
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().expect("number in test data"))
            .collect();
        assert_eq!(nums.len(), 5, "bad civil time {text:?}");
        let (year, month, day) = (nums[0], nums[1] as u8, nums[2] as u8);
        CivilTime {
            year,
            month,
            day,
            hour: nums[3] as u8,
            minute: nums[4] as u8,
            weekday: weekday(year, month, day),
        }
    }

    #[test]
    fn weekday_helper_is_right() {
        assert_eq!(weekday(2026, 11, 29), 0); // a Sunday
        assert_eq!(weekday(2000, 1, 1), 6); // a Saturday
    }

    /// Runs every case of `testdata/cron.txt`.
    #[test]
    fn cron_table() {
        let table = include_str!("testdata/cron.txt");
        let mut cases = 0;
        for (n, line) in table.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            assert_eq!(cols.len(), 3, "cron.txt:{}: expected 3 columns", n + 1);
            let (expr, when, expected) = (cols[0], cols[1], cols[2]);
            cases += 1;
            if let Some(want) = expected.strip_prefix("error:") {
                let err = CronExpr::parse(expr).expect_err(&format!("cron.txt:{}", n + 1));
                assert!(
                    err.contains(want.trim()),
                    "cron.txt:{}: error {err:?} lacks {want:?}",
                    n + 1
                );
                continue;
            }
            let cron = CronExpr::parse(expr)
                .unwrap_or_else(|e| panic!("cron.txt:{}: {expr:?}: {e}", n + 1));
            let want = match expected {
                "yes" => true,
                "no" => false,
                other => panic!(
                    "cron.txt:{}: expected yes, no or error:, got {other:?}",
                    n + 1
                ),
            };
            assert_eq!(
                cron.matches(&civil(when)),
                want,
                "cron.txt:{}: {expr} at {when}",
                n + 1
            );
        }
        assert!(cases > 20, "cron table looks truncated");
    }

    /// Steps that once overflowed `u32` (a panic in debug builds; in release `59/4294967295`
    /// wrapped to fire every minute) are refused with the field's range.
    #[test]
    fn cron_steps_are_checked_not_wrapped() {
        for (expr, want) in [
            (
                "1/4294967295 * * * *",
                "minute field \"1/4294967295\": step 4294967295 is outside 1-60",
            ),
            ("59/4294967295 * * * *", "step 4294967295 is outside 1-60"),
            ("*/4294967296 * * * *", "step 4294967296 is outside 1-60"),
            (
                "0 */25 * * *",
                "hour field \"*/25\": step 25 is outside 1-24",
            ),
            (
                "0 0 1-31/99999999999999999999 * *",
                "step 99999999999999999999 is outside 1-31",
            ),
            ("0 0 * * */-1", "step \"-1\" is not a number"),
            (
                "4294967295 * * * *",
                "minute field \"4294967295\": out of range 0-59",
            ),
            (
                "99999999999 * * * *",
                "minute field \"99999999999\": out of range 0-59",
            ),
        ] {
            let err = CronExpr::parse(expr).expect_err(expr);
            assert!(err.contains(want), "{expr}: {err:?} lacks {want:?}");
        }
        // The largest step allowed: from 59 it stays at 59, from * at 0.
        let cron = CronExpr::parse("59/60 * * * *").expect("valid");
        assert!(cron.matches(&civil("2026-01-01 10:59")));
        for minute in 0..59 {
            assert!(
                !cron.matches(&civil(&format!("2026-01-01 10:{minute:02}"))),
                "59/60 fired at minute {minute}"
            );
        }
        let cron = CronExpr::parse("*/60 * * * *").expect("valid");
        assert!(cron.matches(&civil("2026-01-01 10:00")));
        assert!(!cron.matches(&civil("2026-01-01 10:01")));
    }

    #[test]
    fn cron_display_normalises_spaces() {
        let c = CronExpr::parse("  0   2 * *  sun ").expect("valid");
        assert_eq!(c.to_string(), "0 2 * * sun");
    }

    #[test]
    fn window_parse_and_contains() {
        let w = DailyWindow::parse("02:00-04:00").expect("valid");
        assert_eq!(
            w,
            DailyWindow {
                start_min: 120,
                end_min: 240
            }
        );
        assert!(w.contains(&civil("2026-01-01 02:00")));
        assert!(w.contains(&civil("2026-01-01 03:59")));
        assert!(!w.contains(&civil("2026-01-01 04:00")));
        assert!(!w.contains(&civil("2026-01-01 01:59")));
        assert_eq!(w.to_string(), "02:00-04:00");
    }

    #[test]
    fn window_wraps_past_midnight() {
        let w = DailyWindow::parse("22:30-01:15").expect("valid");
        assert!(w.contains(&civil("2026-01-01 22:30")));
        assert!(w.contains(&civil("2026-01-01 23:59")));
        assert!(w.contains(&civil("2026-01-01 00:00")));
        assert!(w.contains(&civil("2026-01-01 01:14")));
        assert!(!w.contains(&civil("2026-01-01 01:15")));
        assert!(!w.contains(&civil("2026-01-01 12:00")));
    }

    #[test]
    fn window_errors() {
        for (text, want) in [
            ("02:00-02:00", "start equals end"),
            ("02:00", "expected HH:MM-HH:MM"),
            ("24:00-01:00", "\"24:00\" is not a time"),
            ("02:60-03:00", "\"02:60\" is not a time"),
            ("2-3", "\"2\" is not a time"),
            ("02:00-3:0", "\"3:0\" is not a time"),
        ] {
            let err = DailyWindow::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err:?} lacks {want:?}");
        }
    }
}

//! The pidfile of a resource process, `"<pid> <start time>\n"`, and the process start time it
//! is checked against (field 22 of `/proc/<pid>/stat`). A pid alone can be recycled; a pid with
//! the start time it had when we spawned it names one process for good. The application agent
//! writes and adopts through it; the watchdog kills through it when the daemon cannot.

use std::io;
use std::path::{Path, PathBuf};

/// Parses `"<pid> <start time>"`.
pub fn parse(text: &str) -> Option<(u32, u64)> {
    let mut it = text.split_whitespace();
    let pid: u32 = it.next()?.parse().ok()?;
    let start: u64 = it.next()?.parse().ok()?;
    (pid > 0 && it.next().is_none()).then_some((pid, start))
}

/// Reads and parses the pidfile at `path` (None if missing or malformed).
pub fn read(path: &Path) -> Option<(u32, u64)> {
    parse(&std::fs::read_to_string(path).ok()?)
}

/// Writes the pidfile atomically (a reader never sees half of it).
pub fn write(path: &Path, pid: u32, start: u64) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{pid} {start}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Field 22 of `/proc/<pid>/stat`: when the process started, in clock ticks since boot.
pub fn start_time(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected /proc/{pid}/stat"),
        )
    })
}

/// Field 22 of a stat line. The command name (field 2) may hold spaces and parentheses, so
/// fields are counted from the last `)`: the first word after it is field 3.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_counted_after_the_command_name() {
        // comm may contain ") " — fields are counted from the last ')'.
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 1000 10 18446744073709551615";
        assert_eq!(parse_start_time(line), Some(987654));
        let me = std::process::id();
        assert!(start_time(me).unwrap() > 0);
    }

    #[test]
    fn pidfiles() {
        assert_eq!(parse("123 456\n"), Some((123, 456)));
        assert_eq!(parse("123\n"), None);
        assert_eq!(parse("0 5\n"), None);
        assert_eq!(parse("1 2 3\n"), None);
        assert_eq!(parse("garbage"), None);
        let dir = std::env::temp_dir().join(format!("eterne-pidfile-{}", std::process::id()));
        write(&dir, 77, 88).unwrap();
        assert_eq!(read(&dir), Some((77, 88)));
        let _ = std::fs::remove_file(&dir);
    }
}

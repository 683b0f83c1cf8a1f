//! The target's half of the poison pill (`[fencing] method = "poison_pill"`; the format is in
//! `transport/disk/pill.rs`): a thread of the monitor reads this node's pill block every
//! `interval_ms` of the disk path and hands the first pill it has not acknowledged to the
//! monitor's loop, which stops everything and leaves ([`super::Monitor`]).
//!
//! It runs in the monitor, not the core, for the reason the monitor exists: a core that is
//! dead, wedged or paused would never read a pill, and a pill is sent to exactly such a node.
//! Reading blocks (a disk can stall); the thread keeps that away from the monitor's loop, which
//! must go on petting the watchdog and watching the core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::link::PillWatch;
use crate::transport::disk::pill::{unix_us, Ack, Block, Pill, PillDisk};

/// The reading thread and what it found.
pub struct PillWatcher {
    watch: PillWatch,
    found: Arc<Mutex<Option<Pill>>>,
    quit: Arc<AtomicBool>,
}

impl PillWatcher {
    /// Starts reading where `watch` says.
    pub fn start(watch: PillWatch) -> std::io::Result<PillWatcher> {
        let found = Arc::new(Mutex::new(None));
        let quit = Arc::new(AtomicBool::new(false));
        let (w, f, q) = (watch.clone(), found.clone(), quit.clone());
        std::thread::Builder::new()
            .name("pill-reader".into())
            .spawn(move || read_until_pill(&w, &f, &q))?;
        tracing::info!(device = %watch.place.device.display(), every_ms = watch.every_ms,
            "reading this node's poison pill block");
        Ok(PillWatcher { watch, found, quit })
    }

    /// What it watches.
    pub fn watch(&self) -> &PillWatch {
        &self.watch
    }

    /// A pill to obey, once.
    pub fn take(&self) -> Option<Pill> {
        self.found.lock().ok()?.take()
    }

    /// Writes the acknowledgement of `pill` (blocking: one write to the device).
    pub fn acknowledge(&self, pill: &Pill, stopped: bool) -> Result<(), String> {
        let disk = PillDisk::open(&self.watch.place).map_err(|e| e.to_string())?;
        disk.write_ack(&Ack {
            node: self.watch.me,
            stopped,
            nonce: pill.nonce,
            written_unix_us: unix_us(),
        })
        .map_err(|e| e.to_string())
    }
}

impl Drop for PillWatcher {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
    }
}

/// The thread: read every `every_ms` until a pill to obey is found (then hand it over and end)
/// or the watcher is dropped. Errors are logged when they change, never more often.
fn read_until_pill(w: &PillWatch, found: &Mutex<Option<Pill>>, quit: &AtomicBool) {
    let every = Duration::from_millis(w.every_ms.max(10));
    let mut disk: Option<PillDisk> = None;
    let mut said = String::new();
    let mut say = |what: String| {
        if what != said {
            if !what.is_empty() {
                tracing::warn!(device = %w.place.device.display(), "poison pill block: {what}");
            }
            said = what;
        }
    };
    while !quit.load(Ordering::Relaxed) {
        if disk.is_none() {
            match PillDisk::open(&w.place) {
                Ok(d) => disk = Some(d),
                Err(e) => say(format!("cannot read it yet: {e}")),
            }
        }
        if let Some(d) = &disk {
            match (d.read_pill(w.me), d.read_ack(w.me)) {
                (Ok(Block::Valid(pill)), ack) => {
                    let acked = matches!(ack, Ok(Block::Valid(a)) if a.nonce == pill.nonce);
                    if !acked && pill.stale(unix_us()) {
                        // The fencer stopped waiting long ago (a node powered on days later).
                        tracing::warn!(
                            from = pill.from,
                            nonce = pill.nonce,
                            "a poison pill past twice its bound: acknowledged, not obeyed"
                        );
                        let _ = d.write_ack(&Ack {
                            node: w.me,
                            stopped: false,
                            nonce: pill.nonce,
                            written_unix_us: unix_us(),
                        });
                    } else if !acked {
                        if let Ok(mut f) = found.lock() {
                            *f = Some(pill);
                        }
                        return;
                    }
                    say(String::new());
                }
                (Ok(Block::Damaged(why)), _) => say(format!("damaged ({why}); ignored")),
                (Err(e), _) => {
                    say(format!("read failed: {e}"));
                    disk = None;
                }
                (Ok(Block::Blank), _) => say(String::new()),
            }
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::FenceActionConfig;
    use crate::transport::disk::pill::PillPlace;
    use crate::transport::disk::DiskPath;

    #[test]
    fn the_reader_hands_over_a_fresh_pill_and_acknowledges_a_stale_one_unobeyed() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let device = dir.path().join("disk");
        std::fs::File::create(&device).expect("the device file");
        DiskPath::format(&device, "c", 2, 4096).expect("format");
        let place = PillPlace {
            device,
            cluster: "c".into(),
            nodes: 2,
            slot_bytes: 4096,
        };
        let disk = PillDisk::open(&place).expect("open");
        let stale = Pill {
            target: 1,
            from: 0,
            bound_ms: 1000,
            nonce: 3,
            written_unix_us: unix_us() - 10_000_000,
        };
        disk.write_pill(&stale).expect("write");
        let watch = PillWatch {
            place,
            me: 1,
            every_ms: 10,
            action: FenceActionConfig::Off,
        };
        let w = PillWatcher::start(watch).expect("start");
        let wait = |what: &str, f: &dyn Fn() -> bool| {
            let t0 = std::time::Instant::now();
            while !f() {
                assert!(t0.elapsed() < Duration::from_secs(5), "timed out: {what}");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        wait(
            "the stale pill acknowledged",
            &|| matches!(disk.read_ack(1), Ok(Block::Valid(a)) if a.nonce == 3 && !a.stopped),
        );
        assert_eq!(w.take(), None, "a stale pill is not obeyed");
        let fresh = Pill {
            nonce: 5,
            written_unix_us: unix_us(),
            ..stale
        };
        disk.write_pill(&fresh).expect("write");
        let got = std::sync::Mutex::new(None);
        wait("the fresh pill handed over", &|| {
            let p = w.take();
            if p.is_some() {
                *got.lock().unwrap() = p;
            }
            got.lock().unwrap().is_some()
        });
        assert_eq!(*got.lock().unwrap(), Some(fresh));
        w.acknowledge(&fresh, true).expect("ack");
        assert!(matches!(disk.read_ack(1), Ok(Block::Valid(a)) if a.nonce == 5 && a.stopped));
    }
}

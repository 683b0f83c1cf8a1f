//! The `scsi_pr` backend of `disk_lock`: SCSI-3 persistent reservations on a real LUN, through
//! `sg_persist` (Debian's `sg3-utils`).
//!
//! - **Key.** Each activation registers its own key, derived from the node and the epoch
//!   ([`key_for`]): `0x4554` ("ET") in the top 16 bits, the node's slot in the next 16, the
//!   low 32 bits of the epoch in the rest. A key is never 0 (0 means "unregister"). Another
//!   node's key tells its node and epoch, so an older activation is never allowed to preempt a
//!   newer one.
//! - **start(epoch)**: register our key (`REGISTER AND IGNORE EXISTING KEY`), read the
//!   reservation; none → `RESERVE` type 5 (*Write Exclusive – Registrants Only*); held by our
//!   key → done; held by a key of a newer epoch → refused; held by another key →
//!   `PREEMPT AND ABORT` it (the old holder's queued writes are aborted and its registration
//!   removed). Then every other registered key is preempted too (with type 5, registrants
//!   may write; only we may stay registered), and the reservation is read back to confirm.
//!   A start that fails after registering unregisters again, for the same reason.
//! - **stop**: `RELEASE` (type 5) if our node holds the reservation, then unregister
//!   (`REGISTER AND IGNORE EXISTING KEY` with service action key 0).
//! - **monitor/probe**: read the reservation: held by our key with type 5 → `Ok`.
//!
//! # What could not be tested here, and why
//!
//! The machine this was written on has no SCSI device with persistent reservation support:
//! no SAN LUN, no iSCSI target, and no `scsi_debug` or `target_core` kernel modules to make
//! one (the kernel is fixed and loads no modules). So nothing here has been run against a
//! device. What is tested: the `sg_persist` command lines for every step
//! ([`Cmd::args`]), the parsing of its `--read-reservation` and `--read-keys` output (taken
//! from sg3_utils' source and documentation, [`parse_reservation`], [`parse_keys`]), the key
//! encoding, and the decision logic ([`plan`]). Still to check on a real LUN: that the
//! target accepts type 5 with `REGISTER AND IGNORE` (some arrays want `--param-aptpl`), the
//! exit statuses on a reservation conflict (sg3_utils uses 24), and preempting a holder that
//! is still writing.

use std::time::Duration;

/// The PR type we reserve with: Write Exclusive – Registrants Only.
pub const PR_TYPE: u8 = 5;
/// The tag in the top 16 bits of our keys ("ET").
const KEY_TAG: u64 = 0x4554;
/// How long one `sg_persist` may run.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Our reservation key for `node` at `epoch`.
pub fn key_for(node: u16, epoch: u64) -> u64 {
    (KEY_TAG << 48) | (u64::from(node) << 32) | (epoch & 0xffff_ffff)
}

/// The node and epoch (low 32 bits) of a key of ours, `None` for a key of another program.
pub fn decode_key(key: u64) -> Option<(u16, u64)> {
    (key >> 48 == KEY_TAG).then_some((((key >> 32) & 0xffff) as u16, key & 0xffff_ffff))
}

/// One `sg_persist` invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// Register `key`, replacing any key this initiator had.
    RegisterIgnore(u64),
    /// Reserve with `key`, type 5.
    Reserve(u64),
    /// Preempt `victim`'s reservation or registration, aborting its tasks.
    PreemptAbort {
        /// Our key.
        key: u64,
        /// The key to remove.
        victim: u64,
    },
    /// Release our reservation (type 5).
    Release(u64),
    /// Unregister whatever key this initiator has (`REGISTER AND IGNORE EXISTING KEY` with a
    /// service action key of 0).
    Unregister,
    /// Read the reservation.
    ReadReservation,
    /// Read the registered keys.
    ReadKeys,
}

impl Cmd {
    /// The arguments of `sg_persist` for this command on `device`.
    pub fn args(&self, device: &str) -> Vec<String> {
        let hex = |k: u64| format!("0x{k:x}");
        let ty = format!("--prout-type={PR_TYPE}");
        let mut a: Vec<String> = vec!["--no-inquiry".into()];
        match self {
            Cmd::RegisterIgnore(k) => {
                a.extend(["--out".into(), "--register-ignore".into()]);
                a.push(format!("--param-sark={}", hex(*k)));
            }
            Cmd::Reserve(k) => {
                a.extend(["--out".into(), "--reserve".into()]);
                a.push(format!("--param-rk={}", hex(*k)));
                a.push(ty);
            }
            Cmd::PreemptAbort { key, victim } => {
                a.extend(["--out".into(), "--preempt-abort".into()]);
                a.push(format!("--param-rk={}", hex(*key)));
                a.push(format!("--param-sark={}", hex(*victim)));
                a.push(ty);
            }
            Cmd::Release(k) => {
                a.extend(["--out".into(), "--release".into()]);
                a.push(format!("--param-rk={}", hex(*k)));
                a.push(ty);
            }
            Cmd::Unregister => {
                a.extend(["--out".into(), "--register-ignore".into()]);
                a.push("--param-sark=0x0".into());
            }
            Cmd::ReadReservation => a.extend(["--in".into(), "--read-reservation".into()]),
            Cmd::ReadKeys => a.extend(["--in".into(), "--read-keys".into()]),
        }
        a.push(device.to_string());
        a
    }
}

/// A reservation as `sg_persist --read-reservation` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The holder's key.
    pub key: u64,
    /// The type as printed, e.g. `"Write Exclusive, registrants only"`.
    pub kind: String,
}

impl Reservation {
    /// Whether the type is ours (type 5).
    pub fn is_type5(&self) -> bool {
        self.kind.to_ascii_lowercase().trim() == "write exclusive, registrants only"
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    let s = s.trim();
    let h = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u64::from_str_radix(h, 16).ok()
}

/// Parses `sg_persist --in --read-reservation` output: `Ok(None)` when no reservation is held,
/// `Err` when the output is not understood (never taken for "free").
pub fn parse_reservation(out: &str) -> Result<Option<Reservation>, String> {
    if out.contains("NO reservation held") {
        return Ok(None);
    }
    if !out.contains("Reservation follows") {
        return Err(format!("unexpected sg_persist output: {:?}", out.trim()));
    }
    let key = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Key=").and_then(parse_hex))
        .ok_or_else(|| format!("no Key= in sg_persist output: {:?}", out.trim()))?;
    let kind = out
        .lines()
        .find_map(|l| l.split_once("type:").map(|(_, t)| t.trim().to_string()))
        .ok_or_else(|| format!("no type: in sg_persist output: {:?}", out.trim()))?;
    Ok(Some(Reservation { key, kind }))
}

/// Parses `sg_persist --in --read-keys` output into the registered keys.
pub fn parse_keys(out: &str) -> Result<Vec<u64>, String> {
    if out.contains("there are NO registered reservation keys") {
        return Ok(Vec::new());
    }
    let mut lines = out.lines();
    if !lines.any(|l| l.contains("registered reservation key")) {
        return Err(format!("unexpected sg_persist output: {:?}", out.trim()));
    }
    Ok(lines.filter_map(parse_hex).collect())
}

/// What `start` does after reading the reservation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nobody holds it: reserve.
    Reserve,
    /// We hold it already.
    Held,
    /// Another key holds it: preempt and abort it.
    Preempt(u64),
    /// A newer activation holds it: refuse (the reason says who).
    Refuse(String),
}

/// The decision of `start` for our `key` given the current reservation.
pub fn plan(key: u64, current: Option<&Reservation>) -> Step {
    let Some(r) = current else {
        return Step::Reserve;
    };
    if r.key == key {
        return Step::Held;
    }
    let ours = decode_key(key).map(|(_, e)| e).unwrap_or(0);
    match decode_key(r.key) {
        Some((node, epoch)) if epoch > ours => Step::Refuse(format!(
            "reserved by node slot {node} at epoch {epoch} (key 0x{:x}), newer than ours \
             ({ours}): an older activation never takes the disk back",
            r.key
        )),
        _ => Step::Preempt(r.key),
    }
}

/// Runs one command, bounded by [`COMMAND_TIMEOUT`]; its standard output on success.
pub async fn run(program: &str, cmd: &Cmd, device: &str) -> Result<String, String> {
    let args = cmd.args(device);
    let mut c = tokio::process::Command::new(program);
    c.args(&args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = match tokio::time::timeout(COMMAND_TIMEOUT, c.output()).await {
        Err(_) => {
            return Err(format!(
                "{program} {} gave no answer within {} s",
                args.join(" "),
                COMMAND_TIMEOUT.as_secs()
            ))
        }
        Ok(Err(e)) => return Err(format!("cannot run {program}: {e}")),
        Ok(Ok(o)) => o,
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(format!(
        "{program} {} failed ({}): {}",
        args.join(" "),
        out.status,
        stderr.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `sg_persist -n -r` with a reservation held, as sg3_utils prints it.
    const HELD: &str = "  PR generation=0x3, Reservation follows:\n    Key=0x4554000100000007\n      scope: LU_SCOPE,  type: Write Exclusive, registrants only\n";
    /// With none held.
    const FREE: &str = "  PR generation=0x0, there is NO reservation held\n";
    /// `sg_persist -n -k` with two keys.
    const KEYS: &str = "  PR generation=0x4, 2 registered reservation keys follow:\n    0x4554000100000007\n    0x123abc\n";
    const NO_KEYS: &str = "  PR generation=0x0, there are NO registered reservation keys\n";

    #[test]
    fn keys_carry_node_and_epoch() {
        let k = key_for(1, 7);
        assert_eq!(k, 0x4554_0001_0000_0007);
        assert_eq!(decode_key(k), Some((1, 7)));
        assert_eq!(decode_key(0x123abc), None);
        assert_ne!(key_for(0, 0), 0);
        assert_eq!(decode_key(key_for(3, 0x1_0000_0005)), Some((3, 5)));
    }

    #[test]
    fn command_lines() {
        let d = "/dev/sdb";
        let s = |c: Cmd| c.args(d).join(" ");
        assert_eq!(
            s(Cmd::RegisterIgnore(0xab)),
            "--no-inquiry --out --register-ignore --param-sark=0xab /dev/sdb"
        );
        assert_eq!(
            s(Cmd::Reserve(0xab)),
            "--no-inquiry --out --reserve --param-rk=0xab --prout-type=5 /dev/sdb"
        );
        assert_eq!(
            s(Cmd::PreemptAbort {
                key: 0xab,
                victim: 0xcd
            }),
            "--no-inquiry --out --preempt-abort --param-rk=0xab --param-sark=0xcd \
             --prout-type=5 /dev/sdb"
        );
        assert_eq!(
            s(Cmd::Release(0xab)),
            "--no-inquiry --out --release --param-rk=0xab --prout-type=5 /dev/sdb"
        );
        assert_eq!(
            s(Cmd::Unregister),
            "--no-inquiry --out --register-ignore --param-sark=0x0 /dev/sdb"
        );
        assert_eq!(
            s(Cmd::ReadReservation),
            "--no-inquiry --in --read-reservation /dev/sdb"
        );
        assert_eq!(s(Cmd::ReadKeys), "--no-inquiry --in --read-keys /dev/sdb");
    }

    #[test]
    fn read_reservation_output_parses() {
        let r = parse_reservation(HELD).unwrap().unwrap();
        assert_eq!(r.key, 0x4554_0001_0000_0007);
        assert!(r.is_type5());
        assert_eq!(parse_reservation(FREE).unwrap(), None);
        assert!(parse_reservation("sg_persist: error opening file").is_err());
        assert!(parse_reservation("  PR generation=0x3, Reservation follows:\n").is_err());
        let we = "  PR generation=0x3, Reservation follows:\n    Key=0x1\n      scope: LU_SCOPE,  type: Write Exclusive\n";
        assert!(!parse_reservation(we).unwrap().unwrap().is_type5());
    }

    #[test]
    fn read_keys_output_parses() {
        assert_eq!(
            parse_keys(KEYS).unwrap(),
            vec![0x4554_0001_0000_0007, 0x123abc]
        );
        assert_eq!(parse_keys(NO_KEYS).unwrap(), Vec::<u64>::new());
        assert!(parse_keys("garbage").is_err());
    }

    #[test]
    fn start_decides_by_epoch() {
        let me = key_for(0, 10);
        let held = |k: u64| Reservation {
            key: k,
            kind: "Write Exclusive, registrants only".into(),
        };
        assert_eq!(plan(me, None), Step::Reserve);
        assert_eq!(plan(me, Some(&held(me))), Step::Held);
        let older = key_for(1, 9);
        assert_eq!(plan(me, Some(&held(older))), Step::Preempt(older));
        assert!(
            matches!(plan(me, Some(&held(key_for(1, 11)))), Step::Refuse(r) if r.contains("epoch 11"))
        );
        // A key of another program is preempted.
        assert_eq!(plan(me, Some(&held(0x123abc))), Step::Preempt(0x123abc));
    }
}

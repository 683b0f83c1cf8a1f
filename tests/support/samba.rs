//! A Samba of the test's own (root only): an smb.conf whose every directory (private, lock,
//! state, cache, pid, ncalrpc, the log) lives under a scratch directory, registry shares on,
//! guests mapped to `nobody`; and bounded runs of `smbd`, `smbcontrol`, `net` and
//! `smbclient`, in a network namespace where one is named. Nothing of the host's Samba is
//! read or written: every command gets `-s` with the test's smb.conf.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Every Samba program the tests run.
pub const PROGRAMS: &[&str] = &["smbd", "net", "smbcontrol", "smbclient", "smbstatus"];

/// The bound of one command.
pub const COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// Why the Samba tests cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    for p in PROGRAMS {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|d| Path::new(d).join(p).exists());
        if !found {
            return Some(format!(
                "`{p}` not found (bash scripts/setup.sh installs samba and smbclient)"
            ));
        }
    }
    None
}

/// How an smbd of the tests listens.
#[derive(Clone, Debug)]
pub enum Listen {
    /// On this address only (`interfaces` + `bind interfaces only = yes`).
    Only(String),
    /// On every address its namespace has, also one that arrives later (a floating address).
    Any,
}

/// The text of an smb.conf keeping everything under `dir`, as `netbios` name, listening as
/// `listen`; `registry` puts `registry shares = yes` in `[global]`.
pub fn smb_conf(dir: &Path, netbios: &str, listen: &Listen, registry: bool) -> String {
    let d = dir.display();
    let mut lines = vec![
        "# A test's own Samba: nothing under /var or /etc.".to_string(),
        "[global]".into(),
        format!("netbios name = {netbios}"),
        "workgroup = ETERNE".into(),
        "server role = standalone server".into(),
    ];
    match listen {
        Listen::Only(addr) => {
            lines.push(format!("interfaces = {addr}"));
            lines.push("bind interfaces only = yes".into());
        }
        Listen::Any => lines.push("bind interfaces only = no".into()),
    }
    if registry {
        lines.push("registry shares = yes".into());
    }
    for (key, sub) in [
        ("private dir", "private"),
        ("lock directory", "lock"),
        ("state directory", "state"),
        ("cache directory", "cache"),
        ("pid directory", "pid"),
        ("ncalrpc dir", "ncalrpc"),
        ("log file", "log.smbd"),
    ] {
        lines.push(format!("{key} = {d}/{sub}"));
    }
    lines.extend(
        [
            "max log size = 0",
            "map to guest = Bad User",
            "guest account = nobody",
            "disable netbios = yes",
            "smb ports = 445",
            "load printers = no",
            "printing = bsd",
            "printcap name = /dev/null",
            "disable spoolss = yes",
        ]
        .map(String::from),
    );
    let mut text = lines.join("\n   ");
    text.push('\n');
    text
}

/// Writes `smb.conf` into `dir` with its directories, as [`smb_conf`]; its path.
pub fn write_smb_conf(dir: &Path, netbios: &str, listen: &Listen, registry: bool) -> PathBuf {
    for sub in ["private", "lock", "state", "cache", "pid", "ncalrpc"] {
        std::fs::create_dir_all(dir.join(sub)).expect("a Samba directory");
    }
    let conf = dir.join("smb.conf");
    std::fs::write(&conf, smb_conf(dir, netbios, listen, registry)).expect("smb.conf");
    conf
}

/// How a bounded command ended: whether it succeeded, and stdout with stderr.
pub fn run(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (false, format!("{}: {e}", args.join(" "))),
    };
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        use std::io::Write as _;
        let _ = w.write_all(text.as_bytes());
    }
    // The pipes are read on threads so that a chatty command never blocks on a full pipe.
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = read(child.stdout.take().map(|r| Box::new(r) as _));
    let err = read(child.stderr.take().map(|r| Box::new(r) as _));
    let until = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let text = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    match status {
        Some(st) => (st.success(), text),
        None => (false, format!("{}: timed out\n{text}", args.join(" "))),
    }
}

/// `args` run inside network namespace `ns`.
pub fn in_ns(ns: &str, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend(args);
    run(&full, stdin)
}

/// `smbclient //ADDR/SHARE -N -c CMDS` from namespace `ns`, as a guest.
pub fn smbclient(ns: &str, addr: &str, share: &str, cmds: &str) -> (bool, String) {
    let unc = format!("//{addr}/{share}");
    in_ns(ns, &["smbclient", &unc, "-N", "-c", cmds], None)
}

/// Whether the smbd of `conf` answers a ping.
pub fn smbd_answers(conf: &Path) -> bool {
    run(
        &["smbcontrol", "-s", &conf.to_string_lossy(), "smbd", "ping"],
        None,
    )
    .0
}

/// `net conf -s CONF args…`.
pub fn net_conf(conf: &Path, args: &[&str]) -> (bool, String) {
    let conf = conf.to_string_lossy();
    let mut full = vec!["net", "conf", "-s", &conf];
    full.extend(args);
    run(&full, None)
}

/// Whether the registry of `conf` has share `name`.
pub fn registry_has(conf: &Path, name: &str) -> bool {
    net_conf(conf, &["showshare", name]).0
}

/// Starts smbd with `conf` in namespace `ns` and waits (bounded) until it answers a ping and
/// lists its shares on `addr` to a guest. Err with smbd's log when it does not.
pub fn start_smbd(ns: &str, conf: &Path, addr: &str) -> Result<(), String> {
    let c = conf.to_string_lossy();
    let (ok, out) = in_ns(ns, &["smbd", "-D", "-s", &c], None);
    if !ok {
        return Err(format!("smbd -D: {out}"));
    }
    let unc = format!("//{addr}");
    for _ in 0..200 {
        if smbd_answers(conf) && in_ns(ns, &["smbclient", "-L", &unc, "-N"], None).0 {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = conf.with_file_name("log.smbd");
    Err(format!(
        "smbd of {c} does not answer on {addr}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    ))
}

/// Kills every process in namespace `ns` (its smbd and whatever it forked) and waits,
/// bounded, until none is left.
pub fn kill_all_in(ns: &str) {
    for _ in 0..100 {
        let (_, pids) = run(&["ip", "netns", "pids", ns], None);
        let pids: Vec<i32> = pids
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for p in pids {
            // SAFETY: kill of a pid that `ip netns pids` listed in the test's namespace.
            unsafe {
                libc::kill(p, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A network namespace `name` with address `addr`/32 on its `lo`, a scratch directory
/// under `/tmp/share-…`, and what runs inside: all killed and deleted in `Drop`, also when a
/// test panics.
pub struct SambaNs {
    /// The namespace.
    pub ns: String,
    /// Its address.
    pub addr: String,
    /// The scratch directory (Samba's directories, the shared directories).
    pub dir: PathBuf,
}

impl SambaNs {
    /// Creates namespace `name` (an earlier one of that name is deleted first) and the
    /// scratch directory `/tmp/share-<name>` (world-traversable: guests are `nobody`).
    pub fn new(name: &str, addr: &str) -> SambaNs {
        let _ = run(&["ip", "netns", "del", name], None);
        let dir = PathBuf::from(format!("/tmp/share-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let me = SambaNs {
            ns: name.to_string(),
            addr: addr.to_string(),
            dir,
        };
        for args in [
            vec!["ip", "netns", "add", name],
            vec!["ip", "-n", name, "link", "set", "lo", "up"],
            vec![
                "ip",
                "-n",
                name,
                "addr",
                "add",
                &format!("{addr}/32"),
                "dev",
                "lo",
            ],
        ] {
            let (ok, out) = run(&args, None);
            assert!(ok, "{}: {out}", args.join(" "));
        }
        me
    }
}

impl Drop for SambaNs {
    fn drop(&mut self) {
        kill_all_in(&self.ns);
        for _ in 0..20 {
            if run(&["ip", "netns", "del", &self.ns], None).0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

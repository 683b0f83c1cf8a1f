//! The `share` agent: an SMB share served by this node's Samba, defined in Samba's registry
//! while the resource is active here and removed when it stops (design.md §7).
//!
//! # Parameters
//!
//! | parameter | meaning |
//! |---|---|
//! | `name` | Required. The share's name, as clients map it (`\\server\NAME`): up to 80 characters, none of `\ / [ ] : \| < > + = ; , * ? " % #`, not beginning with `-` or a space, and not a section Samba reserves (`global`, `homes`, `printers`, `print$`, `IPC$`). |
//! | `path` | Required. The absolute directory shared, usually on the group's `filesystem` (then `depends_on` it). No `%` variables: the agent checks the directory itself. |
//! | `protocol` | `"smb"` (default). `"nfs"` is refused: NFS exports are not built yet (see below). |
//! | `comment` | The share's comment, shown in clients' share lists. |
//! | `read_only` | `true` or `false` (default): Samba's `read only`. |
//! | `guest_ok` | `true` or `false` (default): Samba's `guest ok`, connections without a password (as the `guest account`, `nobody` by default). |
//! | `valid_users` | Samba's `valid users`: who may connect, e.g. `"alice, @staff"`. Default: everyone Samba authenticates. |
//! | `options` | Further share parameters, `;`-separated: `"browseable = no; create mask = 0640"` (`;` because smb.conf itself reads `;` as a comment, so no value holds one). Parameters the agent's own ones set (`path`, `read only`, `writeable`, `guest ok`, `public`, …) are refused here; a name Samba does not know fails the start as not configured. |
//! | `smb_conf` | The smb.conf of the smbd that serves the share. Default `/etc/samba/smb.conf`. It must enable registry shares (below). |
//!
//! # How it works
//!
//! Samba keeps shares in two places: smb.conf, which the cluster must not edit (it is the
//! same file on every node, written by the operator or config management), and its
//! registry, a database per node that `net conf` writes and smbd reads. The share lives in
//! the registry of the node that runs it, and only there: the node that stops it deletes it.
//! smb.conf must say so in its `[global]` section: `registry shares = yes` (or `include =
//! registry`, or `config backend = registry`). smbd itself runs on every node, outside the
//! cluster (`systemctl enable --now smbd`): one smbd serves the shares of every group the
//! node runs, and must answer on the group's floating address (the default `bind interfaces
//! only = no` does; with `bind interfaces only = yes`, list the floating address in
//! `interfaces`).
//!
//! - `start`: smbd must be running (`smbcontrol smbd ping`): a share nobody can reach is not
//!   started, and that is a soft failure (smbd may be restarting). Then the share's section
//!   is written whole, in one registry transaction (`net conf import` of a file in the run
//!   dir holding only `[NAME]`): a share already defined is replaced, so a start of what
//!   runs is harmless and a changed config is applied, and no client ever sees it half
//!   written. Then `smbcontrol smbd reload-config`, and `net conf showshare` must show the
//!   share with our path. No `smb.conf`, no `net`, or no directory at `path` is a hard failure
//!   (this node cannot serve it; another may); an option Samba refuses is fatal (wrong on
//!   every node).
//! - `stop`: `net conf delshare NAME` (a share that is not there is stopped), then
//!   `smbcontrol smbd reload-config` and `smbcontrol smbd close-share NAME`, which cuts off
//!   the clients still connected to it here (they reconnect to the floating address and
//!   reach the new node). An smbd that is not running has nothing to cut off. A registry
//!   that cannot be written, or a running smbd that cannot be told, fails the stop.
//! - `monitor(Quick)`: the registry has the share (else `NotRunning`) with our path, the path
//!   is a directory, and smbd answers a ping.
//! - `monitor(Deep)`: the quick check, then the registry still holds our `comment`,
//!   `read only`, `guest ok` and `valid users` (someone's `net conf setparm` would otherwise
//!   linger until the next start), and the directory can be read. The names of `options`
//!   are not compared: Samba stores a synonym under its own spelling.
//! - `probe`: the share is in this node's registry → `Ok` (adopted: the monitor watches it,
//!   the next start rewrites it). Without `net` or `smb_conf` nothing of it can be here:
//!   `NotRunning`.
//! - `validate`: `net` and `smbcontrol` are installed, `smb_conf` exists and enables registry
//!   shares (the error says which line to add; files it includes are not read, so the line
//!   must be in that file), and `path` is a directory.
//! - Hard stop (the monitor process, when the core cannot stop in time): `net conf
//!   delshare` then `close-share` in one `/bin/sh` run, bounded; a share already gone, or a
//!   Samba not installed, is stopped. No reload: smbd reads a registry share at each
//!   connection, so a deleted one is refused at once (only its share lists wait for the
//!   next reload).
//!
//! Each `net conf` opens smb.conf and the registry, about a tenth of a second, so a stop
//! takes two or three tenths: more than the default `[timing] stop_budget_ms` (60 ms). On a
//! lease loss the core then runs out of budget and the monitor process stops the share hard
//! (bounded by the time left, at least half a second). A group with a share is better given
//! a budget of 300 ms or more (which needs a longer `lease_ms`, docs/config.md).
//!
//! Every command runs with a clean environment (`PATH` and `LANG=C`), stdin from
//! `/dev/null`, in a session of its own (see [`super::captured`]), each bounded by the
//! time left of its operation (nine tenths of the operation's timeout, so the agent says
//! what hung before the caller gives up) and at most [`COMMAND_MAX`].
//!
//! # NFS
//!
//! `protocol = "nfs"` is refused at config check. An NFS export needs the kernel's NFS
//! server (nfsd), and the machine this agent was written and tested on has none, so an NFS
//! half could not be tried against anything real. Until it exists, use `type = "ocf"` with
//! `params.type = "exportfs"` (Debian's resource-agents).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

mod conf;

use self::conf::{
    invalid_param, no_such_share, parse_options, parse_showshare, registry_enabled,
    share_name_problem, smbd_absent, value_problem, without_chatter, Registry, Section,
};
use super::captured::{last_words, prepare_child, run_captured};
use super::process::find_program;
use super::{known_params, lookup, param_err};
use super::{Agent, AgentContext, AgentError, Depth, HardStop, Report};
use crate::policy::group::Outcome;
use crate::policy::spec::ResourceSpec;

/// Every parameter the agent knows.
pub const PARAMS: &[&str] = &[
    "name",
    "path",
    "protocol",
    "comment",
    "read_only",
    "guest_ok",
    "valid_users",
    "options",
    "smb_conf",
];
/// Where Samba's configuration is, unless `smb_conf` says otherwise.
pub const DEFAULT_SMB_CONF: &str = "/etc/samba/smb.conf";
/// The longest any one Samba command may run.
pub const COMMAND_MAX: Duration = Duration::from_secs(10);
/// `PATH` for Samba's commands.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The hard stop's script: `$1` the smb.conf, `$2` the share. A failed delete is forgiven
/// when the share is gone (or Samba is not installed: then nothing of it is here). No
/// reload: smbd reads a registry share at each connection, so a deleted one is refused at
/// once, and the reload (the share lists) is not worth the time of a hard stop.
const HARD_STOP_SH: &str = "net conf -s \"$1\" delshare \"$2\" >/dev/null 2>&1 \
     || ! net conf -s \"$1\" showshare \"$2\" >/dev/null 2>&1 || exit 1; \
     smbcontrol -s \"$1\" smbd close-share \"$2\" >/dev/null 2>&1; exit 0";

/// The `share` agent. See the module documentation for parameters and behaviour.
#[derive(Debug)]
pub struct Share {
    /// The resource's name.
    name: String,
    /// The section written to the registry: `[share]`, path, comment, flags, options.
    wanted: Section,
    /// `path`.
    path: PathBuf,
    /// `smb_conf`.
    smb_conf: PathBuf,
    /// Where the section is written for `net conf import`.
    run_dir: PathBuf,
    start_ms: u32,
    stop_ms: u32,
    quick_ms: u32,
    deep_ms: u32,
}

/// Why a command gave no answer to read.
#[derive(Debug)]
enum RunError {
    /// The program is not installed here.
    Missing(String),
    /// It could not be run, or did not finish in time.
    Failed(String),
}

impl RunError {
    fn text(self) -> String {
        match self {
            RunError::Missing(s) | RunError::Failed(s) => s,
        }
    }
}

/// A finished command: its exit code (`None`: killed by a signal), its stdout, and stdout
/// with stderr, Samba's chatter left out.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    all: String,
}

/// The failure of one step of an operation, with its severity.
type Step<T> = Result<T, (Outcome, String)>;

fn soft(reason: String) -> (Outcome, String) {
    (Outcome::Failed, reason)
}

fn hard(reason: String) -> (Outcome, String) {
    (Outcome::FailedHard, reason)
}

/// A boolean parameter.
fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `/srv/data/` → `/srv/data`; `None` unless absolute and free of `.`/`..` parts, `%`, line
/// breaks and NUL.
fn normalize_path(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains(['%', '\n', '\r', '\0']) {
        return None;
    }
    if p.split('/').any(|part| part == "." || part == "..") {
        return None;
    }
    let t = p.trim_end_matches('/');
    Some(if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    })
}

/// The instant `ms` from now, less a tenth: the agent's own deadline inside the caller's.
fn deadline(ms: u32) -> Instant {
    Instant::now() + Duration::from_millis(u64::from(ms.max(10)) * 9 / 10)
}

impl Share {
    /// Checks the parameters (syntax only).
    pub fn new(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Self, AgentError> {
        known_params(spec, "a share", PARAMS)?;
        let err = |param: &str, problem: String| param_err(&spec.name, param, problem);
        match lookup(spec, "protocol").map(|p| p.trim().to_ascii_lowercase()) {
            None => {}
            Some(p) if p == "smb" => {}
            Some(p) if p == "nfs" => {
                return Err(err(
                    "protocol",
                    "NFS exports are not supported yet: they need the kernel's NFS server, \
                     which the machine this agent was built on has not, so that half was \
                     never tried; use type = \"ocf\" with params.type = \"exportfs\" \
                     meanwhile, or protocol = \"smb\""
                        .to_string(),
                ))
            }
            Some(p) => {
                return Err(err(
                    "protocol",
                    format!("{p:?} is not a share protocol; use \"smb\""),
                ))
            }
        }
        let share = match lookup(spec, "name") {
            None => {
                return Err(err(
                    "name",
                    "is missing; give the share's name as clients map it, e.g. name = \"data\""
                        .to_string(),
                ))
            }
            Some(n) => match share_name_problem(n) {
                None => n.to_string(),
                Some(p) => {
                    return Err(err(
                        "name",
                        format!("{n:?} is not an SMB share name: it {p}"),
                    ))
                }
            },
        };
        let path =
            match lookup(spec, "path") {
                None => return Err(err(
                    "path",
                    "is missing; give the absolute directory to share, e.g. path = \"/srv/data\""
                        .to_string(),
                )),
                Some(p) => normalize_path(p.trim()).ok_or_else(|| {
                    err(
                        "path",
                        format!(
                        "{p:?} is not an absolute directory path (no \".\" or \"..\" parts, no \
                         % variables); give one like \"/srv/data\""
                    ),
                    )
                })?,
            };
        let flag = |param: &str| -> Result<bool, AgentError> {
            match lookup(spec, param) {
                None => Ok(false),
                Some(v) => {
                    boolean(v).ok_or_else(|| err(param, format!("{v:?} is not true or false")))
                }
            }
        };
        let (read_only, guest_ok) = (flag("read_only")?, flag("guest_ok")?);
        let text = |param: &str| -> Result<Option<String>, AgentError> {
            match lookup(spec, param).map(str::trim) {
                None | Some("") => Ok(None),
                Some(v) => match value_problem(v) {
                    None => Ok(Some(v.to_string())),
                    Some(p) => Err(err(param, format!("{v:?} {p}"))),
                },
            }
        };
        let (comment, valid_users) = (text("comment")?, text("valid_users")?);
        let options =
            parse_options(lookup(spec, "options").unwrap_or("")).map_err(|p| err("options", p))?;
        let smb_conf = match lookup(spec, "smb_conf").map(str::trim) {
            None => PathBuf::from(DEFAULT_SMB_CONF),
            Some(p) if p.starts_with('/') && !p.contains('\0') => PathBuf::from(p),
            Some(p) => {
                return Err(err(
                    "smb_conf",
                    format!("{p:?} is not an absolute path; give one like \"{DEFAULT_SMB_CONF}\""),
                ))
            }
        };
        let mut params = vec![("path".to_string(), path.clone())];
        if let Some(c) = comment {
            params.push(("comment".into(), c));
        }
        params.push(("read only".into(), yes_no(read_only).into()));
        params.push(("guest ok".into(), yes_no(guest_ok).into()));
        if let Some(u) = valid_users {
            params.push(("valid users".into(), u));
        }
        params.extend(options);
        Ok(Self {
            name: spec.name.clone(),
            wanted: Section {
                name: share,
                params,
            },
            path: PathBuf::from(path),
            smb_conf,
            run_dir: ctx.run_dir.clone(),
            start_ms: spec.start_timeout_ms,
            stop_ms: spec.stop_timeout_ms,
            quick_ms: spec.monitor_quick.timeout_ms,
            deep_ms: spec
                .monitor_deep
                .map_or(spec.monitor_quick.timeout_ms, |d| d.timeout_ms),
        })
    }

    /// `stat` of `path`, on a thread of its own: a dead filesystem under it hangs that thread
    /// only, until the caller's timeout gives up on the operation.
    async fn dir_stat(&self) -> std::io::Result<std::fs::Metadata> {
        let dir = self.path.clone();
        tokio::task::spawn_blocking(move || std::fs::metadata(dir))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }

    /// The share's name.
    fn share(&self) -> &str {
        &self.wanted.name
    }

    fn conf(&self) -> String {
        self.smb_conf.display().to_string()
    }

    /// Runs `program -s SMB_CONF args…` (`net conf …` or `smbcontrol …`), bounded by `until`
    /// and [`COMMAND_MAX`].
    async fn run(&self, program: &str, args: &[&str], until: Instant) -> Result<Ran, RunError> {
        let exe = find_program(program, PATH).map_err(RunError::Missing)?;
        let conf = self.conf();
        let mut full: Vec<&str> = Vec::new();
        if program == "net" {
            full.push("conf");
        }
        full.extend(["-s", &conf]);
        full.extend(args);
        let shown = format!("{program} {}", full.join(" "));
        let mut cmd = tokio::process::Command::new(exe);
        cmd.args(&full)
            .env_clear()
            .env("PATH", PATH)
            .env("LANG", "C");
        prepare_child(&mut cmd);
        let bound = until.min(Instant::now() + COMMAND_MAX);
        let fin = match tokio::time::timeout_at(bound, run_captured(cmd, true)).await {
            Err(_) => {
                return Err(RunError::Failed(format!(
                    "{shown} did not finish in time (killed)"
                )))
            }
            Ok(Err(e)) => return Err(RunError::Failed(e)),
            Ok(Ok(fin)) => fin,
        };
        let stdout = String::from_utf8_lossy(&fin.stdout).into_owned();
        let all = without_chatter(&format!("{stdout}\n{}", fin.output));
        Ok(Ran {
            code: fin.status.code(),
            stdout,
            all,
        })
    }

    /// The share as this node's registry has it; `None`: not there.
    async fn registered(&self, until: Instant) -> Result<Option<Section>, RunError> {
        let ran = self.run("net", &["showshare", self.share()], until).await?;
        match ran.code {
            Some(0) => parse_showshare(&ran.stdout).map(Some).ok_or_else(|| {
                RunError::Failed(format!(
                    "net conf showshare {} printed no section{}",
                    self.share(),
                    last_words(&ran.all)
                ))
            }),
            _ if no_such_share(&ran.all) => Ok(None),
            code => Err(RunError::Failed(format!(
                "net conf showshare {} {}{}",
                self.share(),
                exit(code),
                last_words(&ran.all)
            ))),
        }
    }

    /// `smbcontrol smbd WHAT…`: `Ok(true)` done, `Ok(false)` no smbd runs (with this
    /// smb.conf's pid directory).
    async fn smbd(&self, what: &[&str], until: Instant) -> Result<bool, RunError> {
        let mut args = vec!["smbd"];
        args.extend(what);
        let ran = self.run("smbcontrol", &args, until).await?;
        match ran.code {
            Some(0) => Ok(true),
            _ if smbd_absent(&ran.all) => Ok(false),
            code => Err(RunError::Failed(format!(
                "smbcontrol smbd {} {}{}",
                what.join(" "),
                exit(code),
                last_words(&ran.all)
            ))),
        }
    }

    /// Why smbd cannot be reached, in words for the operator.
    fn smbd_down(&self) -> String {
        format!(
            "smbd is not running here (smbcontrol -s {} smbd ping finds none): nobody could \
             reach share {:?}; start smbd on this node (systemctl enable --now smbd)",
            self.conf(),
            self.share()
        )
    }

    /// The share's section written whole into the registry.
    async fn import(&self, until: Instant) -> Step<()> {
        let file = self.run_dir.join(format!(
            "share-{}.smb.conf",
            self.name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        ));
        let written = std::fs::create_dir_all(&self.run_dir)
            .and_then(|()| std::fs::write(&file, self.wanted.render()));
        if let Err(e) = written {
            return Err(soft(format!("cannot write {}: {e}", file.display())));
        }
        let f = file.display().to_string();
        let ran = self.run("net", &["import", &f, self.share()], until).await;
        let _ = std::fs::remove_file(&file);
        let ran = ran.map_err(|e| soft(e.text()))?;
        match ran.code {
            Some(0) => Ok(()),
            _ if invalid_param(&ran.all) => Err((
                Outcome::FailedFatal,
                format!(
                    "Samba refuses a parameter of share {:?} (an unknown name in options, or \
                     one not allowed in a share){}",
                    self.share(),
                    last_words(&ran.all)
                ),
            )),
            code => Err(soft(format!(
                "net conf import of share {:?} {}{}",
                self.share(),
                exit(code),
                last_words(&ran.all)
            ))),
        }
    }

    async fn do_start(&self) -> Step<String> {
        let until = deadline(self.start_ms);
        if !self.smb_conf.is_file() {
            return Err(hard(format!("{} does not exist on this node", self.conf())));
        }
        match self.dir_stat().await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(hard(format!(
                    "{} is not a directory on this node",
                    self.path.display()
                )))
            }
            Err(e) => return Err(hard(format!("{}: {e}", self.path.display()))),
        }
        let missing = |e: RunError| match e {
            RunError::Missing(m) => hard(format!("Samba is not installed here: {m}")),
            RunError::Failed(m) => soft(m),
        };
        if !self.smbd(&["ping"], until).await.map_err(missing)? {
            return Err(soft(self.smbd_down()));
        }
        self.import(until).await?;
        if !self
            .smbd(&["reload-config"], until)
            .await
            .map_err(missing)?
        {
            return Err(soft(self.smbd_down()));
        }
        match self.registered(until).await.map_err(missing)? {
            Some(s) if s.get("path") == Some(&self.path.display().to_string()) => Ok(format!(
                "share {:?} of {} defined and smbd reloaded",
                self.share(),
                self.path.display()
            )),
            Some(s) => Err(soft(format!(
                "share {:?} was written with path {} but the registry has {}",
                self.share(),
                self.path.display(),
                s.get("path").unwrap_or("none")
            ))),
            None => Err(soft(format!(
                "share {:?} was written but is not in the registry",
                self.share()
            ))),
        }
    }

    async fn do_stop(&self) -> Result<String, String> {
        let until = deadline(self.stop_ms);
        if !self.smb_conf.exists() {
            return Ok(format!(
                "{} does not exist here: no share of it to stop",
                self.conf()
            ));
        }
        let ran = match self.run("net", &["delshare", self.share()], until).await {
            Ok(ran) => ran,
            Err(RunError::Missing(m)) => {
                return Ok(format!(
                    "Samba is not installed here ({m}): nothing to stop"
                ))
            }
            Err(RunError::Failed(m)) => return Err(m),
        };
        let deleted = match ran.code {
            Some(0) => true,
            _ if no_such_share(&ran.all) => false,
            code => {
                return Err(format!(
                    "net conf delshare {} {}{}",
                    self.share(),
                    exit(code),
                    last_words(&ran.all)
                ))
            }
        };
        let running = self
            .smbd(&["reload-config"], until)
            .await
            .map_err(RunError::text)?;
        if running {
            self.smbd(&["close-share", self.share()], until)
                .await
                .map_err(RunError::text)?;
        }
        let what = if deleted {
            "deleted from the registry"
        } else {
            "was not in the registry"
        };
        let smbd = if running {
            "its clients cut off"
        } else {
            "no smbd runs"
        };
        Ok(format!("share {:?} {what}; {smbd}", self.share()))
    }

    /// The monitor's checks; `deep` adds the section's values and a read of the directory.
    async fn check(&self, deep: bool, until: Instant) -> Report {
        let section = match self.registered(until).await {
            Ok(Some(s)) => s,
            Ok(None) => {
                return Report::not_running(format!(
                    "share {:?} is not in this node's registry",
                    self.share()
                ))
            }
            Err(RunError::Missing(m)) => {
                return Report::not_running(format!("Samba is not installed here: {m}"))
            }
            Err(RunError::Failed(m)) => return Report::failed(m),
        };
        let path = self.path.display().to_string();
        if section.get("path") != Some(path.as_str()) {
            return Report::failed(format!(
                "share {:?} has path {} in the registry, not {path}",
                self.share(),
                section.get("path").unwrap_or("none")
            ));
        }
        match self.dir_stat().await {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Report::failed(format!("{path} is not a directory")),
            Err(e) => return Report::failed(format!("{path}: {e}")),
        }
        match self.smbd(&["ping"], until).await {
            Ok(true) => {}
            Ok(false) => return Report::failed(self.smbd_down()),
            Err(e) => return Report::failed(e.text()),
        }
        if !deep {
            return Report::ok(format!(
                "share {:?} of {path} defined; smbd answers",
                self.share()
            ));
        }
        if let Some(why) = drift(&self.wanted, &section) {
            return Report::failed(format!("share {:?}: {why}", self.share()));
        }
        let dir = self.path.clone();
        match tokio::task::spawn_blocking(move || std::fs::read_dir(&dir).map(|mut d| d.next()))
            .await
        {
            Ok(Ok(None | Some(Ok(_)))) => Report::ok(format!(
                "share {:?} of {path} defined as configured, readable; smbd answers",
                self.share()
            )),
            Ok(Ok(Some(Err(e))) | Err(e)) => Report::failed(format!("cannot read {path}: {e}")),
            Err(e) => Report::failed(format!("reading {path}: {e}")),
        }
    }
}

/// What of `wanted`'s own parameters (comment, read only, guest ok, valid users) the
/// registry's section no longer has; `None` if it has them all. Booleans compare as
/// booleans.
fn drift(wanted: &Section, got: &Section) -> Option<String> {
    for key in ["comment", "read only", "guest ok", "valid users"] {
        let (w, g) = (wanted.get(key), got.get(key));
        let same = match (w, g) {
            (Some(w), Some(g)) if key.contains(" ok") || key.contains(" only") => {
                boolean(w).is_some() && boolean(w) == boolean(g)
            }
            (w, g) => w == g,
        };
        if !same {
            return Some(format!(
                "the registry has {key} = {} instead of {} (changed behind the cluster's back; \
                 the next start rewrites it)",
                g.unwrap_or("(unset)"),
                w.unwrap_or("(unset)")
            ));
        }
    }
    None
}

/// "exited with 3" or "was killed by a signal".
fn exit(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exited with {c}"),
        None => "was killed by a signal".to_string(),
    }
}

#[async_trait]
impl Agent for Share {
    async fn validate(&self) -> Result<(), AgentError> {
        let err = |param: &str, problem: String| param_err(&self.name, param, problem);
        for program in ["net", "smbcontrol"] {
            find_program(program, PATH).map_err(|e| {
                err(
                    "protocol",
                    format!("smb needs Samba's {program}: {e} (Debian: apt install samba)"),
                )
            })?;
        }
        let conf = self.conf();
        let text = std::fs::read_to_string(&self.smb_conf)
            .map_err(|e| err("smb_conf", format!("cannot read {conf} on this node: {e}")))?;
        if let Registry::Disabled { includes } = registry_enabled(&text) {
            let also = if includes {
                " (files it includes are not read: the line must be in this file)"
            } else {
                ""
            };
            return Err(err(
                "smb_conf",
                format!(
                    "{conf} does not enable registry shares, where this agent defines its \
                     share: add the line \"registry shares = yes\" to its [global] section{also}"
                ),
            ));
        }
        match self.dir_stat().await {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(err(
                "path",
                format!("{} is not a directory on this node", self.path.display()),
            )),
            Err(e) => Err(err(
                "path",
                format!("{} on this node: {e}", self.path.display()),
            )),
        }
    }

    async fn start(&self, _epoch: u64) -> Report {
        match self.do_start().await {
            Ok(why) => {
                tracing::info!(resource = %self.name, reason = %why, "share started");
                Report::ok(why)
            }
            Err((outcome, why)) => {
                tracing::warn!(resource = %self.name, reason = %why, "share start failed");
                Report {
                    outcome,
                    reason: why,
                }
            }
        }
    }

    async fn stop(&self) -> Report {
        match self.do_stop().await {
            Ok(why) => {
                tracing::info!(resource = %self.name, reason = %why, "share stopped");
                Report::ok(why)
            }
            Err(why) => {
                tracing::warn!(resource = %self.name, reason = %why, "share stop failed");
                Report::failed(why)
            }
        }
    }

    async fn monitor(&self, depth: Depth) -> Report {
        match depth {
            Depth::Quick => self.check(false, deadline(self.quick_ms)).await,
            Depth::Deep => self.check(true, deadline(self.deep_ms)).await,
        }
    }

    async fn probe(&self) -> Report {
        if !self.smb_conf.exists() {
            return Report::not_running(format!(
                "{} does not exist here: no share of it is defined",
                self.conf()
            ));
        }
        match self.registered(deadline(self.quick_ms)).await {
            Ok(Some(s)) => Report::ok(format!(
                "share {:?} is defined in this node's registry (path {})",
                self.share(),
                s.get("path").unwrap_or("none")
            )),
            Ok(None) => Report::not_running(format!(
                "share {:?} is not in this node's registry",
                self.share()
            )),
            Err(RunError::Missing(m)) => {
                Report::not_running(format!("Samba is not installed here: {m}"))
            }
            Err(RunError::Failed(m)) => Report::failed(m),
        }
    }

    fn hard_stop(&self) -> Option<HardStop> {
        Some(HardStop::Command {
            resource: self.name.clone(),
            program: PathBuf::from("/bin/sh"),
            args: vec![
                "-c".into(),
                HARD_STOP_SH.into(),
                "eterne-share-stop".into(),
                self.conf(),
                self.share().to_string(),
            ],
            env: vec![
                ("PATH".to_string(), PATH.to_string()),
                ("LANG".to_string(), "C".to_string()),
            ],
            timeout_ms: u64::from(self.stop_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::agent_resource;

    fn build(params: &[(&str, &str)]) -> Result<Share, AgentError> {
        let (events, _) = tokio::sync::mpsc::channel(1);
        let ctx = AgentContext {
            group: 0,
            resource: 0,
            name: "sh".into(),
            run_dir: PathBuf::from("/nonexistent"),
            events,
        };
        Share::new(&agent_resource("sh", "share", params), &ctx)
    }

    fn problem(params: &[(&str, &str)]) -> String {
        match build(params) {
            Err(AgentError::Param { param, problem, .. }) => format!("{param}: {problem}"),
            other => panic!("expected a parameter error, got {other:?}"),
        }
    }

    #[test]
    fn parameters_are_checked_at_their_field() {
        let ok = [("name", "data"), ("path", "/srv/data")];
        let with = |extra: (&'static str, &'static str)| {
            let mut v = ok.to_vec();
            v.push(extra);
            problem(&v)
        };
        assert!(problem(&[("path", "/srv")]).starts_with("name: is missing"));
        assert!(problem(&[("name", "data")]).starts_with("path: is missing"));
        assert!(problem(&[("name", "a/b"), ("path", "/x")]).starts_with("name: "));
        assert!(problem(&[("name", "global"), ("path", "/x")]).contains("reserves"));
        for rel in ["srv/data", "./x", "/srv/../etc", "/home/%U"] {
            assert!(
                problem(&[("name", "data"), ("path", rel)]).starts_with("path: "),
                "{rel}"
            );
        }
        assert!(with(("protocol", "nfs")).contains("NFS exports are not supported yet"));
        assert!(with(("protocol", "afp")).starts_with("protocol: "));
        assert!(with(("read_only", "maybe")).starts_with("read_only: "));
        assert!(with(("guest_ok", "2")).starts_with("guest_ok: "));
        assert!(with(("comment", "a\nb")).starts_with("comment: "));
        assert!(with(("options", "writeable = yes")).starts_with("options: "));
        assert!(with(("smb_conf", "smb.conf")).starts_with("smb_conf: "));
        assert!(with(("patth", "/x")).starts_with("patth: unknown parameter of a share"));
    }

    #[test]
    fn the_section_written_holds_every_parameter_in_samba_terms() {
        let s = build(&[
            ("name", "Team"),
            ("path", "/srv/team/"),
            ("comment", "the team's files"),
            ("read_only", "yes"),
            ("guest_ok", "true"),
            ("valid_users", "alice, @staff"),
            ("options", "browseable = no; create mask = 0640"),
            ("protocol", "SMB"),
        ])
        .unwrap();
        assert_eq!(
            s.wanted.render(),
            "[Team]\n\tpath = /srv/team\n\tcomment = the team's files\n\tread only = yes\n\
             \tguest ok = yes\n\tvalid users = alice, @staff\n\tbrowseable = no\n\
             \tcreate mask = 0640\n"
        );
        assert_eq!(s.smb_conf, PathBuf::from(DEFAULT_SMB_CONF));
        let s = build(&[("name", "d"), ("path", "/"), ("smb_conf", "/etc/x.conf")]).unwrap();
        assert_eq!(
            s.wanted.render(),
            "[d]\n\tpath = /\n\tread only = no\n\tguest ok = no\n"
        );
    }

    #[test]
    fn drift_compares_the_agents_own_parameters() {
        let wanted = build(&[("name", "d"), ("path", "/x"), ("comment", "c")])
            .unwrap()
            .wanted;
        let got = |text: &str| parse_showshare(text).unwrap();
        assert_eq!(
            drift(
                &wanted,
                &got("[d]\npath = /x\ncomment = c\nread only = No\nguest ok = no\nbrowseable = no")
            ),
            None
        );
        let d = drift(
            &wanted,
            &got("[d]\npath = /x\ncomment = c\nread only = yes\nguest ok = no"),
        )
        .unwrap();
        assert!(d.contains("read only = yes instead of no"), "{d}");
        let d = drift(
            &wanted,
            &got("[d]\npath = /x\ncomment = c\nread only = no\nguest ok = no\nvalid users = eve"),
        )
        .unwrap();
        assert!(d.contains("valid users = eve instead of (unset)"), "{d}");
    }

    #[test]
    fn the_hard_stop_deletes_the_share_with_a_shell_that_quotes_it() {
        let s = build(&[("name", "a b'$x"), ("path", "/x")]).unwrap();
        match s.hard_stop() {
            Some(HardStop::Command { program, args, .. }) => {
                assert_eq!(program, PathBuf::from("/bin/sh"));
                // The name is an argument of the script, never part of its text.
                assert_eq!(args[4], "a b'$x");
                assert!(!args[1].contains("a b"));
            }
            other => panic!("expected a command, got {other:?}"),
        }
    }
}

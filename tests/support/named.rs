//! A real authoritative DNS server for the `network_name` tests: BIND 9's `named`
//! (Debian's `bind9`) in a network namespace the test made, with primary zones that accept
//! updates signed with one TSIG key, its files in a scratch directory, killed when dropped.
//! `dig` (Debian's `bind9-dnsutils`) reads what it serves, so the tests never check the
//! agent's records with the agent's own DNS code.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The TSIG key the zones accept.
pub const KEY_NAME: &str = "eterne-web";
/// Its secret (base64 of 32 bytes), as `tsig-keygen` would make it.
pub const KEY_SECRET: &str = "q3yV2cGfLh5m8tq0mOq1m1c3mSxkq9t6mGv1p6m6fK8=";
/// A secret the server does not have, for a key of the same name.
pub const WRONG_SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

const NAMED: &str = "/usr/sbin/named";
const DIG: &str = "/usr/bin/dig";

/// Why these tests cannot run here, if they cannot (besides root).
pub fn unavailable() -> Option<String> {
    for (p, pkg) in [(NAMED, "bind9"), (DIG, "bind9-dnsutils")] {
        if !Path::new(p).exists() {
            return Some(format!(
                "{p} not found (bash scripts/setup.sh installs {pkg})"
            ));
        }
    }
    None
}

/// A running `named`.
pub struct Named {
    child: Child,
    /// The namespace it runs in.
    pub ns: String,
    /// The address it listens on (port 53).
    pub addr: String,
    /// Its configuration, zones and journals.
    pub dir: PathBuf,
}

impl Named {
    /// Starts `named` in namespace `ns` on `addr`:53, primary for `zones`, and waits (at most
    /// 20 s) until it answers for each.
    pub fn start(ns: &str, addr: &str, dir: &Path, zones: &[&str]) -> Result<Named, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let d = dir.display();
        let mut conf = format!(
            "key \"{KEY_NAME}\" {{ algorithm hmac-sha256; secret \"{KEY_SECRET}\"; }};\n\
             controls {{ }};\n\
             options {{\n  directory \"{d}\";\n  pid-file none;\n  session-keyfile \"{d}/session.key\";\n  \
             managed-keys-directory \"{d}\";\n  listen-on port 53 {{ {addr}; }};\n  listen-on-v6 {{ none; }};\n  \
             recursion no;\n  dnssec-validation no;\n  allow-query {{ any; }};\n  notify no;\n}};\n"
        );
        // The first zone holds the server's own name (a zone's NS must have an address).
        let ns_name = format!("ns.{}.", zones.first().copied().unwrap_or("test"));
        for (i, z) in zones.iter().enumerate() {
            let mut soa = format!(
                "$TTL 60\n@ IN SOA {ns_name} admin.{ns_name} 1 60 60 600 60\n@ IN NS {ns_name}\n"
            );
            if i == 0 {
                soa.push_str(&format!("ns IN A {addr}\n"));
            }
            std::fs::write(dir.join(format!("{z}.db")), soa).map_err(|e| e.to_string())?;
            conf.push_str(&format!(
                "zone \"{z}\" {{ type primary; file \"{d}/{z}.db\"; allow-update {{ key \"{KEY_NAME}\"; }}; }};\n"
            ));
        }
        std::fs::write(dir.join("named.conf"), conf).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("named.log")).map_err(|e| e.to_string())?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns, NAMED, "-g", "-c"])
            .arg(dir.join("named.conf"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run named: {e}"))?;
        let named = Named {
            child,
            ns: ns.to_string(),
            addr: addr.to_string(),
            dir: dir.to_path_buf(),
        };
        let until = Instant::now() + Duration::from_secs(20);
        for z in zones {
            while named.dig(z, "SOA").is_empty() {
                if Instant::now() > until {
                    let log = named.log();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    return Err(format!(
                        "named did not serve {z} within 20 s:\n{}",
                        tail.join("\n")
                    ));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(named)
    }

    /// What the server answers for `name`'s `rtype` records (`dig +short`, no recursion, 1 s
    /// per try, 2 tries); empty when there are none or no answer came.
    pub fn dig(&self, name: &str, rtype: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.ns, DIG, "+short", "+norec", "+time=1", "+tries=2",
            ])
            .arg(format!("@{}", self.addr))
            .args([name, rtype])
            .output();
        let Ok(out) = out else { return Vec::new() };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut v: Vec<String> = text
            .lines()
            .map(|l| l.trim().trim_matches('"').to_string())
            .filter(|l| !l.is_empty() && !l.starts_with(";;"))
            .collect();
        v.sort();
        v
    }

    /// The serial of `zone`'s SOA (named increments it at every applied update).
    pub fn serial(&self, zone: &str) -> Option<u32> {
        self.dig(zone, "SOA")
            .first()
            .and_then(|soa| soa.split_whitespace().nth(2)?.parse().ok())
    }

    /// The server's log so far (for a failed test).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("named.log")).unwrap_or_default()
    }

    /// Stops it (SIGKILL), as a crash or an unreachable server.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        self.kill();
    }
}

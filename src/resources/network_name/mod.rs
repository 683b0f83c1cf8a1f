//! The `network_name` agent: a floating host name (design.md §7). Start publishes the name's
//! address records (and, if asked, their PTR records) at an authoritative DNS server through
//! RFC 2136 dynamic update signed with TSIG; stop withdraws them; monitor asks the server.
//!
//! # Parameters
//!
//! | parameter | meaning |
//! |---|---|
//! | `name` | Required. The host name, e.g. `"web.example.com"` (a trailing dot is optional). |
//! | `address` | Required. The addresses it resolves to, comma-separated: IPv4 (A records) and IPv6 (AAAA records); a prefix (`/24`) is ignored, so the `ip` resource's address can be copied. Usually the group's floating address. |
//! | `server` | Required. The authoritative (primary) server, an address with an optional port: `"192.0.2.53"`, `"192.0.2.53:5353"`, `"[2001:db8::53]:53"`. |
//! | `zone` | The zone to update. Default: `name` without its first label. |
//! | `ttl` | Seconds, for every record published (0–86400). Default 60: a client's cache should not outlive a failover by much. |
//! | `ptr_zones` | Reverse zones, comma-separated, e.g. `"2.0.192.in-addr.arpa"`: each address whose reverse name is in one of them gets a PTR record there. |
//! | `key_file` | A TSIG key in BIND's format, as `tsig-keygen NAME` writes it. |
//! | `key_name`, `key_secret`, `key_algorithm` | The key inline instead (the secret in base64; the algorithm `hmac-sha256` (default), `hmac-sha384` or `hmac-sha512`). `cluster.toml` then holds a secret: keep it readable by root only. |
//! | `timeout_ms` | How long one exchange with the server may take. Default: three quarters of the resource's shortest operation timeout, shared among the messages of a start. |
//!
//! # What each operation does
//!
//! - `start(epoch)`: one update in the zone replaces the name's A and AAAA RRsets with
//!   `address` and writes an *owner record*, `_eterne.<name> TXT "epoch=N"`, naming the
//!   activation; the server applies the message whole or not at all. Then one update per
//!   reverse zone replaces the PTR. A marker in the runtime directory records the epoch.
//! - `stop`: one update withdraws our addresses and the owner record, on the prerequisite
//!   (checked by the server, RFC 2136 §2.4.2) that the owner record still names our epoch;
//!   then our PTRs. If a newer activation owns the name, nothing is removed. A server that
//!   cannot be reached does not fail the stop: the records name the floating address, not
//!   this node, so they hurt no one, and the next start replaces them. A failed stop would
//!   fence this node for a DNS outage.
//! - `monitor` (both depths): the owner record, the A and the AAAA RRsets are asked for at
//!   once, without recursion. Ok when the owner names our epoch and the addresses are
//!   exactly `address`; a missing or changed record, or a server that does not answer within
//!   the timeout, is a failure.
//! - `probe`: without a marker, not running. With one, running exactly when the server's
//!   owner record names the marker's epoch; otherwise the marker is stale and removed. So a
//!   node that crashed while it owned the name never takes the records of the node that
//!   took over for its own, and its stop never removes them.
//! - `validate`: the key file can be read and holds a key.
//!
//! # Severity
//!
//! The server's refusals that no retry mends are hard (the group goes to another node, whose
//! key file may be right): the key unknown to the server (`NOTAUTH`, `BADKEY`), a secret that
//! does not match (`BADSIG`), a clock off by more than 300 s (`BADTIME`), `REFUSED` (the zone
//! does not allow updates with this key), `NOTZONE`. No answer in time, `SERVFAIL` and the
//! like are soft: a local restart may mend them.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::{Name, RData, RecordType, TSigner};

mod dns;
mod key;

use self::dns::{exchange, ExchangeError, Records};
use self::key::{parse_key_file, Key};
use super::{known_params, lookup, param_err};
use super::{Agent, AgentContext, AgentError, Depth, Report};
use crate::policy::group::Outcome;
use crate::policy::spec::ResourceSpec;

/// Every parameter the agent knows.
pub const PARAMS: &[&str] = &[
    "name",
    "address",
    "server",
    "zone",
    "ttl",
    "ptr_zones",
    "key_file",
    "key_name",
    "key_secret",
    "key_algorithm",
    "timeout_ms",
];

/// Where the TSIG key comes from.
#[derive(Clone, Debug)]
enum KeySource {
    Inline(Key),
    File(PathBuf),
}

/// The `network_name` agent. See the module documentation.
#[derive(Debug)]
pub struct NetworkName {
    name: String,
    records: Records,
    server: SocketAddr,
    key: KeySource,
    timeout: Duration,
    /// The runtime marker: present while this node publishes the name, holding the epoch.
    marker: PathBuf,
}

/// A host name with at least two labels, fully qualified.
fn host_name(s: &str) -> Result<Name, String> {
    let s = s.trim().trim_end_matches('.');
    let mut n = Name::from_ascii(s).map_err(|e| format!("{s:?} is not a DNS name ({e})"))?;
    n.set_fqdn(true);
    if s.is_empty() || n.num_labels() < 2 {
        return Err(format!(
            "{s:?} is not a fully qualified host name; give one like \"web.example.com\""
        ));
    }
    Ok(n.to_lowercase())
}

fn server_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok(sa);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!(
                "{s:?} is not an address; give the server's address (a name would need DNS to \
                 reach DNS), e.g. \"192.0.2.53\" or \"192.0.2.53:5353\""
            )
        })
}

fn addresses(s: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let ip = part.split('/').next().unwrap_or(part);
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("{part:?} is not an IPv4 or IPv6 address"))?;
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    if out.is_empty() {
        return Err("is empty; give the address the name resolves to".into());
    }
    Ok(out)
}

impl NetworkName {
    /// Checks the parameters (syntax only).
    pub fn new(spec: &ResourceSpec, ctx: &AgentContext) -> Result<Self, AgentError> {
        known_params(spec, "a network_name", PARAMS)?;
        let err = |param: &str, problem: String| param_err(&spec.name, param, problem);
        let need = |param: &str, example: &str| {
            lookup(spec, param).ok_or_else(|| err(param, format!("is missing; e.g. {example}")))
        };
        let name =
            host_name(need("name", "name = \"web.example.com\"")?).map_err(|e| err("name", e))?;
        let addresses = addresses(need("address", "address = \"192.0.2.10\"")?)
            .map_err(|e| err("address", e))?;
        let server = server_addr(need("server", "server = \"192.0.2.53\"")?)
            .map_err(|e| err("server", e))?;
        let zone = match lookup(spec, "zone") {
            Some(z) => {
                let mut z = Name::from_ascii(z.trim().trim_end_matches('.'))
                    .map_err(|e| err("zone", format!("{z:?} is not a DNS name ({e})")))?;
                z.set_fqdn(true);
                z.to_lowercase()
            }
            None => name.base_name(),
        };
        if !zone.zone_of(&name) || zone == name {
            return Err(err(
                "zone",
                format!("{} is not inside zone {}", name.to_ascii(), zone.to_ascii()),
            ));
        }
        let ttl = match lookup(spec, "ttl") {
            None => 60,
            Some(t) => match t.trim().parse::<u32>() {
                Ok(t) if t <= 86_400 => t,
                _ => {
                    return Err(err(
                        "ttl",
                        format!("{t:?} is not a number of seconds 0–86400"),
                    ))
                }
            },
        };
        let mut ptrs = Vec::new();
        if let Some(list) = lookup(spec, "ptr_zones") {
            for z in list.split(',').map(str::trim).filter(|z| !z.is_empty()) {
                let mut zn = Name::from_ascii(z.trim_end_matches('.'))
                    .map_err(|e| err("ptr_zones", format!("{z:?} is not a DNS name ({e})")))?;
                zn.set_fqdn(true);
                let zn = zn.to_lowercase();
                let covered: Vec<Name> = addresses
                    .iter()
                    .map(|ip| Name::from(*ip))
                    .filter(|rev| zn.zone_of(rev))
                    .collect();
                if covered.is_empty() {
                    return Err(err(
                        "ptr_zones",
                        format!(
                            "zone {z:?} holds the reverse name of none of the addresses \
                             (for 192.0.2.10 it would be \"2.0.192.in-addr.arpa\")"
                        ),
                    ));
                }
                for rev in covered {
                    if !ptrs.iter().any(|(r, _)| r == &rev) {
                        ptrs.push((rev, zn.clone()));
                    }
                }
            }
        }
        let key = match (lookup(spec, "key_file"), lookup(spec, "key_name")) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "key_name",
                    "give the key either in key_file or as key_name and key_secret, not both"
                        .into(),
                ))
            }
            (Some(f), None) if f.starts_with('/') => KeySource::File(PathBuf::from(f)),
            (Some(f), None) => {
                return Err(err(
                    "key_file",
                    format!("{f:?} is not an absolute path; e.g. \"/etc/eterne/web.key\""),
                ))
            }
            (None, Some(k)) => {
                let secret = lookup(spec, "key_secret").ok_or_else(|| {
                    err(
                        "key_secret",
                        "is missing: key_name needs the secret (base64)".into(),
                    )
                })?;
                let alg = lookup(spec, "key_algorithm").unwrap_or("hmac-sha256");
                KeySource::Inline(Key::new(k, alg, secret).map_err(|e| err("key_name", e))?)
            }
            (None, None) => {
                return Err(err(
                    "key_file",
                    "is missing: updates are signed with TSIG; give key_file (made by \
                     `tsig-keygen NAME`), or key_name and key_secret"
                        .into(),
                ))
            }
        };
        for p in ["key_secret", "key_algorithm"] {
            if lookup(spec, p).is_some() && lookup(spec, "key_name").is_none() {
                return Err(err(p, "goes with key_name (an inline key)".into()));
            }
        }
        // A start sends one message per zone, one after another; a monitor asks at once.
        let messages = 1 + ptrs
            .iter()
            .map(|(_, z)| z)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let shortest = spec
            .monitor_quick
            .timeout_ms
            .min(spec.start_timeout_ms)
            .min(spec.stop_timeout_ms)
            .max(1);
        let budget = u64::from(shortest) * 3 / 4;
        let timeout_ms = match lookup(spec, "timeout_ms") {
            None => (budget / messages as u64).max(20),
            Some(t) => match t.trim().parse::<u64>() {
                Ok(t) if t > 0 && t * messages as u64 <= budget => t,
                Ok(t) if t > 0 => {
                    return Err(err(
                        "timeout_ms",
                        format!(
                            "{t} ms × {messages} message(s) does not fit in three quarters of \
                             the shortest operation timeout ({shortest} ms); make it at most {}",
                            budget / messages as u64
                        ),
                    ))
                }
                _ => return Err(err("timeout_ms", format!("{t:?} is not a positive number"))),
            },
        };
        let owner = Name::from_ascii("_eterne")
            .and_then(|l| l.append_name(&name))
            .map_err(|e| err("name", format!("too long for the owner record ({e})")))?;
        Ok(Self {
            name: spec.name.clone(),
            records: Records {
                name,
                zone,
                addresses,
                ttl,
                owner,
                ptrs,
            },
            server,
            key,
            timeout: Duration::from_millis(timeout_ms),
            marker: ctx.run_dir.join(format!("{}.dnsname", spec.name)),
        })
    }

    fn key(&self) -> Result<Key, String> {
        match &self.key {
            KeySource::Inline(k) => Ok(k.clone()),
            KeySource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read key_file {}: {e}", path.display()))?;
                parse_key_file(&text).map_err(|e| format!("key_file {}: {e}", path.display()))
            }
        }
    }

    fn signer(&self) -> Result<(TSigner, String), String> {
        let k = self.key()?;
        Ok((k.signer()?, k.name))
    }

    fn marker_epoch(&self) -> Option<u64> {
        std::fs::read_to_string(&self.marker)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    fn forget_marker(&self) {
        let _ = std::fs::remove_file(&self.marker);
    }

    fn shown(&self) -> String {
        self.records
            .name
            .to_ascii()
            .trim_end_matches('.')
            .to_string()
    }

    /// Sends one signed update and reads its answer: `Ok(None)` applied, `Ok(Some(msg))` an
    /// error answer (for the caller to judge), `Err` no answer.
    async fn send_update(
        &self,
        msg: Message,
        signer: &TSigner,
    ) -> Result<Option<Message>, ExchangeError> {
        let resp = exchange(self.server, msg, Some(signer), self.timeout).await?;
        if resp.metadata.response_code == ResponseCode::NoError {
            Ok(None)
        } else {
            Ok(Some(resp))
        }
    }

    /// A refused update as a report of the right severity.
    fn refusal(&self, resp: &Message, key_name: &str, zone: &Name) -> Report {
        let code = dns::rcode_text(resp);
        let zone = zone.to_ascii();
        let (hard, why) = match (resp.metadata.response_code, dns::tsig_error(resp)) {
            (_, Some(TsigError::BadKey)) => (
                true,
                format!("the server does not know TSIG key {key_name:?}"),
            ),
            (_, Some(TsigError::BadSig)) => (
                true,
                format!("the secret of TSIG key {key_name:?} is not the server's"),
            ),
            (_, Some(TsigError::BadTime)) => (
                true,
                "this node's clock is more than 300 s from the server's".to_string(),
            ),
            (ResponseCode::Refused, _) => (
                true,
                format!("zone {zone} does not allow updates signed with key {key_name:?}"),
            ),
            (ResponseCode::NotAuth | ResponseCode::NotZone, _) => (
                true,
                format!("the server is not the primary of zone {zone}"),
            ),
            _ => (false, "the server could not apply it".to_string()),
        };
        let reason = format!(
            "{} refused the update of {zone} ({code}): {why}",
            self.server
        );
        Report {
            outcome: if hard {
                Outcome::FailedHard
            } else {
                Outcome::Failed
            },
            reason,
        }
    }

    /// Asks the server for `name`'s `rtype` records (none asked: `Ok(empty)`).
    async fn ask(
        &self,
        name: &Name,
        rtype: RecordType,
        wanted: bool,
    ) -> Result<Vec<RData>, String> {
        if !wanted {
            return Ok(Vec::new());
        }
        let resp = exchange(self.server, dns::query(name, rtype), None, self.timeout)
            .await
            .map_err(|e| format!("server {} unreachable: {e}", self.server))?;
        match resp.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(dns::answers(&resp, name, rtype)),
            _ => Err(format!(
                "server {} answered a query for {} with {}",
                self.server,
                name.to_ascii(),
                dns::rcode_text(&resp)
            )),
        }
    }

    /// The epoch the server's owner record names, if any.
    async fn owner_epoch(&self) -> Result<Option<u64>, String> {
        let data = self.ask(&self.records.owner, RecordType::TXT, true).await?;
        Ok(data.iter().find_map(|d| match d {
            RData::TXT(t) => t
                .txt_data
                .first()
                .and_then(|s| std::str::from_utf8(s).ok())
                .and_then(dns::parse_owner),
            _ => None,
        }))
    }
}

#[async_trait]
impl Agent for NetworkName {
    async fn validate(&self) -> Result<(), AgentError> {
        if matches!(self.key, KeySource::File(_)) {
            self.key()
                .map_err(|e| param_err(&self.name, "key_file", e))?;
        }
        Ok(())
    }

    async fn start(&self, epoch: u64) -> Report {
        let (signer, key_name) = match self.signer() {
            Ok(s) => s,
            Err(e) => {
                return Report {
                    outcome: Outcome::FailedHard,
                    reason: e,
                }
            }
        };
        // The marker first: a daemon that dies after the server applied the update still
        // finds, at its probe, that it published the name.
        if let Some(dir) = self.marker.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&self.marker, epoch.to_string()) {
            return Report::failed(format!("cannot write {}: {e}", self.marker.display()));
        }
        for msg in dns::publish(&self.records, epoch) {
            let zone = msg.queries.first().map(|q| q.name().clone());
            let zone = zone.unwrap_or_else(|| self.records.zone.clone());
            match self.send_update(msg, &signer).await {
                Ok(None) => {}
                Ok(Some(resp)) => return self.refusal(&resp, &key_name, &zone),
                Err(e) => {
                    return Report::failed(format!(
                        "update of {} not applied: server {} unreachable: {e}",
                        zone.to_ascii(),
                        self.server
                    ))
                }
            }
        }
        let list: Vec<String> = self
            .records
            .addresses
            .iter()
            .map(|a| a.to_string())
            .collect();
        Report::ok(format!(
            "{} → {} published at {} (epoch {epoch})",
            self.shown(),
            list.join(", "),
            self.server
        ))
    }

    async fn stop(&self) -> Report {
        let Some(epoch) = self.marker_epoch() else {
            return Report::ok(format!("{} not published from here", self.shown()));
        };
        let (signer, _) = match self.signer() {
            Ok(s) => s,
            Err(e) => {
                self.forget_marker();
                return Report::ok(format!("records left at the server: {e}"));
            }
        };
        let reason = match self
            .send_update(dns::withdraw(&self.records, epoch), &signer)
            .await
        {
            Ok(None) => {
                for m in dns::withdraw_ptrs(&self.records) {
                    let _ = self.send_update(m, &signer).await;
                }
                format!(
                    "{} withdrawn from {} (epoch {epoch})",
                    self.shown(),
                    self.server
                )
            }
            Ok(Some(resp)) if resp.metadata.response_code == ResponseCode::NXRRSet => format!(
                "{} belongs to a newer activation than epoch {epoch}: left alone",
                self.shown()
            ),
            Ok(Some(resp)) => format!(
                "records of {} left at {} ({}); the next start replaces them",
                self.shown(),
                self.server,
                dns::rcode_text(&resp)
            ),
            Err(e) => format!(
                "records of {} left at {} (unreachable: {e}); the next start replaces them",
                self.shown(),
                self.server
            ),
        };
        self.forget_marker();
        Report::ok(reason)
    }

    async fn monitor(&self, _depth: Depth) -> Report {
        let Some(epoch) = self.marker_epoch() else {
            return Report::not_running(format!("{} not published from here", self.shown()));
        };
        let r = &self.records;
        let (v4, v6) = (
            r.addresses.iter().any(IpAddr::is_ipv4),
            r.addresses.iter().any(IpAddr::is_ipv6),
        );
        let (owner, a, aaaa) = tokio::join!(
            self.owner_epoch(),
            self.ask(&r.name, RecordType::A, v4),
            self.ask(&r.name, RecordType::AAAA, v6),
        );
        let (owner, a, aaaa) = match (owner, a, aaaa) {
            (Ok(o), Ok(a), Ok(b)) => (o, a, b),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Report::failed(e),
        };
        match owner {
            Some(o) if o == epoch => {}
            Some(o) => {
                return Report::failed(format!(
                    "{} was published by another activation (epoch {o}, ours {epoch})",
                    self.shown()
                ))
            }
            None => {
                return Report::failed(format!(
                    "{}'s owner record is gone from {}",
                    self.shown(),
                    self.server
                ))
            }
        }
        let mut found: Vec<IpAddr> = a
            .iter()
            .chain(aaaa.iter())
            .filter_map(|d| match d {
                RData::A(x) => Some(IpAddr::V4(x.0)),
                RData::AAAA(x) => Some(IpAddr::V6(x.0)),
                _ => None,
            })
            .collect();
        let mut want = r.addresses.clone();
        found.sort();
        want.sort();
        if found != want {
            let f: Vec<String> = found.iter().map(|a| a.to_string()).collect();
            return Report::failed(format!(
                "{} resolves to [{}] at {}, not to the published address",
                self.shown(),
                f.join(", "),
                self.server
            ));
        }
        Report::ok(format!("{} resolves at {}", self.shown(), self.server))
    }

    async fn probe(&self) -> Report {
        let Some(epoch) = self.marker_epoch() else {
            return Report::not_running(format!("{} not published from here", self.shown()));
        };
        match self.owner_epoch().await {
            Ok(Some(o)) if o == epoch => Report::ok(format!(
                "{} published from here (epoch {epoch})",
                self.shown()
            )),
            Ok(other) => {
                self.forget_marker();
                Report::not_running(format!(
                    "{} is not ours any more (owner: {})",
                    self.shown(),
                    other.map_or("none".to_string(), |o| format!("epoch {o}"))
                ))
            }
            // The records name the floating address, not this node: if the server cannot
            // say, this node is taken not to publish them (the next start replaces them).
            Err(e) => Report::not_running(format!("cannot tell ({e}): taken as not published")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testutil::agent_resource;

    fn ctx() -> AgentContext {
        let (events, _) = tokio::sync::mpsc::channel(1);
        AgentContext {
            group: 0,
            resource: 0,
            name: "web-name".into(),
            run_dir: PathBuf::from("/run/eterne"),
            events,
        }
    }

    fn build(params: &[(&str, &str)]) -> Result<NetworkName, AgentError> {
        let mut all = vec![
            ("name", "web.example.test"),
            ("address", "192.0.2.10/24"),
            ("server", "192.0.2.53"),
            ("key_name", "k"),
            ("key_secret", "c2VjcmV0"),
        ];
        for (k, v) in params {
            all.retain(|(a, _)| a != k);
            if !v.is_empty() {
                all.push((k, v));
            }
        }
        NetworkName::new(&agent_resource("web-name", "network_name", &all), &ctx())
    }

    fn problem(params: &[(&str, &str)]) -> (String, String) {
        match build(params).unwrap_err() {
            AgentError::Param { param, problem, .. } => (param, problem),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn the_defaults_make_a_name_in_its_parent_zone() {
        let n = build(&[]).unwrap();
        assert_eq!(n.records.zone.to_ascii(), "example.test.");
        assert_eq!(n.records.owner.to_ascii(), "_eterne.web.example.test.");
        assert_eq!(
            n.records.addresses,
            vec!["192.0.2.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(n.server, "192.0.2.53:53".parse().unwrap());
        assert_eq!(n.records.ttl, 60);
        assert!(n.timeout > Duration::ZERO);
        assert_eq!(n.marker, PathBuf::from("/run/eterne/web-name.dnsname"));
    }

    #[test]
    fn reverse_zones_cover_the_addresses_they_hold() {
        let n = build(&[
            ("address", "192.0.2.10, 2001:db8::10"),
            ("ptr_zones", "2.0.192.in-addr.arpa"),
        ])
        .unwrap();
        assert_eq!(
            n.records.ptrs.len(),
            1,
            "the IPv6 address has no reverse zone"
        );
        assert_eq!(n.records.ptrs[0].0.to_ascii(), "10.2.0.192.in-addr.arpa.");
        let (p, why) = problem(&[("ptr_zones", "9.9.10.in-addr.arpa")]);
        assert_eq!(p, "ptr_zones");
        assert!(why.contains("none of the addresses"), "{why}");
    }

    #[test]
    fn bad_parameters_are_refused_at_their_field() {
        for (params, field, says) in [
            (vec![("name", "web")], "name", "fully qualified"),
            (vec![("name", "")], "name", "missing"),
            (vec![("address", "192.0.2.300")], "address", "not an IPv4"),
            (
                vec![("server", "ns1.example.test")],
                "server",
                "not an address",
            ),
            (vec![("zone", "other.test")], "zone", "not inside zone"),
            (vec![("ttl", "-1")], "ttl", "0–86400"),
            (
                vec![
                    ("key_file", "keys/web.key"),
                    ("key_name", ""),
                    ("key_secret", ""),
                ],
                "key_file",
                "absolute",
            ),
            (
                vec![("key_file", "/k"), ("key_secret", "")],
                "key_name",
                "not both",
            ),
            (
                vec![("key_name", ""), ("key_secret", "")],
                "key_file",
                "tsig-keygen",
            ),
            (
                vec![("key_algorithm", "hmac-md5")],
                "key_name",
                "not supported",
            ),
            (vec![("timeout_ms", "60000")], "timeout_ms", "does not fit"),
            (vec![("color", "blue")], "color", "unknown parameter"),
        ] {
            let (p, why) = match build(&params) {
                Err(AgentError::Param { param, problem, .. }) => (param, problem),
                Ok(_) => panic!("{params:?} was accepted"),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(p, field, "{params:?}: {why}");
            assert!(why.contains(says), "{params:?}: {why}");
        }
    }
}

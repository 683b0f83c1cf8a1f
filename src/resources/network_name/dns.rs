//! The DNS side of `network_name`: the RFC 2136 update messages that publish and withdraw a
//! name (pure: built from the records, nothing sent), and one bounded exchange with the
//! server over UDP.
//!
//! Messages, records and TSIG (RFC 8945) signing and verification are hickory-proto's; what
//! is ours is which records go into which message, and the socket: one UDP exchange, sent a
//! second time at half its timeout, never waiting past it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode, UpdateMessage};
use hickory_proto::rr::rdata::tsig::TsigError;
use hickory_proto::rr::rdata::{A, AAAA, PTR, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, TSigner};
use tokio::net::UdpSocket;

/// What a name publishes: its addresses in its zone, the owner record, and the PTR records
/// in their reverse zones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Records {
    /// The host name (fully qualified).
    pub name: Name,
    /// The zone it is in.
    pub zone: Name,
    /// Its addresses (A and AAAA records).
    pub addresses: Vec<IpAddr>,
    /// The TTL of every record.
    pub ttl: u32,
    /// Where the owner record lives: `_eterne.<name>`.
    pub owner: Name,
    /// One PTR per address that has a reverse zone: (the reverse name, its zone).
    pub ptrs: Vec<(Name, Name)>,
}

/// The text of the owner record of an activation: its epoch.
pub fn owner_text(epoch: u64) -> String {
    format!("epoch={epoch}")
}

/// The epoch an owner record names, if it is one of ours.
pub fn parse_owner(text: &str) -> Option<u64> {
    text.strip_prefix("epoch=")?.parse().ok()
}

fn update(zone: &Name) -> Message {
    let mut m = Message::query();
    m.metadata.op_code = OpCode::Update;
    m.metadata.recursion_desired = false;
    let mut q = Query::new();
    q.set_name(zone.clone())
        .set_query_class(DNSClass::IN)
        .set_query_type(RecordType::SOA);
    m.add_zone(q);
    m
}

/// "Delete this RRset" (RFC 2136 §2.5.2): class ANY, no data.
fn delete_rrset(name: &Name, rtype: RecordType) -> Record {
    let mut r = Record::update0(name.clone(), 0, rtype);
    r.dns_class = DNSClass::ANY;
    r
}

/// "Delete this RR" (RFC 2136 §2.5.4): class NONE, TTL 0, the data.
fn delete_rr(name: &Name, data: RData) -> Record {
    let mut r = Record::from_rdata(name.clone(), 0, data);
    r.dns_class = DNSClass::NONE;
    r
}

fn address_data(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

fn owner_data(epoch: u64) -> RData {
    RData::TXT(TXT::new(vec![owner_text(epoch)]))
}

/// The updates that make `r` the name's records, owned by activation `epoch`: in the zone,
/// the A, AAAA and owner RRsets replaced at once (one message, so the server applies all or
/// nothing); then one message per reverse zone replacing the PTR.
pub fn publish(r: &Records, epoch: u64) -> Vec<Message> {
    let mut fwd = update(&r.zone);
    fwd.add_update(delete_rrset(&r.name, RecordType::A));
    fwd.add_update(delete_rrset(&r.name, RecordType::AAAA));
    fwd.add_update(delete_rrset(&r.owner, RecordType::TXT));
    for ip in &r.addresses {
        fwd.add_update(Record::from_rdata(r.name.clone(), r.ttl, address_data(*ip)));
    }
    fwd.add_update(Record::from_rdata(
        r.owner.clone(),
        r.ttl,
        owner_data(epoch),
    ));
    let mut out = vec![fwd];
    for (rev, zone) in &r.ptrs {
        let mut m = update(zone);
        m.add_update(delete_rrset(rev, RecordType::PTR));
        m.add_update(Record::from_rdata(
            rev.clone(),
            r.ttl,
            RData::PTR(PTR(r.name.clone())),
        ));
        out.push(m);
    }
    out
}

/// The update that withdraws activation `epoch`'s records, on the condition (RFC 2136
/// §2.4.2, checked by the server) that the owner record still names `epoch`: records a
/// newer activation published are never removed by an older one's stop.
pub fn withdraw(r: &Records, epoch: u64) -> Message {
    let mut m = update(&r.zone);
    let mut pre = Record::from_rdata(r.owner.clone(), 0, owner_data(epoch));
    pre.dns_class = DNSClass::IN;
    m.add_pre_requisite(pre);
    for ip in &r.addresses {
        m.add_update(delete_rr(&r.name, address_data(*ip)));
    }
    m.add_update(delete_rrset(&r.owner, RecordType::TXT));
    m
}

/// The PTR removals that follow a successful [`withdraw`], one per reverse zone.
pub fn withdraw_ptrs(r: &Records) -> Vec<Message> {
    r.ptrs
        .iter()
        .map(|(rev, zone)| {
            let mut m = update(zone);
            m.add_update(delete_rr(rev, RData::PTR(PTR(r.name.clone()))));
            m
        })
        .collect()
}

/// A query for `name`'s records of `rtype`, without recursion (the server is authoritative).
pub fn query(name: &Name, rtype: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.recursion_desired = false;
    m.add_query(Query::query(name.clone(), rtype));
    m
}

/// The data of the answers to a query for `name`'s `rtype`.
pub fn answers(resp: &Message, name: &Name, rtype: RecordType) -> Vec<RData> {
    resp.answers
        .iter()
        .filter(|a| a.record_type() == rtype && &a.name == name)
        .map(|a| a.data.clone())
        .collect()
}

/// Why an exchange did not get an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExchangeError {
    /// No answer within the timeout.
    Timeout(Duration),
    /// The socket failed (no route, refused by ICMP…).
    Io(String),
    /// The message could not be encoded or signed, or the answer decoded.
    Malformed(String),
    /// The answer's TSIG signature did not verify: it is not from the server holding the key.
    BadSignature(String),
}

impl std::fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExchangeError::Timeout(t) => write!(f, "no answer within {} ms", t.as_millis()),
            ExchangeError::Io(e) => write!(f, "{e}"),
            ExchangeError::Malformed(e) => write!(f, "malformed message: {e}"),
            ExchangeError::BadSignature(e) => {
                write!(f, "the answer's TSIG signature does not verify ({e})")
            }
        }
    }
}

/// The response code of an answer with the TSIG error it carries, for a reason text.
pub fn rcode_text(resp: &Message) -> String {
    let tsig = resp
        .signature()
        .and_then(|s| s.data.error)
        .map(|e| match e {
            TsigError::BadSig => "BADSIG".to_string(),
            TsigError::BadKey => "BADKEY".to_string(),
            TsigError::BadTime => "BADTIME".to_string(),
            TsigError::BadTrunc => "BADTRUNC".to_string(),
            TsigError::Unknown(n) => format!("TSIG error {n}"),
        });
    let rc = resp.metadata.response_code;
    match tsig {
        Some(t) => format!("{}, {t}", rc.to_str()),
        None => rc.to_str().to_string(),
    }
}

/// The TSIG error of an answer, if it carries one.
pub fn tsig_error(resp: &Message) -> Option<TsigError> {
    resp.signature().and_then(|s| s.data.error)
}

/// Sends `msg` (signed with `signer` if given) to `server` and returns its answer, within
/// `timeout`: the message goes out again at half the timeout (a lost datagram), and answers
/// with another id, from another address, or not answers at all are ignored. A signed
/// message's successful answer must verify; an error answer is returned as it is (a server
/// that does not know the key cannot sign its refusal).
pub async fn exchange(
    server: SocketAddr,
    mut msg: Message,
    signer: Option<&TSigner>,
    timeout: Duration,
) -> Result<Message, ExchangeError> {
    let mut verifier = None;
    if let Some(signer) = signer {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        verifier = msg
            .finalize(signer, now)
            .map_err(|e| ExchangeError::Malformed(e.to_string()))?;
    }
    let bytes = msg
        .to_vec()
        .map_err(|e| ExchangeError::Malformed(e.to_string()))?;
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| ExchangeError::Io("address".into()))?
    } else {
        "[::]:0"
            .parse()
            .map_err(|_| ExchangeError::Io("address".into()))?
    };
    let io = |e: std::io::Error| ExchangeError::Io(format!("{server}: {e}"));
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(server).await.map_err(io)?;
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let resend_at = start + timeout / 2;
    let mut resent = false;
    sock.send(&bytes).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    loop {
        let until = if resent { deadline } else { resend_at };
        match tokio::time::timeout_at(until, sock.recv(&mut buf)).await {
            Err(_) if !resent => {
                resent = true;
                sock.send(&bytes).await.map_err(io)?;
            }
            Err(_) => return Err(ExchangeError::Timeout(timeout)),
            Ok(Err(e)) => return Err(io(e)),
            Ok(Ok(n)) => {
                let Ok(resp) = Message::from_vec(&buf[..n]) else {
                    continue; // Not a DNS message: not our answer.
                };
                if resp.metadata.id != msg.metadata.id
                    || resp.metadata.message_type != MessageType::Response
                {
                    continue;
                }
                if resp.metadata.response_code == ResponseCode::NoError {
                    if let Some(v) = verifier.as_mut() {
                        v.verify(&buf[..n])
                            .map_err(|e| ExchangeError::BadSignature(e.to_string()))?;
                    }
                }
                return Ok(resp);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(ptr: bool) -> Records {
        let name = Name::from_ascii("web.example.test.").unwrap();
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        Records {
            owner: Name::from_ascii("_eterne.web.example.test.").unwrap(),
            zone: Name::from_ascii("example.test.").unwrap(),
            addresses: vec![ip, "2001:db8::10".parse().unwrap()],
            ttl: 30,
            ptrs: if ptr {
                vec![(
                    Name::from(ip),
                    Name::from_ascii("2.0.192.in-addr.arpa.").unwrap(),
                )]
            } else {
                vec![]
            },
            name,
        }
    }

    #[test]
    fn publishing_replaces_the_address_and_owner_rrsets_in_one_message() {
        let r = records(true);
        let msgs = publish(&r, 7);
        assert_eq!(msgs.len(), 2, "the zone, then the reverse zone");
        let fwd = &msgs[0];
        assert_eq!(fwd.metadata.op_code, OpCode::Update);
        assert_eq!(fwd.queries[0].name(), &r.zone);
        let ups = &fwd.authorities;
        // Three RRset deletions, then two addresses and the owner.
        assert_eq!(ups.len(), 6);
        assert!(ups[..3].iter().all(|u| u.dns_class == DNSClass::ANY));
        assert_eq!(ups[3].data, RData::A(A("192.0.2.10".parse().unwrap())));
        assert_eq!(ups[4].record_type(), RecordType::AAAA);
        assert_eq!(ups[5].name, r.owner);
        assert_eq!(ups[5].data, RData::TXT(TXT::new(vec!["epoch=7".into()])));
        let rev = &msgs[1];
        assert_eq!(rev.queries[0].name().to_ascii(), "2.0.192.in-addr.arpa.");
        assert_eq!(rev.authorities[1].data, RData::PTR(PTR(r.name.clone())));
        // Every message survives encoding.
        for m in &msgs {
            let back = Message::from_vec(&m.to_vec().unwrap()).unwrap();
            assert_eq!(back.authorities.len(), m.authorities.len());
        }
    }

    #[test]
    fn withdrawing_is_conditional_on_the_owner_naming_our_epoch() {
        let r = records(false);
        let m = withdraw(&r, 9);
        // The prerequisite: the owner RRset holds exactly "epoch=9" (value-dependent).
        assert_eq!(m.answers.len(), 1);
        assert_eq!(m.answers[0].dns_class, DNSClass::IN);
        assert_eq!(
            m.answers[0].data,
            RData::TXT(TXT::new(vec!["epoch=9".into()]))
        );
        // Our two addresses (class NONE: those RRs only) and the owner RRset.
        assert_eq!(m.authorities.len(), 3);
        assert!(m.authorities[..2]
            .iter()
            .all(|u| u.dns_class == DNSClass::NONE));
        assert_eq!(m.authorities[2].dns_class, DNSClass::ANY);
        assert!(withdraw_ptrs(&r).is_empty());
    }

    #[test]
    fn owner_records_round_trip() {
        assert_eq!(parse_owner(&owner_text(42)), Some(42));
        assert_eq!(parse_owner("v=spf1"), None);
    }
}

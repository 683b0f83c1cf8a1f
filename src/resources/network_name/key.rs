//! The TSIG key of a `network_name`: given inline (`key_name`, `key_secret`,
//! `key_algorithm`) or read from a key file in BIND's format, as `tsig-keygen` and
//! `ddns-confgen` write it and `named.conf` includes it:
//!
//! ```text
//! key "eterne-web" {
//!     algorithm hmac-sha256;
//!     secret "b64…";
//! };
//! ```

use data_encoding::BASE64;
use hickory_proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_proto::rr::{Name, TSigner};

/// How far the signer's clock may be from the server's, in seconds (RFC 8945 recommends 300).
const FUDGE_S: u16 = 300;

/// A TSIG key: its name (as the server knows it), algorithm and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    /// The key's name.
    pub name: String,
    /// The algorithm's name, lower case (`hmac-sha256`).
    pub algorithm: String,
    /// The secret, decoded.
    pub secret: Vec<u8>,
}

// The secret never reaches a log.
impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// The algorithms a signer can use (the ones hickory signs with).
pub const ALGORITHMS: &[&str] = &["hmac-sha256", "hmac-sha384", "hmac-sha512"];

fn algorithm(name: &str) -> Option<TsigAlgorithm> {
    match name {
        "hmac-sha256" => Some(TsigAlgorithm::HmacSha256),
        "hmac-sha384" => Some(TsigAlgorithm::HmacSha384),
        "hmac-sha512" => Some(TsigAlgorithm::HmacSha512),
        _ => None,
    }
}

impl Key {
    /// A key from its parts, checking each.
    pub fn new(name: &str, algorithm_name: &str, secret_b64: &str) -> Result<Key, String> {
        let name = name.trim().trim_end_matches('.');
        if name.is_empty() || Name::from_ascii(name).is_err() {
            return Err(format!("key name {name:?} is not a DNS name"));
        }
        let algorithm_name = algorithm_name.trim().to_ascii_lowercase();
        if algorithm(&algorithm_name).is_none() {
            return Err(format!(
                "algorithm {algorithm_name:?} is not supported; use one of: {}",
                ALGORITHMS.join(", ")
            ));
        }
        let secret = BASE64
            .decode(secret_b64.trim().as_bytes())
            .map_err(|e| format!("the secret is not base64 ({e})"))?;
        if secret.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Key {
            name: name.to_ascii_lowercase(),
            algorithm: algorithm_name,
            secret,
        })
    }

    /// The signer for messages with this key.
    pub fn signer(&self) -> Result<TSigner, String> {
        let alg = algorithm(&self.algorithm).ok_or("unsupported algorithm")?;
        let name = Name::from_ascii(&self.name).map_err(|e| e.to_string())?;
        TSigner::new(self.secret.clone(), alg, name, FUDGE_S).map_err(|e| e.to_string())
    }
}

/// Reads the first `key` clause of a BIND key file. Comments (`#`, `//`, `/* */`) are
/// skipped; other clauses are ignored.
pub fn parse_key_file(text: &str) -> Result<Key, String> {
    let tokens = tokens(text)?;
    let at = tokens
        .iter()
        .position(|t| t == "key")
        .ok_or("no `key \"NAME\" { … };` clause in it")?;
    let name = tokens.get(at + 1).ok_or("`key` without a name")?;
    if tokens.get(at + 2).map(String::as_str) != Some("{") {
        return Err(format!("`key {name:?}` is not followed by `{{`"));
    }
    let (mut alg, mut secret) = (None, None);
    let mut i = at + 3;
    while let Some(t) = tokens.get(i) {
        match t.as_str() {
            "}" => break,
            "algorithm" => alg = tokens.get(i + 1).cloned(),
            "secret" => secret = tokens.get(i + 1).cloned(),
            _ => {}
        }
        i += 1;
    }
    let alg = alg.ok_or(format!("key {name:?} has no `algorithm`"))?;
    let secret = secret.ok_or(format!("key {name:?} has no `secret`"))?;
    Key::new(name, &alg, &secret)
}

/// Words, quoted strings (without quotes) and the punctuation `{`, `}`; `;` separates.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'/') => skip_line(&mut chars),
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                loop {
                    match chars.next() {
                        Some('/') if last == '*' => break,
                        Some(c) => last = c,
                        None => return Err("a `/*` comment is not closed".into()),
                    }
                }
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => s.push(c),
                        None => return Err("a quoted string is not closed".into()),
                    }
                }
                out.push(s);
            }
            '{' | '}' => out.push(c.to_string()),
            ';' => {}
            c if c.is_whitespace() => {}
            c => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || "{};\"".contains(n) {
                        break;
                    }
                    s.push(n);
                    chars.next();
                }
                out.push(s);
            }
        }
    }
    Ok(out)
}

fn skip_line(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if c == '\n' {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_as_tsig_keygen_writes_it_is_read() {
        let text = "# made by tsig-keygen\nkey \"eterne-web\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldA==\";\n};\n";
        let k = parse_key_file(text).unwrap();
        assert_eq!(k.name, "eterne-web");
        assert_eq!(k.algorithm, "hmac-sha256");
        assert_eq!(k.secret, b"secret-secret");
        assert!(k.signer().is_ok());
        // The secret is not shown by Debug.
        assert!(!format!("{k:?}").contains("c2Vj"));
    }

    #[test]
    fn comments_and_other_clauses_are_skipped() {
        let text = "/* a\n comment */ options { x; };\n// k\nkey k1 { secret \"YWJj\"; algorithm HMAC-SHA512; };";
        let k = parse_key_file(text).unwrap();
        assert_eq!(
            (k.name.as_str(), k.algorithm.as_str()),
            ("k1", "hmac-sha512")
        );
    }

    #[test]
    fn what_is_wrong_with_a_key_is_said() {
        assert!(parse_key_file("").unwrap_err().contains("no `key"));
        assert!(parse_key_file("key k { algorithm hmac-sha256; };")
            .unwrap_err()
            .contains("no `secret`"));
        assert!(Key::new("k", "hmac-md5", "YWJj")
            .unwrap_err()
            .contains("not supported"));
        assert!(Key::new("k", "hmac-sha256", "not base64!")
            .unwrap_err()
            .contains("base64"));
        assert!(parse_key_file("key \"k\" { secret \"x")
            .unwrap_err()
            .contains("not closed"));
    }
}

//! What the `share` agent reads and writes in Samba's own formats, as pure functions: the
//! share's name and options as the parameters give them, whether an `smb.conf` enables
//! registry shares, the section `net conf showshare` prints, the section written for
//! `net conf import`, and what the output of `net` and `smbcontrol` means.

/// The share sections Samba reserves (case-insensitive): they are not shares a client maps.
const RESERVED: &[&str] = &["global", "homes", "printers", "print$", "ipc$"];

/// The longest share name Windows clients accept.
pub(super) const SHARE_NAME_MAX: usize = 80;

/// Characters Windows forbids in a share name, plus `%` (Samba would expand it as a
/// variable) and `#` / `;` (the comment marks of smb.conf).
const FORBIDDEN: &str = "\\/[]:|<>+=;,*?\"%#";

/// Why `s` is not a share name we define, if it is not.
pub(super) fn share_name_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.chars().count() > SHARE_NAME_MAX {
        return Some(format!("is longer than {SHARE_NAME_MAX} characters"));
    }
    if s.trim() != s {
        return Some("begins or ends with a space".into());
    }
    if s.starts_with('-') {
        return Some("begins with '-' (net and smbcontrol would take it for an option)".into());
    }
    if let Some(c) = s.chars().find(|c| c.is_control() || FORBIDDEN.contains(*c)) {
        return Some(format!("contains {c:?}, which a share name cannot hold"));
    }
    if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)) {
        return Some(format!("{s:?} is a section Samba reserves, not a share"));
    }
    None
}

/// A parameter name as Samba compares them: case and spaces do not count
/// (`"Read Only"` is `readonly`).
pub(super) fn key_id(key: &str) -> String {
    key.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Share parameters the agent's own parameters set, with every Samba synonym of each: an
/// option may not set them behind the agent's back.
const OWN: &[(&str, &str)] = &[
    ("path", "path"),
    ("directory", "path"),
    ("comment", "comment"),
    ("readonly", "read_only"),
    ("writeable", "read_only"),
    ("writable", "read_only"),
    ("writeok", "read_only"),
    ("guestok", "guest_ok"),
    ("public", "guest_ok"),
    ("validusers", "valid_users"),
];

/// Why a value cannot go into a share section, if it cannot: smb.conf has one value per
/// line, and a trailing backslash continues it on the next.
pub(super) fn value_problem(v: &str) -> Option<String> {
    if v.contains(['\n', '\r', '\0']) {
        return Some("contains a line break or NUL".into());
    }
    if v.trim_end().ends_with('\\') {
        return Some("ends with a backslash (smb.conf would join the next line to it)".into());
    }
    None
}

/// `options`: `"key = value; key = value"`, `;` apart as smb.conf itself reads `;` as the
/// start of a comment (so no value can hold one). Keys are kept as written (Samba accepts
/// any spelling of a name); empty items are skipped.
pub(super) fn parse_options(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in s.split(';').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!(
                "{item:?} is not key = value; write share parameters `;`-separated, e.g. \
                 \"browseable = no; create mask = 0640\""
            ));
        };
        let (k, v) = (k.trim(), v.trim());
        let bad_key = k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " :_-".contains(c));
        if bad_key {
            return Err(format!("{k:?} is not a Samba parameter name"));
        }
        if let Some((_, param)) = OWN.iter().find(|(id, _)| *id == key_id(k)) {
            return Err(format!(
                "{k:?} is set by the agent's own parameter {param:?}: give it there"
            ));
        }
        if out.iter().any(|(o, _)| key_id(o) == key_id(k)) {
            return Err(format!("{k:?} is given twice"));
        }
        if let Some(p) = value_problem(v) {
            return Err(format!("the value of {k:?} {p}"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Whether a boolean of smb.conf is true.
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "yes" | "true" | "1" | "on"
    )
}

/// What an `smb.conf` says of registry shares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Registry {
    /// Enabled, by this line (as `key = value`, normalized).
    Enabled(&'static str),
    /// Not enabled in this file; `includes`: it includes other files, which are not read.
    Disabled {
        /// The file has `include =` lines naming files.
        includes: bool,
    },
}

/// Whether the `[global]` section of an smb.conf's text enables registry shares:
/// `registry shares = yes`, `include = registry` or `config backend = registry`. Lines
/// before any section are global, as Samba reads them; a later `registry shares` overrides
/// an earlier one; a trailing backslash continues a line. Included files are not followed.
pub(super) fn registry_enabled(text: &str) -> Registry {
    let mut global = true;
    let (mut shares, mut include, mut backend, mut includes) = (false, false, false, false);
    for line in logical_lines(text) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let section = rest.split(']').next().unwrap_or("").trim();
            global = section.eq_ignore_ascii_case("global");
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if !global {
            continue;
        }
        let v = v.trim();
        match key_id(k).as_str() {
            "registryshares" => shares = truthy(v),
            "include" if v.eq_ignore_ascii_case("registry") => include = true,
            "include" => includes = true,
            "configbackend" => backend = v.eq_ignore_ascii_case("registry"),
            _ => {}
        }
    }
    if backend {
        Registry::Enabled("config backend = registry")
    } else if include {
        Registry::Enabled("include = registry")
    } else if shares {
        Registry::Enabled("registry shares = yes")
    } else {
        Registry::Disabled { includes }
    }
}

/// Lines with their backslash continuations joined.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for raw in text.lines() {
        match raw.trim_end().strip_suffix('\\') {
            Some(part) => cur.push_str(part),
            None => {
                cur.push_str(raw);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A share section: its name and its parameters in order, keys as Samba stored them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Section {
    /// The share's name, as the registry spells it.
    pub(super) name: String,
    /// `(key, value)`, in order.
    pub(super) params: Vec<(String, String)>,
}

impl Section {
    /// The value of `key` (any spelling), if set.
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        let id = key_id(key);
        self.params
            .iter()
            .find(|(k, _)| key_id(k) == id)
            .map(|(_, v)| v.as_str())
    }

    /// The section as smb.conf text, for `net conf import`.
    pub(super) fn render(&self) -> String {
        let mut s = format!("[{}]\n", self.name);
        for (k, v) in &self.params {
            s.push_str(&format!("\t{k} = {v}\n"));
        }
        s
    }
}

/// The section `net conf showshare` printed (`[name]`, then `\tkey = value` lines); `None`
/// if it printed none.
pub(super) fn parse_showshare(text: &str) -> Option<Section> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let name = lines
        .next()?
        .strip_prefix('[')?
        .strip_suffix(']')?
        .to_string();
    let params = lines
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(Section { name, params })
}

/// `net conf` said the share is not in the registry.
pub(super) fn no_such_share(output: &str) -> bool {
    output.contains("SBC_ERR_NO_SUCH_SERVICE")
}

/// `net conf import` refused a parameter Samba does not know (or one not allowed in a
/// share).
pub(super) fn invalid_param(output: &str) -> bool {
    output.contains("SBC_ERR_INVALID_PARAM")
}

/// `smbcontrol` found no smbd to talk to (no pid file, or no process holds it).
pub(super) fn smbd_absent(output: &str) -> bool {
    output.contains("Can't find pid")
}

/// Output without Samba's chatter on every run in a namespace or host without a broadcast
/// interface ("WARNING: no network interfaces found"), which would crowd out the reason.
pub(super) fn without_chatter(output: &str) -> String {
    output
        .lines()
        .filter(|l| !l.starts_with("WARNING: no network interfaces found"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_names_are_what_clients_can_map() {
        assert_eq!(share_name_problem("data"), None);
        assert_eq!(share_name_problem("Team Files$"), None);
        assert_eq!(share_name_problem("données"), None);
        for bad in [
            "", " data", "-x", "a/b", "a\\b", "a:b", "a;b", "a%U", "[x]", "a\nb", "a,b",
        ] {
            assert!(share_name_problem(bad).is_some(), "{bad:?} accepted");
        }
        for reserved in ["global", "GLOBAL", "homes", "printers", "IPC$", "print$"] {
            let p = share_name_problem(reserved).expect("reserved");
            assert!(p.contains("reserves"), "{p}");
        }
        assert!(share_name_problem(&"x".repeat(81)).is_some());
        assert_eq!(share_name_problem(&"x".repeat(80)), None);
    }

    #[test]
    fn options_are_semicolon_separated_and_keep_off_the_agents_own() {
        assert_eq!(
            parse_options("browseable = no;  create mask=0640 ; ; fruit:metadata = stream"),
            Ok(vec![
                ("browseable".into(), "no".into()),
                ("create mask".into(), "0640".into()),
                ("fruit:metadata".into(), "stream".into()),
            ])
        );
        assert_eq!(parse_options(""), Ok(vec![]));
        let err = |s: &str| parse_options(s).unwrap_err();
        assert!(err("browseable").contains("not key = value"));
        assert!(err("Read Only = yes").contains("\"read_only\""));
        assert!(err("writable = yes").contains("\"read_only\""));
        assert!(err("public = yes").contains("\"guest_ok\""));
        assert!(err("directory = /x").contains("\"path\""));
        assert!(err("ValidUsers = bob").contains("\"valid_users\""));
        assert!(err("browseable = no; Browse Able = yes").contains("twice"));
        assert!(err("create[mask] = 1").contains("not a Samba parameter"));
        assert!(err("comment2 = a\\").contains("backslash"));
    }

    #[test]
    fn registry_shares_are_found_in_the_global_section_only() {
        let on = "# c\n[global]\n   Registry Shares = Yes\n[data]\n path = /x\n";
        assert_eq!(
            registry_enabled(on),
            Registry::Enabled("registry shares = yes")
        );
        assert_eq!(
            registry_enabled("[global]\ninclude = registry\n"),
            Registry::Enabled("include = registry")
        );
        assert_eq!(
            registry_enabled("[global]\nconfig backend = registry\n"),
            Registry::Enabled("config backend = registry")
        );
        // Before any section is global, as Samba reads it.
        assert_eq!(
            registry_enabled("registryshares = true\n[x]\n"),
            Registry::Enabled("registry shares = yes")
        );
        // In a share, commented out, overridden later, or continued: not enabled.
        for off in [
            "[global]\n[data]\nregistry shares = yes\n",
            "[global]\n# registry shares = yes\n; include = registry\n",
            "[global]\nregistry shares = yes\nregistry shares = no\n",
            "[global]\nworkgroup = W \\\n registry shares = yes\n",
            "",
        ] {
            assert_eq!(
                registry_enabled(off),
                Registry::Disabled { includes: false },
                "{off:?}"
            );
        }
        assert_eq!(
            registry_enabled("[global]\ninclude = /etc/samba/local.conf\n"),
            Registry::Disabled { includes: true }
        );
    }

    #[test]
    fn showshare_output_is_a_section_and_renders_back() {
        let out =
            "[Data]\n\tpath = /srv/data\n\tcomment = a = b\n\tread only = no\n\tguest ok = yes\n";
        let s = parse_showshare(out).expect("a section");
        assert_eq!(s.name, "Data");
        assert_eq!(s.get("Path"), Some("/srv/data"));
        assert_eq!(s.get("comment"), Some("a = b"));
        assert_eq!(s.get("readonly"), Some("no"));
        assert_eq!(s.get("valid users"), None);
        assert_eq!(s.render(), out);
        assert_eq!(parse_showshare(""), None);
        assert_eq!(
            parse_showshare("error getting share parameters: SBC_ERR_NO_SUCH_SERVICE"),
            None
        );
    }

    #[test]
    fn samba_outputs_are_told_apart() {
        let missing = "WARNING: no network interfaces found\nerror getting share parameters: SBC_ERR_NO_SUCH_SERVICE";
        assert!(no_such_share(missing));
        assert_eq!(
            without_chatter(missing),
            "error getting share parameters: SBC_ERR_NO_SUCH_SERVICE"
        );
        assert!(invalid_param(
            "error importing service x: SBC_ERR_INVALID_PARAM"
        ));
        assert!(smbd_absent("Can't find pid for destination 'smbd'"));
        assert!(!smbd_absent("PONG from pid 42"));
    }
}

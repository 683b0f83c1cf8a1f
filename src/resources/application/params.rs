//! The application's parameters: the names it knows ([`PARAMS`]), their parsing into
//! [`Params`] and the SIGTERM wait of `stop`. Syntax only: nothing here looks at the node
//! (no file, program or user is looked up), so `eternectl config check` gives the same answer
//! everywhere; [`Agent::validate`](crate::resources::Agent::validate) checks the node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::checks::{parse_host_port, parse_http_url, Check};
use crate::policy::spec::ResourceSpec;
use crate::resources::{known_params, lookup, param_err, AgentError};

/// Every parameter the agent knows; anything else is a typo and refused.
pub const PARAMS: &[&str] = &[
    "command",
    "args",
    "env",
    "cwd",
    "user",
    "pidfile",
    "log_file",
    "check_command",
    "check_tcp",
    "check_http",
    "deep_check_command",
    "deep_check_tcp",
    "deep_check_http",
    "stop_timeout_ms",
];

/// Parameters, parsed.
#[derive(Debug, Clone)]
pub(super) struct Params {
    /// Program and arguments (`command` then `args`); never empty.
    pub(super) argv: Vec<String>,
    /// Extra environment.
    pub(super) env: Vec<(String, String)>,
    /// Working directory.
    pub(super) cwd: Option<PathBuf>,
    /// Run as.
    pub(super) user: Option<String>,
    /// Our pidfile.
    pub(super) pidfile: PathBuf,
    /// stdout/stderr go here (appended), else nowhere.
    pub(super) log_file: Option<PathBuf>,
    /// The quick health check.
    pub(super) quick: Option<Check>,
    /// The deep health check.
    pub(super) deep: Option<Check>,
}

impl Params {
    pub(super) fn parse(spec: &ResourceSpec, run_dir: &Path) -> Result<Self, AgentError> {
        let name = spec.name.as_str();
        let err = |param: &str, problem: String| param_err(name, param, problem);
        known_params(spec, "an application", PARAMS)?;
        let words = |param: &str| -> Result<Vec<String>, AgentError> {
            match lookup(spec, param) {
                None => Ok(Vec::new()),
                Some(v) => shell_words::split(v).map_err(|e| {
                    err(
                        param,
                        format!("{v:?} cannot be split into words ({e}); balance the quotes"),
                    )
                }),
            }
        };
        let mut argv = words("command")?;
        if argv.is_empty() {
            return Err(err(
                "command",
                "is missing or empty; give the program and its arguments, e.g. \
                 command = \"/usr/bin/redis-server /etc/redis.conf\""
                    .to_string(),
            ));
        }
        argv.extend(words("args")?);
        let mut env = Vec::new();
        for word in words("env")? {
            let Some((k, v)) = word.split_once('=').filter(|(k, _)| is_env_name(k)) else {
                return Err(err(
                    "env",
                    format!("{word:?} is not NAME=VALUE; write words like \"A=1 B='two words'\""),
                ));
            };
            env.push((k.to_string(), v.to_string()));
        }
        let abs = |param: &str| -> Result<Option<PathBuf>, AgentError> {
            match lookup(spec, param) {
                None => Ok(None),
                Some(v) if v.starts_with('/') && !v.contains('\0') => Ok(Some(PathBuf::from(v))),
                Some(v) => Err(err(
                    param,
                    format!("{v:?} is not an absolute path; give one starting with /"),
                )),
            }
        };
        let cwd = abs("cwd")?;
        let log_file = abs("log_file")?;
        let pidfile = match abs("pidfile")? {
            Some(p) => p,
            None if !name.is_empty() && !name.contains('/') && name != ".." && name != "." => {
                run_dir.join(format!("{name}.pid"))
            }
            None => {
                return Err(err(
                    "pidfile",
                    "the resource's name cannot name a file; set pidfile to an absolute path"
                        .to_string(),
                ))
            }
        };
        let user = match lookup(spec, "user").map(str::trim) {
            None => None,
            Some(u) if !u.is_empty() && !u.contains(['\0', ' ', ':', '/']) => Some(u.to_string()),
            Some(u) => {
                return Err(err(
                    "user",
                    format!("{u:?} is not a user name; give one like \"postgres\""),
                ))
            }
        };
        let quick = parse_depth(spec, ["check_command", "check_tcp", "check_http"])?;
        let deep = parse_depth(
            spec,
            ["deep_check_command", "deep_check_tcp", "deep_check_http"],
        )?;
        Ok(Params {
            argv,
            env,
            cwd,
            user,
            pidfile,
            log_file,
            quick,
            deep,
        })
    }
}

/// How long `stop` waits after SIGTERM before SIGKILL: the `stop_timeout_ms` parameter, which
/// must be below the resource's `stop_timeout_ms`, else half of the latter.
pub(super) fn term_wait(spec: &ResourceSpec) -> Result<Duration, AgentError> {
    let stop_ms = u64::from(spec.stop_timeout_ms);
    let ms = match lookup(spec, "stop_timeout_ms") {
        None => (stop_ms / 2).max(1),
        Some(v) => {
            let ms: u64 = v.trim().parse().ok().filter(|&ms| ms > 0).ok_or_else(|| {
                param_err(
                    &spec.name,
                    "stop_timeout_ms",
                    format!("{v:?} is not a positive number of milliseconds"),
                )
            })?;
            if stop_ms > 0 && ms >= stop_ms {
                return Err(param_err(
                    &spec.name,
                    "stop_timeout_ms",
                    format!(
                        "{ms} ms is not below the resource's stop_timeout_ms ({stop_ms} ms): \
                         the stop would be cut off before SIGKILL is sent; give a smaller \
                         value or raise the resource's stop_timeout_ms"
                    ),
                ));
            }
            ms
        }
    };
    Ok(Duration::from_millis(ms))
}

/// The check of one depth from its three parameters (command, tcp, http): at most one.
fn parse_depth(spec: &ResourceSpec, keys: [&str; 3]) -> Result<Option<Check>, AgentError> {
    let given: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| lookup(spec, k).is_some())
        .collect();
    if given.len() > 1 {
        return Err(param_err(
            &spec.name,
            given[1],
            format!(
                "{} are both set; give one check per depth",
                given.join(" and ")
            ),
        ));
    }
    let Some(&key) = given.first() else {
        return Ok(None);
    };
    let v = lookup(spec, key).unwrap_or_default();
    let err = |problem: String| param_err(&spec.name, key, problem);
    let check = if key == keys[0] {
        let argv = shell_words::split(v)
            .map_err(|e| err(format!("{v:?} cannot be split into words ({e})")))?;
        if argv.is_empty() {
            return Err(err(
                "is empty; give a program, e.g. \"/usr/bin/pg_isready -q\"".to_string(),
            ));
        }
        Check::Command(argv)
    } else if key == keys[1] {
        let (host, port) = parse_host_port(v, None).map_err(err)?;
        Check::Tcp { host, port }
    } else {
        Check::Http(parse_http_url(v).map_err(err)?)
    };
    Ok(Some(check))
}

/// The parameter the quick check came from (for errors about it).
pub(super) fn quick_param(c: &Option<Check>) -> &'static str {
    match c {
        Some(Check::Tcp { .. }) => "check_tcp",
        Some(Check::Http(_)) => "check_http",
        _ => "check_command",
    }
}

/// The parameter the deep check came from (for errors about it).
pub(super) fn deep_param(c: &Option<Check>) -> &'static str {
    match c {
        Some(Check::Tcp { .. }) => "deep_check_tcp",
        Some(Check::Http(_)) => "deep_check_http",
        _ => "deep_check_command",
    }
}

fn is_env_name(k: &str) -> bool {
    let mut chars = k.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::application::checks::HttpTarget;
    use crate::resources::application::Application;
    use crate::resources::AgentContext;
    use tokio::sync::mpsc;

    fn spec(params: &[(&str, &str)]) -> ResourceSpec {
        crate::policy::testutil::agent_resource("app", "application", params)
    }

    fn parse(params: &[(&str, &str)]) -> Result<Params, AgentError> {
        Params::parse(&spec(params), Path::new("/run/eterne"))
    }

    fn param_of(e: AgentError) -> String {
        match e {
            AgentError::Param {
                resource, param, ..
            } => {
                assert_eq!(resource, "app");
                param
            }
            other => panic!("not a parameter error: {other}"),
        }
    }

    #[test]
    fn command_args_env_split_like_a_shell() {
        let p = parse(&[
            ("command", "/bin/prog --name 'two words' \"x y\""),
            ("args", "-v a\\ b"),
            ("env", "A=1 B='two words' C="),
        ])
        .unwrap();
        assert_eq!(
            p.argv,
            ["/bin/prog", "--name", "two words", "x y", "-v", "a b"]
        );
        assert_eq!(
            p.env,
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "two words".to_string()),
                ("C".to_string(), String::new())
            ]
        );
        assert_eq!(p.pidfile, Path::new("/run/eterne/app.pid"));
        assert_eq!(p.quick, None);
    }

    #[test]
    fn bad_params_name_the_parameter() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "command"),
            (&[("command", "  ")], "command"),
            (&[("command", "/bin/x 'unbalanced")], "command"),
            (&[("command", "/bin/x"), ("comand", "/bin/y")], "comand"),
            (&[("command", "/bin/x"), ("env", "NOEQUALS")], "env"),
            (&[("command", "/bin/x"), ("env", "1A=2")], "env"),
            (&[("command", "/bin/x"), ("cwd", "relative/dir")], "cwd"),
            (&[("command", "/bin/x"), ("pidfile", "x.pid")], "pidfile"),
            (&[("command", "/bin/x"), ("user", "a b")], "user"),
            (
                &[("command", "/bin/x"), ("check_tcp", "localhost")],
                "check_tcp",
            ),
            (
                &[("command", "/bin/x"), ("check_tcp", "h:99999")],
                "check_tcp",
            ),
            (
                &[("command", "/bin/x"), ("check_http", "https://h/")],
                "check_http",
            ),
            (
                &[("command", "/bin/x"), ("deep_check_http", "ftp://h/")],
                "deep_check_http",
            ),
            (
                &[
                    ("command", "/bin/x"),
                    ("check_tcp", "h:1"),
                    ("check_http", "http://h/"),
                ],
                "check_http",
            ),
        ];
        for (params, want) in cases {
            let e = parse(params).expect_err(&format!("{params:?} must be refused"));
            let msg = e.to_string();
            assert_eq!(param_of(e), *want, "{params:?}: {msg}");
        }
    }

    #[test]
    fn stop_timeout_must_leave_room_for_sigkill() {
        let (tx, _rx) = mpsc::channel(1);
        let ctx = AgentContext {
            group: 0,
            resource: 0,
            name: "app".into(),
            run_dir: "/run/eterne".into(),
            events: tx,
        };
        let ok = Application::new(&spec(&[("command", "/bin/x")]), &ctx).unwrap();
        assert_eq!(ok.term_wait, Duration::from_millis(2000));
        for bad in ["4000", "0", "soon"] {
            let e = Application::new(
                &spec(&[("command", "/bin/x"), ("stop_timeout_ms", bad)]),
                &ctx,
            )
            .unwrap_err();
            assert_eq!(param_of(e), "stop_timeout_ms", "{bad}");
        }
    }

    #[test]
    fn checks_parse() {
        let p = parse(&[
            ("command", "/bin/x"),
            ("check_tcp", "[::1]:5432"),
            ("deep_check_http", "http://db.local:8080/health?full=1"),
        ])
        .unwrap();
        assert_eq!(
            p.quick,
            Some(Check::Tcp {
                host: "::1".into(),
                port: 5432
            })
        );
        assert_eq!(
            p.deep,
            Some(Check::Http(HttpTarget {
                host: "db.local".into(),
                port: 8080,
                authority: "db.local:8080".into(),
                path: "/health?full=1".into(),
            }))
        );
        let t = parse_http_url("http://[::1]").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 80, "/"));
    }
}

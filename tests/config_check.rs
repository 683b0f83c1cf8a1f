//! `cluster.toml` loading, validation and resolution, end to end: the example configs under
//! `config/` must load, every file under `tests/configs/broken/` must fail with the error its
//! first lines announce (`# expect: …`, `# path: …`), and `eternectl config check` must exit
//! accordingly.

use std::path::{Path, PathBuf};
use std::process::Command;

use eterne::config::{ClusterConfig, ConfigErrors};
use eterne::policy::spec::{GroupKind, PartitionPolicy};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

fn load(name: &str) -> ClusterConfig {
    let path = root().join("config").join(name);
    ClusterConfig::load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()))
}

#[test]
fn every_example_loads_validates_and_resolves() {
    let files = toml_files(&root().join("config"));
    assert!(
        files.len() >= 5,
        "expected the five example configs, found {files:?}"
    );
    for path in files {
        let config =
            ClusterConfig::load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
        let spec = config.spec();
        assert!(!spec.nodes.is_empty(), "{}", path.display());
        for g in &spec.groups {
            for (i, r) in g.resources.iter().enumerate() {
                for &d in &r.depends_on {
                    assert!(
                        usize::from(d) < i,
                        "{}: {} depends on a later resource",
                        path.display(),
                        r.name
                    );
                }
            }
        }
    }
}

#[test]
fn two_node_witness_resolves_as_described() {
    let spec = load("two-node-witness.toml").spec();
    let names: Vec<&str> = spec.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "tiebreaker"]);
    let witness = &spec.nodes[2];
    assert!(witness.witness, "the witness is the last node");
    assert_eq!(witness.capacity, 0);
    assert!(!spec.nodes[0].witness);
    assert_eq!(spec.nodes[0].capacity, u32::MAX, "no capacity = unlimited");
    assert_eq!(
        spec.partition,
        PartitionPolicy::Quorum,
        "2 nodes + witness = 3 voters"
    );
    // Network paths first, then the disk path.
    let paths: Vec<&str> = spec.paths.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(paths, ["private-a", "private-b", "quorum-disk"]);
    assert_eq!(spec.timing.max_clock_drift_ppm, 10_000);
    let db = &spec.groups[0];
    let order: Vec<&str> = db.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["db-lock", "db-fs", "db-app", "db-ip"]);
    assert_eq!(db.resources[3].depends_on, [2]);
    assert_eq!(db.nodes, [0, 1]);
    // Defaults and overrides of health checks.
    assert_eq!(db.resources[2].monitor_quick.interval_ms, 1000);
    assert_eq!(db.resources[0].monitor_quick.interval_ms, 2000);
}

#[test]
fn dependencies_are_sorted_dependencies_first_stably() {
    let text = r#"
[cluster]
name = "order"
[[path]]
name = "lan"
kind = "network"
[[node]]
name = "a"
addresses = { lan = "10.0.0.1:7400" }
[[group]]
name = "g"
nodes = ["a"]
  [[group.resource]]
  name = "ip"
  type = "ip"
  params = { address = "192.0.2.1/24", nics = "eth0" }
  depends_on = ["app", "fs"]
  [[group.resource]]
  name = "app"
  type = "application"
  params = { command = "/usr/bin/sleep 1000" }
  depends_on = ["fs"]
  [[group.resource]]
  name = "other"
  type = "application"
  params = { command = "/usr/bin/sleep 1000" }
  [[group.resource]]
  name = "fs"
  type = "filesystem"
  params = { device = "/dev/sdb1", directory = "/srv/data" }
"#;
    let spec = ClusterConfig::from_str(text, "order.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .spec();
    let g = &spec.groups[0];
    let order: Vec<&str> = g.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["other", "fs", "app", "ip"]);
    assert_eq!(g.resources[2].depends_on, [1]);
    assert_eq!(g.resources[3].depends_on, [1, 2]);
    assert_eq!(
        spec.partition,
        PartitionPolicy::Quorum,
        "one node is its own majority"
    );
}

#[test]
fn m_to_n_keeps_capacity_load_fencing_and_two_way_anti_affinity() {
    let spec = load("m-to-n.toml").spec();
    assert_eq!(spec.partition, PartitionPolicy::Fence);
    assert_eq!(spec.nodes[2].capacity, 50);
    let primary = spec
        .group_id("db-primary")
        .unwrap_or_else(|| panic!("db-primary"));
    let replica = spec
        .group_id("db-replica")
        .unwrap_or_else(|| panic!("db-replica"));
    assert_eq!(spec.groups[usize::from(primary)].anti_affinity, [replica]);
    assert_eq!(spec.groups[usize::from(replica)].anti_affinity, [primary]);
    assert_eq!(spec.groups[usize::from(primary)].load, 60);
}

#[test]
fn clone_group_and_schedules_resolve() {
    let spec = load("clone-group.toml").spec();
    assert_eq!(spec.groups[0].kind, GroupKind::Clone { copies: Some(3) });
    assert!(spec.groups[1].is_exclusive());
    let spec = load("three-node.toml").spec();
    assert_eq!(spec.schedules.len(), 2);
    assert_eq!(spec.schedules[0].to, spec.node_id("n3"));
    assert_eq!(spec.schedules[1].to, None);
    assert_eq!(spec.schedules[0].cron.to_string(), "0 3 * * sun");
}

#[test]
fn digest_ignores_comments_whitespace_order_and_spelled_out_defaults() {
    let path = root().join("config/two-node-witness.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let base = ClusterConfig::from_str(&text, "a.toml").unwrap_or_else(|e| panic!("{e}"));
    // Strip comments, add blank lines, spell out defaults, reorder [cluster] keys.
    let stripped: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n\n"))
        .collect();
    let with_defaults = stripped.replacen(
        "[cluster]\n\nname = \"db-pair\"",
        "[cluster]\nno_automatic_failover_across_partition = false\nname = \"db-pair\"\n[timing]\nlease_ms = 150\n[monitor]\nstart_timeout_ms = 30000",
        1,
    );
    assert_ne!(with_defaults, stripped, "the test's edit must apply");
    let same = ClusterConfig::from_str(&with_defaults, "b.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(base.digest(), same.digest());
    assert_eq!(base.spec().digest, base.digest());
    let changed = text.replacen("max_restarts = 3", "max_restarts = 4", 1);
    let other = ClusterConfig::from_str(&changed, "c.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(base.digest(), other.digest());
}

/// The `# expect:` and `# path:` header lines of a broken config.
fn header(text: &str, key: &str) -> Option<String> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .find_map(|l| l.strip_prefix(&format!("# {key}: ")).map(str::to_string))
}

#[test]
fn every_broken_config_fails_with_its_expected_error() {
    let files = toml_files(&root().join("tests/configs/broken"));
    assert!(
        files.len() >= 30,
        "expected one broken config per rule, found {}",
        files.len()
    );
    for path in files {
        // Some are not UTF-8 on purpose; their headers are.
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&bytes);
        let expect = header(&text, "expect")
            .unwrap_or_else(|| panic!("{}: no `# expect:` first line", path.display()));
        let errors: ConfigErrors = match ClusterConfig::load(&path) {
            Ok(_) => panic!(
                "{}: loaded, expected an error containing {expect:?}",
                path.display()
            ),
            Err(e) => e,
        };
        let hit = errors
            .errors
            .iter()
            .find(|e| e.to_string().contains(&expect));
        let hit = hit.unwrap_or_else(|| {
            panic!(
                "{}: no error contains {expect:?}; got:\n{errors}",
                path.display()
            )
        });
        if let Some(field) = header(&text, "path") {
            assert_eq!(hit.path, field, "{}: field path of {hit}", path.display());
        }
        let shown = hit.to_string();
        let file = path.display().to_string();
        assert!(
            shown.starts_with(&file),
            "{shown} should start with the file name"
        );
        assert!(
            !hit.fix.is_empty(),
            "{}: every error says how to fix it",
            path.display()
        );
    }
}

#[test]
fn several_errors_are_all_reported_in_file_order() {
    let path = root().join("tests/configs/several-errors.toml");
    let errors = match ClusterConfig::load(&path) {
        Ok(_) => panic!("several-errors.toml loaded"),
        Err(e) => e,
    };
    let text = errors.to_string();
    for want in [
        "timing → lease_renew_ms: lease_renew_ms = 100 is not below half of lease_ms = 150",
        "node \"b\" → addresses → lan: address \"10.0.0.2\" is not HOST:PORT",
        "group \"g\" → nodes: unknown node \"zz\"",
        "group \"g\" → resource \"app\" → type: unknown resource type \"aplication\"",
        "group \"g\" → resource \"app\" → depends_on: unknown resource \"nope\"",
        "schedule[0] → cron: minute field \"61\": out of range 0-59",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    assert_eq!(errors.errors.len(), 6, "{text}");
    let lines: Vec<u32> = errors.errors.iter().filter_map(|e| e.line).collect();
    assert_eq!(
        lines.len(),
        errors.errors.len(),
        "every error here has a line: {text}"
    );
    assert!(
        lines.windows(2).all(|w| w[0] <= w[1]),
        "file order: {lines:?}"
    );
    assert!(
        text.contains("several-errors.toml:6: timing → lease_renew_ms"),
        "{text}"
    );
}

#[test]
fn a_syntax_error_has_a_line_number() {
    let text = "[cluster]\nname = \"x\"\n\n[[node]]\nname = = \"a\"\n";
    let errors = match ClusterConfig::from_str(text, "syntax.toml") {
        Ok(_) => panic!("bad TOML loaded"),
        Err(e) => e,
    };
    assert_eq!(errors.errors.len(), 1);
    let e = &errors.errors[0];
    assert_eq!(e.line, Some(5), "{e}");
    assert!(
        e.to_string()
            .starts_with("syntax.toml:5: TOML syntax error"),
        "{e}"
    );
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let errors = match ClusterConfig::load("/nonexistent/cluster.toml") {
        Ok(_) => panic!("loaded a missing file"),
        Err(e) => e,
    };
    assert!(
        errors.to_string().contains("cannot read the file"),
        "{errors}"
    );
}

#[test]
fn eternectl_config_check_exit_codes() {
    let exe = env!("CARGO_BIN_EXE_eternectl");
    let good = root().join("config/three-node.toml");
    let out = Command::new(exe)
        .args(["config", "check"])
        .arg(&good)
        .output();
    let out = out.unwrap_or_else(|e| panic!("running eternectl: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(": ok — 3 nodes, 2 groups, 4 resources, digest 0x"),
        "{stdout}"
    );

    let bad = root().join("tests/configs/several-errors.toml");
    let out = Command::new(exe)
        .args(["config", "check"])
        .arg(&bad)
        .output();
    let out = out.unwrap_or_else(|e| panic!("running eternectl: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("unknown node \"zz\""), "{stderr}");
    assert!(stderr.trim_end().ends_with("6 errors"), "{stderr}");
}

/// `eternectl config check` refuses a broken share at its field and line (a relative path,
/// a misspelt parameter), and passes the same share once it is right: the share agent
/// exists, so the type is no longer refused as a whole.
#[test]
fn eternectl_config_check_refuses_a_broken_share_at_its_field() {
    let exe = env!("CARGO_BIN_EXE_eternectl");
    let check = |path: &Path| {
        let out = Command::new(exe)
            .args(["config", "check"])
            .arg(path)
            .output()
            .unwrap_or_else(|e| panic!("running eternectl: {e}"));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let broken = root().join("tests/configs/broken");
    for (file, field) in [
        (
            "share-relative-path.toml",
            "params → path: \"srv/data\" is not an absolute",
        ),
        (
            "share-unknown-parameter.toml",
            "params → read_olny: unknown parameter of a share",
        ),
    ] {
        let (code, text) = check(&broken.join(file));
        assert_eq!(code, Some(1), "{text}");
        let at = format!("{file}:30: group \"files\" → resource \"files-share\" → {field}");
        assert!(text.contains(&at), "expected {at:?} in:\n{text}");
    }
    let fixed = std::fs::read_to_string(broken.join("share-relative-path.toml"))
        .unwrap()
        .replace(
            "path = \"srv/data\"",
            "path = \"/srv/data\", read_only = \"true\"",
        );
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("share.toml");
    std::fs::write(&good, fixed).unwrap();
    let (code, text) = check(&good);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(": ok — 2 nodes + witness, 1 groups, 1 resources"),
        "{text}"
    );
}

#[test]
fn fencing_fields_have_pacemakers_defaults_and_config_check_finds_the_agent() {
    use eterne::config::{FenceActionConfig, FenceTargetArg};
    let f = load("m-to-n.toml").fencing.expect("m-to-n has [fencing]");
    assert_eq!(f.action, FenceActionConfig::Reboot, "Pacemaker's default");
    assert_eq!(f.timeout_ms, 60_000);
    assert_eq!(
        f.monitor_interval_ms, 60_000,
        "the device is checked every minute"
    );
    assert_eq!(f.target_arg, FenceTargetArg::Plug);

    let base = std::fs::read_to_string(root().join("config/three-node.toml")).unwrap();
    let dir = std::env::temp_dir().join(format!("cc-fence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = env!("CARGO_BIN_EXE_eternectl");
    let check = |agent: &str| {
        let file = dir.join("cluster.toml");
        let text = format!(
            "{base}\n[fencing]\nagent = \"{agent}\"\naction = \"off\"\ntimeout_ms = 5000\n\
             targets = {{ n1 = \"plug-1\" }}\ndelay_ms = {{ n1 = 2000 }}\n"
        );
        std::fs::write(&file, text).unwrap();
        let config = ClusterConfig::load(&file).unwrap_or_else(|e| panic!("{e}"));
        let f = config.fencing.clone().unwrap();
        assert_eq!(f.action, FenceActionConfig::Off);
        assert_eq!(f.delay_ms.get("n1"), Some(&2000));
        let out = Command::new(exe)
            .args(["config", "check"])
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = check("/bin/true");
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = check("fence_surely_not_installed");
    assert_eq!(
        code,
        Some(0),
        "a warning: config check runs anywhere; {stderr}"
    );
    assert!(
        stderr.contains("warning: fencing → agent") && stderr.contains("not found"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Any node may become the coordinator, and the coordinator runs the fence agent: `eterned`
/// refuses to start (exit 2, a config error) where it cannot find it, naming the field.
#[test]
fn eterned_refuses_to_start_without_its_fence_agent() {
    let base = std::fs::read_to_string(root().join("config/three-node.toml")).unwrap();
    let dir = std::env::temp_dir().join(format!("cc-nofence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("cluster.toml");
    std::fs::write(
        &file,
        format!("{base}\n[fencing]\nagent = \"fence_surely_missing\"\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_eterned"))
        .arg("--config")
        .arg(&file)
        .args(["--node", "n1", "--no-realtime"])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--run-dir")
        .arg(dir.join("run"))
        .arg("--control-socket")
        .arg(dir.join("control.sock"))
        .arg("--events")
        .arg(dir.join("events.jsonl"))
        .arg("--tls-dir")
        .arg(dir.join("tls"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
        panic!("eterned started without its fence agent");
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("fencing → agent") && stderr.contains("not starting"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config head with three nodes on one path, for generated configs.
const GENERATED_HEAD: &str = r#"[cluster]
name = "gen"
[[path]]
name = "lan"
kind = "network"
[[node]]
name = "a"
addresses = { lan = "10.0.0.1:7400" }
[[node]]
name = "b"
addresses = { lan = "10.0.0.2:7400" }
[[node]]
name = "c"
addresses = { lan = "10.0.0.3:7400" }
"#;

/// One group `name` of `n` resources, each depending on the one before it.
fn chain(name: &str, n: usize) -> String {
    let mut text = format!("[[group]]\nname = \"{name}\"\nnodes = [\"a\", \"b\"]\n");
    for i in 0..n {
        text.push_str(&format!(
            "[[group.resource]]\nname = \"{name}-r{i}\"\ntype = \"application\"\nparams = {{ command = \"sleep 1000\" }}\n"
        ));
        if i > 0 {
            text.push_str(&format!("depends_on = [\"{name}-r{}\"]\n", i - 1));
        }
    }
    text
}

/// The errors of a config that must not load.
fn refused(text: &str) -> ConfigErrors {
    match ClusterConfig::from_str(text, "gen.toml") {
        Ok(_) => panic!("a generated config loaded"),
        Err(e) => e,
    }
}

/// A chain of 120,000 resources once overflowed the stack of `config check`, and 60,000 took
/// 16 s. It is refused at once, by the file size limit, with an error that says so.
#[test]
fn a_chain_of_120000_resources_is_refused_at_once() {
    let text = format!("{GENERATED_HEAD}{}", chain("g", 120_000));
    let start = std::time::Instant::now();
    let errors = refused(&text);
    let took = start.elapsed();
    println!(
        "a chain of 120000 resources ({} bytes): refused in {took:?}",
        text.len()
    );
    assert_eq!(errors.errors.len(), 1, "{errors}");
    let shown = errors.to_string();
    assert!(
        shown.contains(&format!(
            "gen.toml: the file is {} bytes; a config may have at most 1048576 (1 MiB)",
            text.len()
        )),
        "{shown}"
    );
    assert!(
        took < std::time::Duration::from_secs(10),
        "{took:?}: a guard against the quadratic walk, not a benchmark"
    );
}

/// At the limit a chain loads and starts in order; one more resource is refused, naming the
/// first one past the limit.
#[test]
fn resources_per_group_are_limited_to_64() {
    let spec = ClusterConfig::from_str(&format!("{GENERATED_HEAD}{}", chain("g", 64)), "gen.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .spec();
    assert_eq!(spec.groups[0].resources.len(), 64);
    assert_eq!(spec.groups[0].resources[63].name, "g-r63");
    let errors = refused(&format!("{GENERATED_HEAD}{}", chain("g", 65)));
    let shown = errors.to_string();
    assert!(
        shown.contains(
            "group \"g\" → resource \"g-r64\": group \"g\" has 65 resources; at most 64 per group"
        ),
        "{shown}"
    );
    assert_eq!(errors.errors.len(), 1, "only the size error: {shown}");
}

/// Group ids are 16-bit: 70,000 groups once wrapped them silently. 70,000 do not fit in the
/// file; 1025 fit, and are refused by the group limit.
#[test]
fn groups_and_resources_in_all_are_limited() {
    let many = |groups: usize, each: usize| {
        let mut text = GENERATED_HEAD.to_string();
        for g in 0..groups {
            text.push_str(&chain(&format!("g{g}"), each));
        }
        text
    };
    let shown = refused(&many(70_000, 1)).to_string();
    assert!(
        shown.contains("a config may have at most 1048576"),
        "{shown}"
    );
    let shown = refused(&many(1025, 1)).to_string();
    assert!(
        shown.contains("group \"g1024\": 1025 groups; at most 1024 are supported"),
        "{shown}"
    );
    let shown = refused(&many(65, 64)).to_string();
    assert!(
        shown.contains("4160 resources in all; at most 4096 are supported"),
        "{shown}"
    );
    ClusterConfig::from_str(&many(64, 64), "gen.toml").unwrap_or_else(|e| panic!("{e}"));
}

/// Node ids are 16-bit: 70,000 nodes once wrapped them. The members (the witness counted)
/// are limited to 64, below the simulator's 128.
#[test]
fn nodes_are_limited_to_64_with_the_witness() {
    let nodes = |n: usize, witness: bool| {
        let mut text =
            "[cluster]\nname = \"gen\"\n[[path]]\nname = \"lan\"\nkind = \"network\"\n".to_string();
        for i in 0..n {
            text.push_str(&format!(
                "[[node]]\nname = \"n{i}\"\naddresses = {{ lan = \"10.0.{}.{}:7400\" }}\n",
                i / 200,
                i % 200 + 1
            ));
        }
        if witness {
            text.push_str("[witness]\nname = \"w\"\naddresses = { lan = \"10.9.0.1:7400\" }\n");
        }
        text
    };
    ClusterConfig::from_str(&nodes(64, false), "gen.toml").unwrap_or_else(|e| panic!("{e}"));
    ClusterConfig::from_str(&nodes(63, true), "gen.toml").unwrap_or_else(|e| panic!("{e}"));
    let shown = refused(&nodes(64, true)).to_string();
    assert!(
        shown.contains("65 nodes (the witness included); at most 64 are supported"),
        "{shown}"
    );
    let shown = refused(&nodes(70_000, false)).to_string();
    assert!(
        shown.contains("a config may have at most 1048576"),
        "{shown}"
    );
}

/// Bytes that are not UTF-8 were "stream did not contain valid UTF-8; check the path and its
/// permissions": no position and the wrong advice.
#[test]
fn invalid_utf8_is_placed_and_not_blamed_on_permissions() {
    let path = root().join("tests/configs/broken/invalid-utf8.toml");
    let errors = match ClusterConfig::load(&path) {
        Ok(_) => panic!("loaded a Latin-1 file"),
        Err(e) => e,
    };
    let e = &errors.errors[0];
    assert_eq!(e.line, Some(8), "{e}");
    assert!(!e.to_string().contains("permissions"), "{e}");
    assert!(e.message.contains("byte 0xe9"), "{e}");
}

/// Nesting is the one input-sized depth left in the parser; it stops at its limit with an
/// error, not a stack overflow.
#[test]
fn deep_nesting_is_a_syntax_error_not_a_crash() {
    let text = format!(
        "[cluster]\nname = \"x\"\nx = {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let shown = refused(&text).to_string();
    assert!(
        shown.starts_with("gen.toml:3: TOML syntax error at column"),
        "{shown}"
    );
}

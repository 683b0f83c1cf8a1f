//! The `network_name` agent against a real BIND 9 `named` in a network namespace of the test
//! (root only; skipped with one line otherwise): start publishes A, AAAA, PTR and the owner
//! record through TSIG-signed RFC 2136 updates, monitor and probe ask the server, an older
//! activation's stop never removes a newer one's records, a wrong key is a clear hard error,
//! and a server that is gone is a monitor failure, not a hang. What the server serves is read
//! with `dig`, not with the agent's own DNS code.

mod support;

use std::time::{Duration, Instant};

use eterne::policy::group::Outcome;
use eterne::policy::spec::MonitorSpec;
use eterne::resources::{build, Depth};
use support::agent::{context, resource, Timings};
use support::named::{self, Named, KEY_NAME, KEY_SECRET, WRONG_SECRET};
use support::netns::Netns;

/// The server's address, on the namespace's loopback.
const SERVER: &str = "192.0.2.53";

const TIMINGS: Timings = Timings {
    quick: MonitorSpec {
        interval_ms: 1000,
        timeout_ms: 1000,
    },
    deep: None,
    start_ms: 3000,
    stop_ms: 3000,
};

fn skip(test: &str) -> bool {
    if support::skip_unless_root(test, "network namespaces and a BIND server in one") {
        return true;
    }
    if let Some(why) = named::unavailable() {
        println!("SKIPPED {test}: {why}");
        return true;
    }
    false
}

/// A namespace with the server's address on `lo`, and `named` serving the forward and the
/// reverse zone in it.
fn server(test: &str, dir: &std::path::Path) -> (Netns, Named) {
    let ns = Netns::new("eterne-dns", test);
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["addr", "add", &format!("{SERVER}/32"), "dev", "lo"]);
    let named = Named::start(
        ns.name(),
        SERVER,
        &dir.join("named"),
        &["example.test", "2.0.192.in-addr.arpa"],
    )
    .expect("named");
    (ns, named)
}

fn key_file(dir: &std::path::Path, secret: &str) -> String {
    let path = dir.join("web.key");
    let text =
        format!("key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n");
    std::fs::write(&path, text).expect("key file");
    path.display().to_string()
}

#[test]
fn the_name_is_published_monitored_and_withdrawn_at_a_real_bind() {
    if skip("the_name_is_published_monitored_and_withdrawn_at_a_real_bind") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (ns, named) = server("publish", tmp.path());
    let key = key_file(tmp.path(), KEY_SECRET);
    let params = [
        ("name", "web.example.test"),
        ("address", "192.0.2.10/24, 2001:db8::10"),
        ("server", SERVER),
        ("ptr_zones", "2.0.192.in-addr.arpa"),
        ("ttl", "30"),
        ("key_file", key.as_str()),
    ];
    let spec = resource("web-name", "network_name", &params, &TIMINGS);
    let (run1, run2) = (tmp.path().join("run1"), tmp.path().join("run2"));
    let serial0 = named.serial("example.test").expect("serial");
    let (spec2, s1) = (spec.clone(), spec.clone());
    ns.run(move || async move {
        let (ctx, _ev) = context(0, 0, "web-name", run1, 4);
        let a = build(&s1, &ctx).expect("build");
        a.validate().await.expect("validate");
        assert_eq!(a.probe().await.outcome, Outcome::NotRunning);
        let r = a.start(5).await;
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.reason);
        let r = a.monitor(Depth::Quick).await;
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.reason);
        assert_eq!(a.probe().await.outcome, Outcome::Ok);
    });
    assert_eq!(named.dig("web.example.test", "A"), vec!["192.0.2.10"]);
    assert_eq!(named.dig("web.example.test", "AAAA"), vec!["2001:db8::10"]);
    assert_eq!(
        named.dig("10.2.0.192.in-addr.arpa", "PTR"),
        vec!["web.example.test."]
    );
    assert_eq!(
        named.dig("_eterne.web.example.test", "TXT"),
        vec!["epoch=5"]
    );
    assert!(named.serial("example.test").expect("serial") > serial0);

    // Another node's activation (epoch 6, its own runtime directory) takes the name over.
    // The first one's monitor sees it, and its stop leaves the newer records alone.
    let run1 = tmp.path().join("run1");
    ns.run(move || async move {
        let (ctx1, _e1) = context(0, 0, "web-name", run1, 4);
        let (ctx2, _e2) = context(0, 0, "web-name", run2, 4);
        let (old, new) = (
            build(&spec, &ctx1).expect("old"),
            build(&spec2, &ctx2).expect("new"),
        );
        assert_eq!(new.start(6).await.outcome, Outcome::Ok);
        let r = old.monitor(Depth::Quick).await;
        assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
        assert!(r.reason.contains("another activation"), "{}", r.reason);
        let r = old.stop().await;
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.reason);
        assert!(r.reason.contains("newer activation"), "{}", r.reason);
        assert_eq!(old.probe().await.outcome, Outcome::NotRunning);
        assert_eq!(new.probe().await.outcome, Outcome::Ok);
    });
    assert_eq!(named.dig("web.example.test", "A"), vec!["192.0.2.10"]);
    assert_eq!(
        named.dig("_eterne.web.example.test", "TXT"),
        vec!["epoch=6"]
    );

    // The owner's stop withdraws everything it published.
    let run2 = tmp.path().join("run2");
    let s3 = resource("web-name", "network_name", &params, &TIMINGS);
    ns.run(move || async move {
        let (ctx, _e) = context(0, 0, "web-name", run2, 4);
        let a = build(&s3, &ctx).expect("build");
        let r = a.stop().await;
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.reason);
        assert!(r.reason.contains("withdrawn"), "{}", r.reason);
        assert_eq!(a.probe().await.outcome, Outcome::NotRunning);
        assert_eq!(a.monitor(Depth::Quick).await.outcome, Outcome::NotRunning);
        // A second stop is a clean no-op.
        assert_eq!(a.stop().await.outcome, Outcome::Ok);
    });
    for (name, t) in [
        ("web.example.test", "A"),
        ("web.example.test", "AAAA"),
        ("10.2.0.192.in-addr.arpa", "PTR"),
        ("_eterne.web.example.test", "TXT"),
    ] {
        assert!(
            named.dig(name, t).is_empty(),
            "{name} {t} left: {:?}",
            named.dig(name, t)
        );
    }
}

#[test]
fn a_wrong_tsig_key_is_a_clear_hard_error_and_changes_nothing() {
    if skip("a_wrong_tsig_key_is_a_clear_hard_error_and_changes_nothing") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (ns, named) = server("badkey", tmp.path());
    let run = tmp.path().join("run");
    ns.run(move || async move {
        for (key_name, secret, says) in [
            (KEY_NAME, WRONG_SECRET, "BADSIG"),
            ("no-such-key", KEY_SECRET, "BADKEY"),
        ] {
            let params = [
                ("name", "web.example.test"),
                ("address", "192.0.2.10"),
                ("server", SERVER),
                ("key_name", key_name),
                ("key_secret", secret),
            ];
            let spec = resource("web-name", "network_name", &params, &TIMINGS);
            let (ctx, _e) = context(0, 0, "web-name", run.clone(), 4);
            let a = build(&spec, &ctx).expect("build");
            let r = a.start(3).await;
            assert_eq!(r.outcome, Outcome::FailedHard, "{}", r.reason);
            assert!(r.reason.contains(says), "{}", r.reason);
            assert!(r.reason.contains(key_name), "{}", r.reason);
            assert!(r.reason.contains("example.test"), "{}", r.reason);
            a.stop().await;
        }
    });
    assert!(
        named.dig("web.example.test", "A").is_empty(),
        "{}",
        named.log()
    );
}

#[test]
fn a_server_that_is_gone_is_a_monitor_failure_not_a_hang() {
    if skip("a_server_that_is_gone_is_a_monitor_failure_not_a_hang") {
        return;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    let (ns, mut named) = server("gone", tmp.path());
    let params = [
        ("name", "web.example.test"),
        ("address", "192.0.2.10"),
        ("server", SERVER),
        ("key_name", KEY_NAME),
        ("key_secret", KEY_SECRET),
    ];
    let spec = resource("web-name", "network_name", &params, &TIMINGS);
    let run = tmp.path().join("run");
    let (s1, r1) = (spec.clone(), run.clone());
    ns.run(move || async move {
        let (ctx, _e) = context(0, 0, "web-name", r1, 4);
        let a = build(&s1, &ctx).expect("build");
        assert_eq!(a.start(1).await.outcome, Outcome::Ok);
    });
    named.kill();
    ns.run(move || async move {
        let (ctx, _e) = context(0, 0, "web-name", run, 4);
        let a = build(&spec, &ctx).expect("build");
        // Bounded by the agent itself, below the caller's deadline (the monitor's timeout):
        // this is a generous bound against a hang, not a timing goal.
        let bound = Duration::from_millis(u64::from(TIMINGS.quick.timeout_ms) * 3);
        let t = Instant::now();
        let r = tokio::time::timeout(bound, a.monitor(Depth::Quick))
            .await
            .expect("monitor hung");
        assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
        assert!(r.reason.contains("unreachable"), "{}", r.reason);
        assert!(t.elapsed() < bound);
        // A start fails soft (a restart may find the server back); a stop does not fail
        // for a DNS outage: the records name the floating address, not this node.
        let r = tokio::time::timeout(bound, a.start(2))
            .await
            .expect("start hung");
        assert_eq!(r.outcome, Outcome::Failed, "{}", r.reason);
        let r = tokio::time::timeout(bound, a.stop())
            .await
            .expect("stop hung");
        assert_eq!(r.outcome, Outcome::Ok, "{}", r.reason);
        assert!(r.reason.contains("left"), "{}", r.reason);
    });
}

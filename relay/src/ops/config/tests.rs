//! The configuration's parsing and checks.

use super::*;
use crate::transport::Transport;

#[test]
fn full_file_parses() {
    let text = r#"
        [http]
        listen = "0.0.0.0:8443"
        public_host = "relay.example.com"
        [sip]
        listen = "10.0.0.2:5070"
        [pbx]
        addresses = ["10.0.0.5:5060", "10.0.0.6:5060"]
        [limits]
        max_message_bytes = 32768
    "#;
    let c = Config::parse(Path::new("relay.toml"), text).expect("valid");
    assert_eq!(c.pbx.addresses.len(), 2);
    assert_eq!(c.limits.max_message_bytes, 32768);
    assert_eq!(c.sip.t1_ms, 500, "defaults fill the rest");
    c.validate().expect("valid");
}

#[test]
fn the_documented_example_is_the_defaults() {
    let text = include_str!("../../../relay.example.toml");
    let c = Config::parse(Path::new("relay.example.toml"), text).expect("example parses");
    c.validate().expect("example is valid");
    let mut defaults = Config::default();
    defaults.pbx.addresses = vec!["127.0.0.1:5060".parse().expect("addr")];
    assert_eq!(
        c, defaults,
        "relay.example.toml must show the real defaults"
    );
}

#[test]
fn errors_name_the_key() {
    let err = Config::parse(Path::new("r.toml"), "[pbx]\naddress = \"1.2.3.4:5060\"\n")
        .expect_err("unknown key");
    assert!(
        err.to_string().contains("key `address`: unknown field"),
        "{err}"
    );
    let err = Config::parse(
        Path::new("r.toml"),
        "[pbx]\naddresses = [\"pbx.example\"]\n",
    )
    .expect_err("bad value");
    assert!(err.to_string().contains("addresses"), "{err}");
    let err = Config::default().validate().expect_err("no PBX");
    assert!(
        err.to_string()
            .starts_with("config key `pbx.addresses`: at least one PBX address"),
        "{err}"
    );
    let embedded = Config::parse(
        Path::new("r.toml"),
        "[pbx]\nembedded = true\nusers = [{ name = \"echo\", password = \"x\" }]\n",
    )
    .expect("parses");
    assert!(
        embedded
            .validate()
            .expect_err("reserved")
            .to_string()
            .contains("reserved")
    );
    let dup = "[pbx]\nembedded = true\nusers = [{ name = \"a\", password = \"x\" }, { name = \"a\", password = \"y\" }]\n";
    let dup = Config::parse(Path::new("r.toml"), dup).expect("parses");
    assert!(
        dup.validate()
            .expect_err("duplicate")
            .to_string()
            .contains("listed twice")
    );
    assert!(
        !format!("{dup:?}").contains("\"x\""),
        "passwords never in Debug output"
    );
    let secret = Config::parse(
        Path::new("r.toml"),
        "[pbx]\nembedded = true\nusers = [{ name = \"a\", password = 42 }]\n",
    )
    .expect_err("wrong type");
    assert!(secret.to_string().contains("line 3"), "{secret}");
    assert!(
        !secret.to_string().contains("42"),
        "the value is never quoted: {secret}"
    );
    let token = Config::parse(
        Path::new("r.toml"),
        "[admin]\ntoken = \"0123456789abcdefXYZ\"\n",
    )
    .expect("parses");
    assert!(
        !format!("{token:?}").contains("0123456789abcdefXYZ"),
        "the admin token is never in Debug output"
    );
    let mut c = Config::default();
    c.pbx.addresses = vec!["10.0.0.5:5060".parse().expect("addr")];
    c.sip.listen = "0.0.0.0:5070".parse().expect("addr");
    assert!(
        c.validate()
            .expect_err("wildcard")
            .to_string()
            .starts_with("config key `sip.advertise`")
    );
}

#[test]
fn the_shared_browser_port_lies_outside_the_range() {
    let mut c = Config::default();
    c.pbx.addresses = vec!["10.0.0.5:5060".parse().expect("addr")];
    c.media.workers = 2;
    c.media.browser_port = 40_000;
    c.validate().expect("outside the range");
    assert_eq!(c.media(c.sip.listen.ip()).browser_port, 40_000);
    assert_eq!(c.media(c.sip.listen.ip()).workers, 2);
    // The second worker's port, 20,000, is the range's first.
    c.media.browser_port = 19_999;
    let err = c.validate().expect_err("overlaps");
    assert!(
        err.to_string()
            .starts_with("config key `media.browser_port`: 19999..=20000"),
        "{err}"
    );
    c.media.browser_port = 65_535;
    assert!(c.validate().is_err(), "its second port would pass 65535");
}

#[test]
fn pbxs_with_priorities_and_weights_and_their_failover_and_probes() {
    let text = r#"
        [pbx]
        failover_ms = 1500
        [[pbx.servers]]
        address = "10.0.0.5:5060"
        weight = 3
        [[pbx.servers]]
        address = "10.0.0.6:5060"
        priority = 20
    "#;
    let c = Config::parse(Path::new("r.toml"), text).expect("valid");
    c.validate().expect("valid");
    let p = c.proxy("10.0.0.2:5070".parse().expect("addr"));
    let weighed: Vec<(u16, u16)> = p.pbx.iter().map(|t| (t.priority, t.weight)).collect();
    assert_eq!(
        weighed,
        vec![(10, 3), (20, 1)],
        "defaults: priority 10, weight 1"
    );
    assert_eq!(p.failover_after, Duration::from_millis(1500));
    assert_eq!(
        p.probe_interval,
        Some(Duration::from_secs(10)),
        "several PBXs are probed by default"
    );
    assert_eq!(c.pbx_addresses().len(), 2, "every one bound and accepted");

    // `addresses`: preferred in order; one alone is not probed unless asked.
    let mut c = Config::default();
    c.pbx.addresses = vec!["10.0.0.5:5060".parse().expect("addr")];
    let p = c.proxy("10.0.0.2:5070".parse().expect("addr"));
    assert_eq!(p.probe_interval, None);
    c.pbx.probe_interval_ms = Some(2_000);
    let p = c.proxy("10.0.0.2:5070".parse().expect("addr"));
    assert_eq!(p.probe_interval, Some(Duration::from_secs(2)));

    let refused = |text: &str, key: &str| {
        let err = Config::parse(Path::new("r.toml"), text)
            .and_then(|c| c.validate().map(|()| c))
            .expect_err(text);
        assert!(
            err.to_string().starts_with(&format!("config key `{key}`")),
            "{err}"
        );
    };
    refused(
        "[pbx]\naddresses = [\"10.0.0.5:5060\"]\n[[pbx.servers]]\naddress = \"10.0.0.6:5060\"\n",
        "pbx.servers",
    );
    refused(
        "[pbx]\naddresses = [\"10.0.0.5:5060\", \"10.0.0.5:5060\"]\n",
        "pbx.addresses",
    );
    refused(
        "[pbx]\naddresses = [\"10.0.0.5:5060\"]\nfailover_ms = 50\n",
        "pbx.failover_ms",
    );
    refused(
        "[pbx]\naddresses = [\"10.0.0.5:5060\"]\nfailover_ms = 40000\n",
        "pbx.failover_ms",
    );
    refused(
        "[pbx]\naddresses = [\"10.0.0.5:5060\"]\nprobe_interval_ms = 100\n",
        "pbx.probe_interval_ms",
    );
    let err = Config::parse(
        Path::new("r.toml"),
        "[[pbx.servers]]\naddress = \"10.0.0.6:5060\"\nweigth = 2\n",
    )
    .expect_err("a misspelt key");
    assert!(err.to_string().contains("weigth"), "{err}");
}

#[test]
fn a_pbx_named_by_a_sip_uri_is_looked_up_in_dns() {
    let c = Config::parse(
        Path::new("r.toml"),
        "[pbx]\nuri = \"sip:pbx.example.com\"\ndns_server = \"127.0.0.1:5353\"\n",
    )
    .expect("valid");
    c.validate().expect("valid");
    assert_eq!(c.pbx_name(), Some(("pbx.example.com".into(), None, None)));
    assert!(c.pbx_addresses().is_empty(), "found at run time");
    let p = c.proxy("10.0.0.2:5070".parse().expect("addr"));
    assert_eq!(p.probe_interval, Some(Duration::from_secs(10)));
    let mut c = c.clone();
    c.pbx.uri = Some("sip:[::1]:5062".into());
    assert_eq!(c.pbx_name(), Some(("[::1]".into(), Some(5062), None)));
    for (uri, transport) in [
        ("sips:pbx.example.com", Transport::Tls),
        ("sips:pbx.example.com;transport=tcp", Transport::Tls),
        ("sip:pbx.example.com;transport=TCP", Transport::Tcp),
        ("sip:pbx.example.com;transport=tls", Transport::Tls),
    ] {
        c.pbx.uri = Some(uri.into());
        c.validate().expect(uri);
        assert_eq!(c.pbx_name().and_then(|n| n.2), Some(transport), "{uri}");
    }
    for bad in [
        "pbx.example.com",
        "sip:pbx.example.com;transport=sctp",
        "sip:pbx.example.com;lr",
        "sip:alice@pbx.example.com",
        "tel:+1555",
    ] {
        c.pbx.uri = Some(bad.into());
        let err = c.validate().expect_err(bad);
        assert!(err.to_string().starts_with("config key `pbx.uri`"), "{err}");
    }
    c.pbx.uri = Some("sip:pbx.example.com".into());
    c.pbx.transport = Transport::Tcp;
    let err = c.validate().expect_err("the URI says");
    assert!(
        err.to_string().starts_with("config key `pbx.transport`"),
        "{err}"
    );
    c.pbx.transport = Transport::Udp;
    c.pbx.addresses = vec!["10.0.0.5:5060".parse().expect("addr")];
    let err = c.validate().expect_err("two ways");
    assert!(err.to_string().contains("exclude each other"), "{err}");
}

#[test]
fn each_pbx_has_its_transport() {
    let c = Config::parse(
        Path::new("r.toml"),
        "[pbx]
transport = \"tls\"
tls_ca = \"/etc/ca.pem\"
         [[pbx.servers]]
address = \"10.0.0.5:5061\"
         [[pbx.servers]]
address = \"10.0.0.6:5060\"
transport = \"udp\"
",
    )
    .expect("valid");
    c.validate().expect("valid");
    let p = c.proxy("10.0.0.2:5070".parse().expect("addr"));
    let transports: Vec<Transport> = p.pbx.iter().map(|t| t.transport).collect();
    assert_eq!(transports, [Transport::Tls, Transport::Udp]);
    assert!(c.pbx_tls());
    let mut c = c.clone();
    c.pbx.tls_cert = Some("/etc/relay.pem".into());
    let err = c.validate().expect_err("no key");
    assert!(err.to_string().contains("pbx.tls_cert"), "{err}");
    c.pbx.tls_cert = None;
    c.pbx.keepalive_secs = 3;
    let err = c.validate().expect_err("too often");
    assert!(err.to_string().contains("pbx.keepalive_secs"), "{err}");
    let err = Config::parse(
        Path::new("r.toml"),
        "[pbx]
transport = \"sctp\"
",
    )
    .expect_err("unknown transport");
    assert!(err.to_string().contains("transport"), "{err}");
}

#[test]
fn the_instance_name_is_checked() {
    let mut c = Config::default();
    c.pbx.addresses = vec!["10.0.0.5:5060".parse().expect("addr")];
    c.admin.instance = Some("relay-b.eu_1".into());
    c.validate().expect("valid");
    assert_eq!(
        c.proxy("10.0.0.2:5070".parse().expect("addr"))
            .instance
            .as_deref(),
        Some("relay-b.eu_1")
    );
    for bad in ["", "relay b", "relay\"b", &"x".repeat(65)] {
        c.admin.instance = Some(bad.into());
        let err = c.validate().expect_err(bad);
        assert!(
            err.to_string().starts_with("config key `admin.instance`"),
            "{err}"
        );
    }
}

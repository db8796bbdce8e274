//! The configuration's parsing and checks.

use super::*;

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

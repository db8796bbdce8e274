//! `Phone.connect`'s options as the core's [`Config`]: read through typed
//! getters (the package checked their types and filled its defaults), and
//! the core's refusal of one spelt as the app wrote its name.

use crate::prelude::*;
use core::time::Duration;

use sipline_core::sip::push_decimal;
use sipline_core::{Config, ConfigError, Secret};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The options object `Phone.connect` was given.
    pub type Options;

    /// `options[key]`: one import for every option, rather than a typed
    /// getter each (each getter is an import and a JavaScript wrapper of
    /// its own, about a kilobyte of the SDK for a dozen options).
    #[wasm_bindgen(method, structural, indexing_getter)]
    fn get(this: &Options, key: &str) -> JsValue;
}

/// The core's configuration from `o`; `"type uri is required"` style
/// refusals for what is missing.
pub(crate) fn config(o: &Options) -> Result<Config, String> {
    let text = |key| o.get(key).as_string();
    let number = |key| o.get(key).as_f64();
    let flag = |key| o.get(key).as_bool();
    let server = text("server").ok_or_else(|| String::from("type server is required"))?;
    let uri = text("uri").ok_or_else(|| String::from("type uri is required"))?;
    let mut config = Config::new(uri);
    config.secure = server.starts_with("wss:");
    config.password = text("password").map(Secret::new);
    config.auth_username = text("authUser");
    config.display_name = text("displayName");
    config.registrar = text("registrar");
    config.instance_id = text("instanceId");
    if let Some(agent) = text("userAgent") {
        config.user_agent = agent;
    }
    if let Some(ring) = flag("autoRinging") {
        config.auto_ringing = ring;
    }
    if let Some(register) = flag("register") {
        config.register = register;
    }
    if let Some(expires) = number("registerExpires") {
        config.register_expires = expires as u32;
    }
    if let Some(secs) = number("sessionExpiresSecs") {
        config.session_expires = (secs > 0.0).then_some(secs as u32);
    }
    // The package checked it is an array of short header-name prefixes.
    let prefixes = o.get("incomingHeaderPrefixes");
    if prefixes.is_object() {
        let list: &Options = prefixes.unchecked_ref();
        let mut key = String::from("0");
        for i in 1u64.. {
            let Some(prefix) = list.get(&key).as_string() else {
                break;
            };
            config.incoming_header_prefixes.push(prefix);
            key.clear();
            push_decimal(&mut key, i);
        }
    }
    if let Some(secs) = number("keepAliveSecs") {
        config.keepalive_interval = (secs > 0.0).then(|| Duration::from_secs(secs as u64));
    }
    Ok(config)
}

/// The core's refusal of an option as `"type <message>"` (`"range"` for a
/// number), naming the option as the app wrote it. The core's own message
/// quotes the value; a URI may be long, so only the option and the rule
/// are said.
pub(crate) fn refusal(e: &ConfigError) -> String {
    let (class, option, rule) = match e {
        ConfigError::BadUri(_) => (
            "type",
            "uri",
            "must be a SIP URI with a user part (sip:user@host)",
        ),
        ConfigError::BadRegistrar(_) => ("type", "registrar", "must be a SIP URI (sip:host)"),
        ConfigError::BadExpires => ("range", "registerExpires", "must be at least 1"),
        ConfigError::BadField { field, problem } => (
            "type",
            match *field {
                "display_name" => "displayName",
                "auth_username" => "authUser",
                "user_agent" => "userAgent",
                "instance_id" => "instanceId",
                "keepalive_interval" => "keepAliveSecs",
                other => other,
            },
            *problem,
        ),
    };
    let colon = if matches!(e, ConfigError::BadField { .. }) {
        ": "
    } else {
        " "
    };
    [class, " ", option, colon, rule].concat()
}

//! `Phone.connect`'s options as the core's [`Config`]: read through typed
//! getters (the package checked their types and filled its defaults), and
//! the core's refusal of one spelt as the app wrote its name.

use crate::prelude::*;
use core::time::Duration;

use sipline_core::{Config, ConfigError, Secret};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The options object `Phone.connect` was given.
    pub type Options;

    #[wasm_bindgen(method, getter)]
    fn uri(this: &Options) -> Option<String>;
    #[wasm_bindgen(method, getter)]
    fn server(this: &Options) -> Option<String>;
    #[wasm_bindgen(method, getter)]
    fn password(this: &Options) -> Option<String>;
    #[wasm_bindgen(method, getter, js_name = authUser)]
    fn auth_user(this: &Options) -> Option<String>;
    #[wasm_bindgen(method, getter, js_name = displayName)]
    fn display_name(this: &Options) -> Option<String>;
    #[wasm_bindgen(method, getter)]
    fn registrar(this: &Options) -> Option<String>;
    #[wasm_bindgen(method, getter, js_name = instanceId)]
    fn instance_id(this: &Options) -> Option<String>;
    #[wasm_bindgen(method, getter, js_name = userAgent)]
    fn user_agent(this: &Options) -> Option<String>;
    #[wasm_bindgen(method, getter, js_name = autoRinging)]
    fn auto_ringing(this: &Options) -> Option<bool>;
    #[wasm_bindgen(method, getter)]
    fn register(this: &Options) -> Option<bool>;
    #[wasm_bindgen(method, getter, js_name = registerExpires)]
    fn register_expires(this: &Options) -> Option<f64>;
    #[wasm_bindgen(method, getter, js_name = sessionExpiresSecs)]
    fn session_expires_secs(this: &Options) -> Option<f64>;
    #[wasm_bindgen(method, getter, js_name = keepAliveSecs)]
    fn keep_alive_secs(this: &Options) -> Option<f64>;
    #[wasm_bindgen(method, getter, js_name = incomingHeaderPrefixes)]
    fn incoming_header_prefixes(this: &Options) -> Option<Vec<JsValue>>;
}

/// The core's configuration from `o`; `"type uri is required"` style
/// refusals for what is missing.
pub(crate) fn config(o: &Options) -> Result<Config, String> {
    let server = o
        .server()
        .ok_or_else(|| String::from("type server is required"))?;
    let uri = o
        .uri()
        .ok_or_else(|| String::from("type uri is required"))?;
    let mut config = Config::new(uri);
    config.secure = server.starts_with("wss:");
    config.password = o.password().map(Secret::new);
    config.auth_username = o.auth_user();
    config.display_name = o.display_name();
    config.registrar = o.registrar();
    config.instance_id = o.instance_id();
    if let Some(agent) = o.user_agent() {
        config.user_agent = agent;
    }
    if let Some(ring) = o.auto_ringing() {
        config.auto_ringing = ring;
    }
    if let Some(register) = o.register() {
        config.register = register;
    }
    if let Some(expires) = o.register_expires() {
        config.register_expires = expires as u32;
    }
    if let Some(secs) = o.session_expires_secs() {
        config.session_expires = (secs > 0.0).then_some(secs as u32);
    }
    if let Some(prefixes) = o.incoming_header_prefixes() {
        config.incoming_header_prefixes = prefixes.iter().filter_map(|p| p.as_string()).collect();
    }
    if let Some(secs) = o.keep_alive_secs() {
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

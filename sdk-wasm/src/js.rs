//! Small bridges to the browser that every other module uses: the clock,
//! randomness, sleeping, and building or reading plain JS objects.

use crate::prelude::*;
use js_sys::{Object, Reflect};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

use sipline_core::{ActionError, ConfigError};

pub(crate) fn window() -> Result<web_sys::Window, JsValue> {
    web_sys::window().ok_or_else(|| JsValue::from_str("sipline needs a browser window"))
}

/// Milliseconds on the page's monotonic clock (`performance.now()`): wall
/// clock jumps must not fire or starve SIP timers.
pub(crate) fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// 32 bytes from `crypto.getRandomValues`: the core's tags, branches and
/// cnonces must not be guessable.
pub(crate) fn seed() -> Result<[u8; 32], JsValue> {
    let mut seed = [0u8; 32];
    window()?
        .crypto()?
        .get_random_values_with_u8_array(&mut seed)?;
    Ok(seed)
}

/// A uniform number in `0..1` for reconnect jitter (it needs no secrecy).
pub(crate) fn random() -> f64 {
    js_sys::Math::random()
}

/// A property of a JS object (`undefined` when absent or not an object).
pub(crate) fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A string property, `None` when absent.
pub(crate) fn get_str(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key).as_string()
}

/// A numeric property, `None` when absent.
pub(crate) fn get_num(obj: &JsValue, key: &str) -> Option<f64> {
    get(obj, key).as_f64()
}

/// The app's `{ "X-Name": "value" }` as header pairs (nothing when it
/// passed none); the core checks them.
pub(crate) fn headers(obj: &JsValue) -> Vec<(String, String)> {
    if !obj.is_object() {
        return Vec::new();
    }
    Object::entries(obj.unchecked_ref())
        .iter()
        .filter_map(|pair| {
            let pair: js_sys::Array = pair.dyn_into().ok()?;
            Some((pair.get(0).as_string()?, pair.get(1).as_string()?))
        })
        .collect()
}

/// Header pairs as a plain object, for events.
pub(crate) fn header_object(headers: Vec<(String, String)>) -> JsValue {
    let obj = Obj::new();
    headers
        .into_iter()
        .fold(obj, |o, (name, value)| o.set(&name, value))
        .build()
}

/// Builds the plain objects events carry to JavaScript.
pub(crate) struct Obj(Object);

impl Obj {
    pub(crate) fn new() -> Self {
        Self(Object::new())
    }

    pub(crate) fn set(self, key: &str, value: impl Into<JsValue>) -> Self {
        self.put(key, value.into())
    }

    /// [`Self::set`]'s work, out of line: events set some ninety fields,
    /// and each would otherwise carry its own copy.
    #[inline(never)]
    fn put(self, key: &str, value: JsValue) -> Self {
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &value);
        self
    }

    pub(crate) fn opt(self, key: &str, value: Option<impl Into<JsValue>>) -> Self {
        match value {
            Some(v) => self.set(key, v),
            None => self,
        }
    }

    pub(crate) fn build(self) -> JsValue {
        self.0.into()
    }
}

/// An `Error` with `message`, for rejected promises.
pub(crate) fn error(message: &str) -> JsValue {
    js_sys::Error::new(message).into()
}

/// A refused option of `Phone.connect` as JavaScript expects it: a
/// `TypeError` (a `RangeError` for a number) that names the option as the
/// app wrote it.
pub(crate) fn config_error(e: &ConfigError) -> JsValue {
    let option = match e {
        ConfigError::BadUri(_) => "uri",
        ConfigError::BadRegistrar(_) => "registrar",
        ConfigError::BadExpires => "registerExpires",
        ConfigError::BadField { field, .. } => match *field {
            "display_name" => "displayName",
            "auth_username" => "authUser",
            "user_agent" => "userAgent",
            "instance_id" => "instanceId",
            "keepalive_interval" => "keepAliveSecs",
            other => other,
        },
    };
    // The core's message quotes the value; a URI may be long, so only
    // the option and the rule are said.
    let message = match e {
        ConfigError::BadUri(_) => {
            format!("{option} must be a SIP URI with a user part (sip:user@host)")
        }
        ConfigError::BadRegistrar(_) => format!("{option} must be a SIP URI (sip:host)"),
        ConfigError::BadExpires => format!("{option} must be at least 1"),
        ConfigError::BadField { problem, .. } => format!("{option}: {problem}"),
    };
    match e {
        ConfigError::BadExpires => js_sys::RangeError::new(&message).into(),
        _ => js_sys::TypeError::new(&message).into(),
    }
}

/// The core's refusal as JavaScript expects it: a bad argument is a
/// `TypeError` (a `RangeError` for a number out of range) naming it; the
/// wrong moment an `Error`. Each carries the refusal's `code`
/// (`not_connected`, `wrong_state`…) for the package to sort on.
#[inline(never)]
pub(crate) fn action_error(e: &ActionError) -> JsValue {
    let message = e.to_string();
    let error: js_sys::Error = match e {
        ActionError::BadCode(_) => js_sys::RangeError::new(&message).into(),
        _ if e.is_argument() => js_sys::TypeError::new(&message).into(),
        _ => js_sys::Error::new(&message),
    };
    let _ = Reflect::set(
        &error,
        &JsValue::from_str("code"),
        &JsValue::from_str(e.code()),
    );
    error.into()
}

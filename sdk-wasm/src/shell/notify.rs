//! A NOTIFY's parsed body as the plain object JavaScript gets: a lamp, a
//! voicemail summary or presence, tagged by `kind` (the core parsed it;
//! this only spells it out).

use js_sys::Array;
use sipline_core::status::Status;
use wasm_bindgen::JsValue;

use crate::js::Obj;

/// `status` as `{ kind, … }`.
pub(super) fn status_object(status: Status) -> JsValue {
    match status {
        Status::DialogInfo(d) => Obj::new()
            .set("kind", "dialog")
            .set("entity", d.entity)
            .set("lamp", d.lamp.as_str())
            .opt(
                "direction",
                d.initiator.map(|i| if i { "outgoing" } else { "incoming" }),
            )
            .opt("other", d.other)
            .set("full", d.full)
            .build(),
        Status::MessageSummary(s) => {
            let counts = Array::new();
            for c in s.counts {
                counts.push(
                    &Obj::new()
                        .set("class", c.class)
                        .set("new", c.new)
                        .set("old", c.old)
                        .set("urgentNew", c.urgent_new)
                        .set("urgentOld", c.urgent_old)
                        .build(),
                );
            }
            Obj::new()
                .set("kind", "message-summary")
                .set("waiting", s.waiting)
                .opt("account", s.account)
                .set("counts", counts)
                .build()
        }
        Status::Presence(p) => Obj::new()
            .set("kind", "presence")
            .set("entity", p.entity)
            .set("open", p.open)
            .opt("note", p.note)
            .build(),
    }
}

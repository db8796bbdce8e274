//! The user agent's subscriptions (RFC 6665): what the application asks
//! for; the rules are in [`crate::subscription`].

use super::UserAgent;
use crate::Instant;
use crate::error::ActionError;
use crate::ids::SubscriptionId;

impl UserAgent {
    /// Subscribes to `event` of `target` (a SIP URI): `dialog` for a busy
    /// lamp, `message-summary` for voicemail, `presence`, or any package;
    /// `accept` lists the body types taken (by default the one the package
    /// is known to carry), `expires` the interval (600 s by default). Kept up (refreshed, and again
    /// after a new transport) until [`UserAgent::unsubscribe`]; its
    /// NOTIFYs arrive as [`crate::Event::Notify`].
    pub fn subscribe(
        &mut self,
        now: Instant,
        target: &str,
        event: &str,
        accept: Option<&str>,
        expires: Option<u32>,
    ) -> Result<SubscriptionId, ActionError> {
        self.require_transport()?;
        let (_, _, _, subs, mut cx) = self.parts(now);
        subs.subscribe(&mut cx, target, event, accept, expires)
    }

    /// Ends a subscription; [`crate::Event::SubscriptionEnded`] follows.
    pub fn unsubscribe(&mut self, now: Instant, id: SubscriptionId) -> Result<(), ActionError> {
        let (_, _, _, subs, mut cx) = self.parts(now);
        subs.unsubscribe(&mut cx, id)
    }
}

//! What the user agent tells the application: one enum every part of the
//! core pushes to, named as users of JsSIP, SIP.js and the Janus SIP
//! plugin know them.

use crate::prelude::*;
use core::fmt;
use core::time::Duration;

use crate::ids::{CallId, MessageId, SubscriptionId};
use crate::status::Status;

/// Which side put a call on hold (or resumed it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HoldBy {
    /// We did.
    Local,
    /// The far end did.
    Remote,
}

impl HoldBy {
    /// `local` or `remote`.
    pub fn as_str(self) -> &'static str {
        match self {
            HoldBy::Local => "local",
            HoldBy::Remote => "remote",
        }
    }
}

/// Where a request to record a call stands, once answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recording {
    /// The call is recorded from now on.
    Started,
    /// It is no longer recorded.
    Stopped,
    /// The request was refused (or not answered).
    Failed,
}

impl Recording {
    /// `started`, `stopped` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Recording::Started => "started",
            Recording::Stopped => "stopped",
            Recording::Failed => "failed",
        }
    }
}

/// One ICE candidate the far end trickled (RFC 8840), as a browser's
/// `RTCIceCandidateInit` takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteCandidate {
    /// `candidate:…`, the attribute's value with its name.
    pub candidate: String,
    /// The media section's `a=mid`, when the fragment named it.
    pub mid: Option<String>,
    /// The media section's index in the fragment: its m-line index when
    /// the fragment lists every section (for a far end that names no mid).
    pub index: usize,
}

/// What the application is told. The names follow the events users of
/// JsSIP, SIP.js and the Janus SIP plugin know (see [`Event::name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A REGISTER for a new binding is on its way.
    Registering,
    /// The registrar holds the binding for `expires` seconds (sent again on
    /// every refresh).
    Registered {
        /// Seconds granted.
        expires: u32,
    },
    /// Registration failed. `code` is the SIP status received, or 408 when
    /// the registrar did not answer in time, or 503 when the transport
    /// closed. A retry is scheduled when `retry_in` is set.
    RegistrationFailed {
        /// SIP status code.
        code: u16,
        /// Reason phrase.
        reason: String,
        /// When the next automatic attempt happens.
        retry_in: Option<Duration>,
    },
    /// A REGISTER with expires 0 is on its way.
    Unregistering,
    /// No binding any more: asked for, refused (`code`), or the transport
    /// closed under it.
    Unregistered {
        /// The error status if the unregistration itself failed.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
    /// The server stopped answering CRLF keep-alives (RFC 5626 §4.4.1): the
    /// flow is dead even if the socket looks open. The shell should close
    /// and reconnect.
    KeepAliveTimeout,
    /// A call arrived: answer it ([`UserAgent::answer`](crate::UserAgent::answer)), ring
    /// ([`UserAgent::ringing`](crate::UserAgent::ringing)) or decline it ([`UserAgent::decline`](crate::UserAgent::decline)).
    Incoming {
        /// Which call.
        call: CallId,
        /// The caller's URI.
        from: String,
        /// The caller's display name, if it sent one.
        display_name: Option<String>,
        /// The caller's SDP offer; `None` when our answer must carry the
        /// offer (its answer then comes with [`Event::Accepted`]).
        sdp: Option<String>,
        /// The INVITE's headers named by [`Config::incoming_header_prefixes`](crate::Config::incoming_header_prefixes).
        headers: Vec<(String, String)>,
        /// The call of ours it replaces (RFC 3891: an attended transfer
        /// to us, or a pickup): answer it, and once it is up the old one
        /// ends ([`Event::Replaced`]).
        replaces: Option<CallId>,
    },
    /// An outgoing call's INVITE is on its way.
    Calling {
        /// Which call.
        call: CallId,
        /// Who it calls (the INVITE's Request-URI).
        target: String,
    },
    /// The far end is ringing (a provisional response without SDP).
    Ringing {
        /// Which call.
        call: CallId,
    },
    /// Early media: a provisional response with the far end's SDP answer.
    Progress {
        /// Which call.
        call: CallId,
        /// The SDP answer (set it as the remote description).
        sdp: String,
    },
    /// The call is up: the far end answered our INVITE (its 2xx was
    /// acknowledged), or acknowledged our answer to its INVITE.
    Accepted {
        /// Which call.
        call: CallId,
        /// The far end's SDP: the answer to our offer (empty when we
        /// answered its offer: there is nothing new).
        sdp: String,
    },
    /// Our offer or answer went without ICE candidates (the shell sent it
    /// before gathering ended: [`UserAgent::candidates_optional`](crate::UserAgent::candidates_optional)) to a
    /// full-ICE far end: once gathering ends, send them. Media may already
    /// flow (its checks find our address from ours); the candidates are
    /// what lets its checks through our NAT or reach our TURN relay.
    CandidatesNeeded {
        /// Which call.
        call: CallId,
        /// The far end takes trickled candidates (RFC 8840): give them to
        /// [`UserAgent::send_candidates`](crate::UserAgent::send_candidates). Otherwise (our INVITE's offer
        /// was answered by a far end that does not), send a new offer (a
        /// re-INVITE, the same ICE credentials) with them.
        trickle: bool,
    },
    /// The far end's trickled ICE candidates (RFC 8840): add them to the
    /// call's peer connection.
    RemoteCandidates {
        /// Which call.
        call: CallId,
        /// The candidates, each with the media section it is for.
        candidates: Vec<RemoteCandidate>,
        /// The far end has no more (`a=end-of-candidates`).
        end: bool,
    },
    /// The far end changes the call (a re-INVITE or UPDATE: hold, unhold,
    /// ICE restart): answer with [`UserAgent::answer`](crate::UserAgent::answer) (the answer to `sdp`, or
    /// an offer when it has none).
    Updating {
        /// Which call.
        call: CallId,
        /// The far end's new offer, if it made one.
        sdp: Option<String>,
    },
    /// A change of the call's session completed: the far end's answer to
    /// our re-INVITE (or to the offer in our answer to its own).
    Updated {
        /// Which call.
        call: CallId,
        /// The far end's SDP answer.
        sdp: String,
    },
    /// Who holds the call changed: we (`by` [`HoldBy::Local`], once the
    /// far end took our offer) or the far end ([`HoldBy::Remote`], once
    /// its offer was answered).
    Hold {
        /// Which call.
        call: CallId,
        /// Held, or resumed.
        held: bool,
        /// Which side's offer said so.
        by: HoldBy,
    },
    /// Our re-INVITE was refused; the call goes on as it was.
    UpdateFailed {
        /// Which call.
        call: CallId,
        /// The SIP status (408 when unanswered).
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// A DTMF digit the far end sent as SIP INFO (`application/dtmf-relay`).
    Dtmf {
        /// Which call.
        call: CallId,
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
        /// How long it was pressed.
        duration_ms: u32,
    },
    /// An INFO arrived in a call (RFC 6086) with a body of any type but
    /// DTMF's (that is [`Event::Dtmf`]).
    Info {
        /// Which call.
        call: CallId,
        /// Its Content-Type.
        content_type: String,
        /// Its body.
        body: String,
        /// Its headers named by [`Config::incoming_header_prefixes`](crate::Config::incoming_header_prefixes).
        headers: Vec<(String, String)>,
    },
    /// The far end answered an INFO the application sent
    /// ([`UserAgent::info`](crate::UserAgent::info)): 2xx it took it.
    InfoAnswered {
        /// Which call.
        call: CallId,
        /// Which INFO.
        id: MessageId,
        /// The status (408 when none came).
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The far end (the relay, recording on demand) answered a request to
    /// start or stop recording a call ([`UserAgent::record`](crate::UserAgent::record)).
    Recording {
        /// Which call.
        call: CallId,
        /// Which request.
        id: MessageId,
        /// Where it stands: started or stopped as asked, or failed.
        state: Recording,
        /// The status (408 when none came).
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A subscription's SUBSCRIBE was accepted (2xx), for `expires`
    /// seconds (refreshed before then); its NOTIFYs follow.
    SubscriptionActive {
        /// Which subscription.
        subscription: SubscriptionId,
        /// The interval the notifier granted.
        expires: u32,
    },
    /// A NOTIFY of a subscription (RFC 6665): its state and body, parsed
    /// when its type is one of [`Status`]'s.
    Notify {
        /// Which subscription.
        subscription: SubscriptionId,
        /// `active`, `pending` or `terminated` (its Subscription-State).
        state: String,
        /// The body's Content-Type (empty when there is no body).
        content_type: String,
        /// The body, as sent.
        body: String,
        /// The body parsed: a lamp, a voicemail summary, presence.
        status: Option<Status>,
    },
    /// A subscription ended: refused (`code`), terminated by the notifier
    /// (its reason), or unsubscribed.
    SubscriptionEnded {
        /// Which subscription.
        subscription: SubscriptionId,
        /// The refusal's status, when a SUBSCRIBE was refused.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
    /// A MESSAGE arrived (RFC 3428), in a call's dialog or outside any.
    Message {
        /// The call it came in, if any.
        call: Option<CallId>,
        /// The sender's URI.
        from: String,
        /// Its Content-Type (`text/plain`…).
        content_type: String,
        /// The text.
        body: String,
        /// Its headers named by [`Config::incoming_header_prefixes`](crate::Config::incoming_header_prefixes).
        headers: Vec<(String, String)>,
    },
    /// A MESSAGE we sent was accepted (2xx).
    MessageSent {
        /// Which one.
        id: MessageId,
    },
    /// A MESSAGE we sent was refused, or not answered (408), or the
    /// transport closed (503).
    MessageFailed {
        /// Which one.
        id: MessageId,
        /// The SIP status.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// A blind transfer's progress ([`UserAgent::transfer`](crate::UserAgent::transfer)): the REFER's
    /// answer (202: the far end will try), then each NOTIFY of the far
    /// end's call to the target (100, 180, then 200 or a failure).
    Transfer {
        /// Which call.
        call: CallId,
        /// The status: the REFER's, or the sipfrag's.
        code: u16,
        /// Its reason phrase.
        reason: String,
        /// No more progress will come: succeeded (2xx with `done`) or failed.
        done: bool,
    },
    /// The far end asks us to call `target` instead (RFC 3515: a blind
    /// transfer, we are the one transferred). The REFER was accepted
    /// (202); the app follows it with [`UserAgent::accept_referral`](crate::UserAgent::accept_referral), whose
    /// new call's progress the far end then hears of, or refuses it with
    /// [`UserAgent::decline_referral`](crate::UserAgent::decline_referral).
    Referred {
        /// The call the request came in.
        call: CallId,
        /// Whom to call (the Refer-To URI).
        target: String,
        /// Who asked for it (the Referred-By header), if said.
        referred_by: Option<String>,
        /// An attended transfer: the new call replaces the target's call
        /// with the one who asked (RFC 5589 §7).
        attended: bool,
    },
    /// Call `call` was replaced by call `by` (RFC 3891), which is up: it
    /// ends now, with a BYE.
    Replaced {
        /// The call that ends.
        call: CallId,
        /// The call that took its place.
        by: CallId,
    },
    /// A call kept through a dropped transport moved to the new one: its
    /// re-INVITE was answered with `sdp`. Nothing changed if the far end's
    /// media is the one the shell already talks to (same ICE credentials
    /// and DTLS fingerprint); a shell that finds otherwise hangs up, since
    /// the media it has can no longer reach the far end.
    Recovered {
        /// Which call.
        call: CallId,
        /// The far end's answer.
        sdp: String,
    },
    /// The call ended: `code` is the failure's SIP status (or 408/503 when
    /// the far end or the transport went silent, 487 for a call hung up
    /// before it was up), `None` for a BYE of a call that was up. A call
    /// that never reported [`Event::Accepted`] always ends with a code.
    Hangup {
        /// Which call.
        call: CallId,
        /// The SIP status of a failed call.
        code: Option<u16>,
        /// The reason phrase, or "BYE".
        reason: String,
    },
}

impl Event {
    /// The event's conventional name (`registered`, `registration_failed`…).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Registering => "registering",
            Event::Registered { .. } => "registered",
            Event::RegistrationFailed { .. } => "registration_failed",
            Event::Unregistering => "unregistering",
            Event::Unregistered { .. } => "unregistered",
            Event::KeepAliveTimeout => "keepalive_timeout",
            Event::Incoming { .. } => "incoming",
            Event::Calling { .. } => "calling",
            Event::Ringing { .. } => "ringing",
            Event::Progress { .. } => "progress",
            Event::Accepted { .. } => "accepted",
            Event::CandidatesNeeded { .. } => "candidates_needed",
            Event::RemoteCandidates { .. } => "remote_candidates",
            Event::Hangup { .. } => "hangup",
            Event::Transfer { .. } => "transfer",
            Event::Referred { .. } => "referred",
            Event::Recovered { .. } => "recovered",
            Event::Updating { .. } => "updating",
            Event::Updated { .. } => "updated",
            Event::Hold { .. } => "hold",
            Event::UpdateFailed { .. } => "update_failed",
            Event::Dtmf { .. } => "dtmf",
            Event::Info { .. } => "info",
            Event::SubscriptionActive { .. } => "subscription_active",
            Event::Notify { .. } => "notify",
            Event::SubscriptionEnded { .. } => "subscription_ended",
            Event::Replaced { .. } => "replaced",
            Event::InfoAnswered { .. } => "info_answered",
            Event::Recording { .. } => "recording",
            Event::Message { .. } => "message",
            Event::MessageSent { .. } => "message_sent",
            Event::MessageFailed { .. } => "message_failed",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Registered { expires } => write!(f, "registered for {expires} s"),
            Event::RegistrationFailed { code, reason, .. } => {
                write!(f, "registration failed: {code} {reason}")
            }
            Event::Unregistered { reason, .. } => write!(f, "unregistered: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

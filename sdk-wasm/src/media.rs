//! One call's media: the browser's `RTCPeerConnection`, the microphone (and
//! camera) it sends, and the offer/answer steps the core asks for.
//!
//! SIP carries one complete SDP per offer or answer (no trickle ICE), so
//! a local description is read once ICE gathering has finished, or after
//! a bounded wait when some interface is slow. Toward an ICE-lite far side
//! there is no wait at all: it finds the browser by the browser's own
//! connectivity checks, so candidates in the SDP buy nothing but the
//! gathering time. The core says which (`UserAgent::candidates_optional`);
//! each step here takes its word as `gather`.

use crate::prelude::*;
use js_sys::{Array, Promise};
use sipline_core::RemoteCandidate;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MediaStream, MediaStreamConstraints, MediaStreamTrack, RtcConfiguration, RtcIceCandidateInit,
    RtcIceGatheringState, RtcOfferOptions, RtcPeerConnection, RtcRtpReceiver, RtcRtpSender,
    RtcRtpTransceiver, RtcRtpTransceiverDirection, RtcSdpType, RtcSessionDescriptionInit,
    RtcSignalingState,
};

use crate::js;

/// What a call sends: the app's choice per call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Want {
    pub audio: bool,
    pub video: bool,
}

/// The page-wide media settings, from `Phone.connect`'s options.
#[derive(Clone, Debug)]
pub(crate) struct MediaSettings {
    /// `RTCConfiguration.iceServers` as the app gave it (often empty: the
    /// relay is ICE-lite on a known address).
    pub ice_servers: JsValue,
    /// The longest wait for ICE gathering before the SDP is sent as is.
    pub gathering_timeout_ms: i32,
    /// The app's word on whether the far side of our offers is an ICE-lite
    /// gateway; `None`: as the relay says at registration.
    pub ice_lite: Option<bool>,
}

/// A call's peer connection and local stream.
pub(crate) struct Media {
    pc: RtcPeerConnection,
    local: MediaStream,
    settings: MediaSettings,
}

impl Media {
    /// Asks for the microphone (and camera) and builds the peer connection
    /// that will send them.
    pub(crate) async fn open(want: Want, settings: &MediaSettings) -> Result<Media, JsValue> {
        let constraints = MediaStreamConstraints::new();
        constraints.set_audio(&JsValue::from_bool(want.audio));
        constraints.set_video(&JsValue::from_bool(want.video));
        let devices = js::window()?.navigator().media_devices()?;
        let local: MediaStream =
            JsFuture::from(devices.get_user_media_with_constraints(&constraints)?)
                .await?
                .dyn_into()?;
        let config = RtcConfiguration::new();
        if !settings.ice_servers.is_undefined() {
            config.set_ice_servers(&settings.ice_servers);
        }
        let pc = match RtcPeerConnection::new_with_configuration(&config) {
            Ok(pc) => pc,
            Err(e) => {
                // The devices must not stay on for a call that cannot be.
                stop_tracks(&local);
                return Err(e);
            }
        };
        for track in local.get_tracks().iter() {
            let track: MediaStreamTrack = track.dyn_into()?;
            pc.add_track_0(&track, &local);
        }
        Ok(Media {
            pc,
            local,
            settings: settings.clone(),
        })
    }

    /// A new offer (the first, or a re-INVITE's), set as local description;
    /// its candidates gathered first when `gather`.
    pub(crate) async fn offer(&self, gather: bool) -> Result<String, JsValue> {
        self.offer_with(false, gather).await
    }

    /// [`Self::offer`], with new ICE credentials when `ice_restart` (after
    /// a network change: the relay then checks the new path).
    pub(crate) async fn offer_with(
        &self,
        ice_restart: bool,
        gather: bool,
    ) -> Result<String, JsValue> {
        let options = RtcOfferOptions::new();
        options.set_ice_restart(ice_restart);
        let offer = JsFuture::from(self.pc.create_offer_with_rtc_offer_options(&options)).await?;
        self.set_local(&offer, gather).await
    }

    /// The answer to the far end's `offer`, set as local description; its
    /// candidates gathered first when `gather`.
    pub(crate) async fn answer(&self, offer: &str, gather: bool) -> Result<String, JsValue> {
        self.set_remote(RtcSdpType::Offer, offer).await?;
        let answer = JsFuture::from(self.pc.create_answer()).await?;
        self.set_local(&answer, gather).await
    }

    /// The far end's answer: provisional (early media, a 183) or final.
    pub(crate) async fn accept(&self, sdp: &str, provisional: bool) -> Result<(), JsValue> {
        let kind = if provisional {
            RtcSdpType::Pranswer
        } else {
            RtcSdpType::Answer
        };
        self.set_remote(kind, sdp).await
    }

    /// Withdraws an offer the far end refused: back to the last agreed
    /// session, with the directions it had.
    pub(crate) async fn rollback(&self, held: bool) -> Result<(), JsValue> {
        let init = RtcSessionDescriptionInit::new(RtcSdpType::Rollback);
        JsFuture::from(self.pc.set_local_description(&init)).await?;
        self.set_held(held).await
    }

    /// Withdraws a remote offer we could not answer: back to the last
    /// agreed session.
    pub(crate) async fn rollback_remote(&self) -> Result<(), JsValue> {
        if self.pc.signaling_state() == RtcSignalingState::HaveRemoteOffer {
            let init = RtcSessionDescriptionInit::new(RtcSdpType::Rollback);
            JsFuture::from(self.pc.set_remote_description(&init)).await?;
        }
        Ok(())
    }

    /// Hold (`sendonly`) or resume (`sendrecv`) every stream; the next
    /// offer carries it. On hold nothing is sent at all: `sendonly` would
    /// allow the live microphone, but whoever pressed hold does not expect
    /// to be heard, so each sender's track is taken off (and put back on
    /// resume, muted or not as it was: mute stays the app's own).
    pub(crate) async fn set_held(&self, held: bool) -> Result<(), JsValue> {
        let direction = if held {
            RtcRtpTransceiverDirection::Sendonly
        } else {
            RtcRtpTransceiverDirection::Sendrecv
        };
        for t in self.pc.get_transceivers().iter() {
            let Ok(t) = t.dyn_into::<RtcRtpTransceiver>() else {
                continue;
            };
            t.set_direction(direction);
            // The receiver's track tells the kind even while the sender
            // has none.
            let kind = t.receiver().track().kind();
            let track = if held { None } else { self.local_track(&kind) };
            JsFuture::from(t.sender().replace_track(track.as_ref())).await?;
        }
        Ok(())
    }

    /// The local stream's first track of `kind` (`audio`, `video`).
    fn local_track(&self, kind: &str) -> Option<MediaStreamTrack> {
        let tracks = match kind {
            "audio" => self.local.get_audio_tracks(),
            "video" => self.local.get_video_tracks(),
            _ => return None,
        };
        tracks.get(0).dyn_into().ok()
    }

    /// Mutes or unmutes what we send, without renegotiating: the track
    /// sends silence (or black) while disabled.
    pub(crate) fn set_muted(&self, muted: bool) {
        for track in self.local.get_audio_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                track.set_enabled(!muted);
            }
        }
    }

    /// Sends `digits` as RFC 4733 telephone-events in the audio stream;
    /// `false` when a character is not a DTMF tone (or `,`, a pause) or
    /// the call has no audio sender able to.
    pub(crate) fn send_dtmf(&self, digits: &str, duration_ms: u32, gap_ms: u32) -> bool {
        if digits.is_empty()
            || !digits
                .chars()
                .all(|c| c.is_ascii_digit() || "*#,ABCDabcd".contains(c))
        {
            return false;
        }
        for sender in self.pc.get_senders().iter() {
            let Ok(sender) = sender.dyn_into::<RtcRtpSender>() else {
                continue;
            };
            let is_audio = sender.track().is_some_and(|t| t.kind() == "audio");
            if let (true, Some(dtmf)) = (is_audio, sender.dtmf()) {
                dtmf.insert_dtmf_with_duration_and_inter_tone_gap(digits, duration_ms, gap_ms);
                return true;
            }
        }
        false
    }

    /// What the far end sends, as one stream to attach to an `<audio>` or
    /// `<video>` element.
    pub(crate) fn remote_stream(&self) -> Result<MediaStream, JsValue> {
        let tracks = Array::new();
        for receiver in self.pc.get_receivers().iter() {
            if let Ok(receiver) = receiver.dyn_into::<RtcRtpReceiver>() {
                tracks.push(&receiver.track());
            }
        }
        MediaStream::new_with_tracks(&tracks)
    }

    /// What we send (the microphone, the camera): the stream itself, which
    /// `close` stops. (`self.local.clone()` would be the JS method
    /// `MediaStream.clone()`: new tracks on each read, which nothing stops,
    /// keeping the microphone open after the call.)
    pub(crate) fn local_stream(&self) -> MediaStream {
        Clone::clone(&self.local)
    }

    /// The connection's `RTCStatsReport`, for RTT, jitter and loss.
    pub(crate) fn stats(&self) -> Promise {
        self.pc.get_stats()
    }

    /// Stops the devices and the connection: nothing is sent after a call.
    pub(crate) fn close(&self) {
        stop_tracks(&self.local);
        self.pc.close();
    }

    /// Our local description as it is now (every candidate gathered so
    /// far in it), for trickling them.
    pub(crate) fn local_sdp(&self) -> Option<String> {
        self.pc.local_description().map(|d| d.sdp())
    }

    /// The far end's trickled candidates, added to the connection; `end`:
    /// it has no more. A candidate the browser refuses is logged and
    /// skipped: the others may still connect.
    pub(crate) async fn add_candidates(&self, candidates: &[RemoteCandidate], end: bool) {
        let add = |init: &RtcIceCandidateInit| {
            JsFuture::from(
                self.pc
                    .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(init)),
            )
        };
        for c in candidates {
            let init = RtcIceCandidateInit::new(&c.candidate);
            init.set_sdp_mid(c.mid.as_deref());
            init.set_sdp_m_line_index(u16::try_from(c.index).ok());
            if let Err(e) = add(&init).await {
                web_sys::console::warn_2(&JsValue::from_str("sipline: candidate refused"), &e);
            }
        }
        if end {
            // An empty candidate is the end of them (for the bundle).
            let init = RtcIceCandidateInit::new("");
            init.set_sdp_m_line_index(Some(0));
            let _ = add(&init).await;
        }
    }

    /// Whether `sdp` (an answer after a reconnect) names the far end this
    /// connection already talks to: the same ICE user fragment and DTLS
    /// fingerprint as its remote description.
    pub(crate) fn same_far_end(&self, sdp: &str) -> bool {
        let Some(current) = self.pc.remote_description() else {
            return false;
        };
        sipline_core::sdp::same_transport(&current.sdp(), sdp)
    }

    async fn set_remote(&self, kind: RtcSdpType, sdp: &str) -> Result<(), JsValue> {
        let init = RtcSessionDescriptionInit::new(kind);
        init.set_sdp(sdp);
        JsFuture::from(self.pc.set_remote_description(&init)).await?;
        Ok(())
    }

    /// Sets `description` as local and returns the SDP: at once with the
    /// candidates it has, or, when `gather`, once ICE gathering is over (or
    /// the bounded wait is), candidates included.
    async fn set_local(&self, description: &JsValue, gather: bool) -> Result<String, JsValue> {
        let init: RtcSessionDescriptionInit = description.clone().unchecked_into();
        JsFuture::from(self.pc.set_local_description(&init)).await?;
        if gather {
            self.gathered().await;
        }
        self.pc
            .local_description()
            .map(|d| d.sdp())
            .ok_or_else(|| js::error("no local description"))
    }

    /// When the bounded wait for ICE gathering ends, on the page's clock
    /// (`js::now_ms`), if it starts now.
    pub(crate) fn gathering_deadline(&self) -> f64 {
        js::now_ms() + f64::from(self.settings.gathering_timeout_ms)
    }

    /// Whether ICE gathering has ended.
    pub(crate) fn gathering_complete(&self) -> bool {
        self.pc.ice_gathering_state() == RtcIceGatheringState::Complete
    }

    /// Resolves when ICE gathering is complete, or when the wait is over.
    pub(crate) async fn gathered(&self) {
        let deadline = self.gathering_deadline();
        while !self.gathering_complete() && js::now_ms() < deadline {
            self.gathering_news(deadline, false).await;
        }
    }

    /// Resolves at the next change of ICE gathering's state (and, with
    /// `candidates`, at the next candidate gathered) or at `deadline`:
    /// woken by the browser's event (no polling), the promise's own
    /// `resolve` being the handler, so no closure is kept alive.
    pub(crate) async fn gathering_news(&self, deadline: f64, candidates: bool) {
        let left = deadline - js::now_ms();
        if left <= 0.0 {
            return;
        }
        let pc = &self.pc;
        let news = Promise::new(&mut |resolve, _| {
            pc.set_onicegatheringstatechange(Some(&resolve));
            if candidates {
                pc.set_onicecandidate(Some(&resolve));
            }
            if let Some(w) = web_sys::window() {
                // Whole milliseconds, rounded up: never a busy loop.
                let ms = js_sys::Math::ceil(left) as i32;
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            }
        });
        let _ = JsFuture::from(news).await;
        self.pc.set_onicegatheringstatechange(None);
        self.pc.set_onicecandidate(None);
    }
}

fn stop_tracks(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
            track.stop();
        }
    }
}

//! A call with an audio and a video leg, its browser from `sipline-load`:
//! each stream to its leg by payload type and SSRC.

use super::*;
use sipline_load::peer::{BrowserPeer, RemoteTransport, connect_in_memory};
use sipline_relay::media::ice::IceLite;
use sipline_relay::media::session::{Forward, Session};

const AUDIO_PBX: &str = "10.0.0.5:16384";
const VIDEO_PBX: &str = "10.0.0.5:16390";

fn packet(pt: u8, ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = rtp(seq);
    p[1] = pt;
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

#[test]
fn each_stream_goes_to_its_leg_by_payload_type_and_ssrc() {
    let identity = Identity::generate().expect("identity");
    let mut peer = BrowserPeer::new(addr(BROWSER)).expect("browser");
    let mut ice = IceLite::new("rlyU", "relaypassword0123456789a");
    ice.set_remote_ufrag(peer.ufrag());
    let dtls = DtlsServer::new(&identity, addr(RELAY), peer.fingerprint()).expect("server");
    let mut session = Session::new(ice, dtls);
    session.set_payload_legs(&[(0, 0), (101, 0), (96, 1), (97, 1)]);
    session.set_pbx(0, addr(AUDIO_PBX), addr("10.0.0.5:16385"));
    session.set_pbx(1, addr(VIDEO_PBX), addr("10.0.0.5:16391"));
    let remote = RemoteTransport {
        addr: addr(RELAY),
        ufrag: "rlyU".into(),
        pwd: "relaypassword0123456789a".into(),
        fingerprint: identity.fingerprint().into(),
    };
    let mut keys =
        connect_in_memory(&mut peer, &remote, &mut session, addr(BROWSER)).expect("connected");
    let mut send = |session: &mut Session, plain: &[u8], rtcp: bool| {
        let mut buf = sealed(&mut keys.outbound, plain, rtcp);
        let n = buf.len();
        buf.resize(n + 64, 0);
        session.from_browser(Instant::now(), addr(BROWSER), &mut buf, n)
    };
    let leg_of = |f: Result<Forward, _>| match f {
        Ok(Forward::ToPbx { leg, to, .. }) => Some((leg, to)),
        _ => None,
    };
    let (audio_ssrc, video_ssrc) = (0xa0d1_0000, 0x0f1d_e000);
    assert_eq!(
        leg_of(send(&mut session, &packet(0, audio_ssrc, 1), false)),
        Some((0, addr(AUDIO_PBX)))
    );
    assert_eq!(
        leg_of(send(&mut session, &packet(96, video_ssrc, 1), false)),
        Some((1, addr(VIDEO_PBX)))
    );
    assert!(
        leg_of(send(&mut session, &packet(45, video_ssrc, 2), false)).is_none(),
        "a payload type of no section is dropped"
    );
    // The video stream's sender report goes to the video leg's RTCP.
    let mut sr = vec![0x80u8, 200, 0, 6];
    sr.extend_from_slice(&video_ssrc.to_be_bytes());
    sr.resize(28, 7);
    assert_eq!(
        leg_of(send(&mut session, &sr, true)),
        Some((1, addr("10.0.0.5:16391")))
    );
    // The PBX's video comes back on the video leg.
    let mut buf = packet(96, 0x5eed, 1);
    let n = buf.len();
    buf.resize(n + 64, 0);
    let back = session.from_pbx(Instant::now(), 1, addr(VIDEO_PBX), false, &mut buf, n);
    assert!(matches!(back, Ok(Forward::ToBrowser { .. })), "{back:?}");
    let wrong_leg = session.from_pbx(Instant::now(), 0, addr(VIDEO_PBX), false, &mut buf, n);
    assert!(
        wrong_leg.is_err(),
        "the audio leg takes only the audio address"
    );
}

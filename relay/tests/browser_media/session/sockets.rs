//! The same call through the relay's real media sockets on 127.0.0.1: bound
//! from the pool as the relay binds them, one shared browser port, the RTP
//! timeout, every call's end reported once.

use super::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sipline_relay::ids::{ConnId, MediaId};
use sipline_relay::media::calls::{Carrier, Command, MediaCalls, MediaConfig, PortBinder, Side};
use sipline_relay::net::engine::Engine;
use sipline_relay::net::media::{Ended, MediaFigures, MediaSockets, SocketStash};
use tokio::net::UdpSocket;

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The one call these tests run.
const CALL: MediaId = MediaId(1);

async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (n, from) = tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
        .await
        .expect("a datagram within 2 s")
        .expect("recv");
    buf.truncate(n);
    (buf, from)
}

/// A call's sockets, bound the way the relay binds them.
fn sockets(browser: u16, pbx: u16) -> MediaSockets {
    let mut stash = SocketStash::default();
    let (browser, pbx) = (SocketAddr::new(LO, browser), SocketAddr::new(LO, pbx));
    stash.bind(browser, false).expect("bind");
    stash.bind(pbx, true).expect("bind");
    MediaSockets::take(&stash, Some(browser), &[pbx]).expect("take")
}

/// Completes DTLS with the relay at `relay` over `browser`; the
/// browser's SRTP contexts, out and in.
async fn handshake(
    browser: &UdpSocket,
    relay: SocketAddr,
    mut client: Endpoint,
    config: Arc<rtc_dtls::config::HandshakeConfig>,
) -> (Context, Context) {
    client
        .connect(Instant::now(), relay, config, None)
        .expect("connect");
    let mut done = false;
    for _ in 0..16 {
        while let Some(t) = client.poll_transmit() {
            browser.send_to(&t.message, relay).await.expect("send");
        }
        if done {
            break;
        }
        let (datagram, _) = recv(browser).await;
        let events = client
            .read(Instant::now(), relay, None, datagram.as_slice().into())
            .expect("client reads");
        done |= events
            .iter()
            .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
    }
    assert!(done, "DTLS completed over UDP");
    browser_contexts(&client, relay, Profile::AeadAes128Gcm)
}

/// One UDP port for every browser: two browsers on the same
/// address, each its own call, told apart by their ICE usernames
/// and then by their ports; each call's media reaches its own PBX
/// ports and comes back to its own browser.
#[tokio::test]
async fn browsers_on_one_shared_port_each_get_their_own_call() {
    let shared = SocketAddr::new(LO, 47040);
    let (engine, mut ends) = Engine::start(
        1,
        Duration::from_secs(10),
        MediaFigures::default(),
        Some(shared),
    )
    .expect("engine");
    let identity = Identity::generate().expect("identity");
    let mut stash = SocketStash::default();
    let mut calls = Vec::new();
    for (n, ours, pwd, pbx_port) in [
        (1, "rlyA", "passwordofcallA012345678", 47042),
        (2, "rlyB", "passwordofcallB012345678", 47046),
    ] {
        let id = MediaId(n);
        let pbx = SocketAddr::new(LO, pbx_port);
        stash.bind(pbx, true).expect("bind");
        let sockets = MediaSockets::take(&stash, None, &[pbx]).expect("take");
        assert!(
            sockets.browser_addr().is_none(),
            "the shared port serves it"
        );
        engine.open(id, sockets).expect("opened");
        let pbx_rtp = UdpSocket::bind((LO, 0)).await.expect("bind");
        engine.apply(Command::Pbx {
            id,
            leg: 0,
            rtp: pbx_rtp.local_addr().expect("addr"),
            rtcp: pbx_rtp.local_addr().expect("addr"),
            clock: 8000,
        });
        let (client, fp, config) =
            super::super::browser(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
        let mut ice = IceLite::new(ours, pwd);
        ice.set_remote_ufrag("brwU");
        let dtls = DtlsServer::new(&identity, shared, &fp).expect("server");
        engine.apply(Command::Browser {
            id,
            session: Box::new(Session::new(ice, dtls)),
        });
        let browser = UdpSocket::bind((LO, 0)).await.expect("bind");
        calls.push((id, ours, pwd, pbx, pbx_rtp, browser, Some(client), config));
    }

    // A stranger's datagram names no call: dropped, nothing breaks.
    let stranger = UdpSocket::bind((LO, 0)).await.expect("bind");
    stranger.send_to(&rtp(1), shared).await.expect("send");

    let mut contexts = Vec::new();
    for (_, ours, pwd, _, _, browser, client, config) in calls.iter_mut() {
        // Each browser's check is answered with its call's
        // password (the other call would refuse it).
        browser
            .send_to(&check_as(&format!("{ours}:brwU"), pwd), shared)
            .await
            .expect("send");
        let (answer, from) = recv(browser).await;
        assert_eq!((from, &answer[..2]), (shared, &[0x01u8, 0x01][..]));
        let client = client.take().expect("one handshake each");
        contexts.push(handshake(browser, shared, client, config.clone()).await);
    }
    for (i, ((id, _, _, pbx, pbx_rtp, browser, _, _), (out, inb))) in
        calls.iter().zip(contexts.iter_mut()).enumerate()
    {
        // Browser → its own PBX ports, and back to it alone.
        let plain = rtp(100 + i as u16);
        browser
            .send_to(&sealed(out, &plain, false), shared)
            .await
            .expect("send");
        let (got, from) = recv(pbx_rtp).await;
        assert_eq!((got, from), (plain.clone(), *pbx), "call {id:?}");
        pbx_rtp.send_to(&plain, *pbx).await.expect("send");
        let (mut got, from) = recv(browser).await;
        assert_eq!(from, shared);
        let n = inb
            .unprotect_rtp(&mut got)
            .expect("its browser decrypts it");
        assert_eq!(&got[..n], &plain[..]);
    }
    for (id, ..) in &calls {
        engine.close(*id);
    }
    for (id, ..) in &calls {
        let (ended, why) = ends.recv().await.expect("an end");
        assert_eq!(ended, *id);
        assert!(matches!(why, Ended::Stopped), "{why:?}");
    }
}

#[tokio::test]
async fn a_call_s_media_crosses_real_sockets() {
    let sockets = sockets(47000, 47002);
    let relay_browser = sockets.browser_addr().expect("its own").expect("addr");
    let relay_rtp = sockets.pbx_addr().expect("addr");
    assert_eq!(relay_rtp.port() % 2, 0, "RTP on an even port");

    let browser = UdpSocket::bind((LO, 0)).await.expect("bind");
    let pbx_rtp = UdpSocket::bind((LO, 0)).await.expect("bind");
    let pbx_rtcp = UdpSocket::bind((LO, 0)).await.expect("bind");
    let identity = Identity::generate().expect("identity");
    let (client, fp, config) =
        super::super::browser(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
    let mut ice = IceLite::new("rlyU", "relaypassword0123456789a");
    ice.set_remote_ufrag("brwU");
    let dtls = DtlsServer::new(&identity, relay_browser, &fp).expect("server");
    let figures = MediaFigures::default();
    let (engine, mut ends) =
        Engine::start(1, Duration::from_secs(10), figures.clone(), None).expect("engine");
    engine.open(CALL, sockets).expect("opened");
    // The PBX's address may come first (an incoming call).
    engine.apply(Command::Pbx {
        id: CALL,
        leg: 0,
        rtp: pbx_rtp.local_addr().expect("addr"),
        rtcp: pbx_rtcp.local_addr().expect("addr"),
        clock: 8000,
    });
    engine.apply(Command::Browser {
        id: CALL,
        session: Box::new(Session::new(ice, dtls)),
    });

    // ICE check, answered from the WebRTC port.
    browser
        .send_to(&check(), relay_browser)
        .await
        .expect("send");
    let (answer, from) = recv(&browser).await;
    assert_eq!((from, &answer[..2]), (relay_browser, &[0x01u8, 0x01][..]));

    // DTLS over the wire.
    let (mut out, mut inb) = handshake(&browser, relay_browser, client, config).await;

    // Browser → PBX: SRTP in, plain RTP out of the even port.
    let plain = rtp(7);
    browser
        .send_to(&sealed(&mut out, &plain, false), relay_browser)
        .await
        .expect("send");
    let (got, from) = recv(&pbx_rtp).await;
    assert_eq!((got, from), (plain.clone(), relay_rtp));
    // SRTCP in, RTCP out of the odd port to the PBX's RTCP port.
    let sr = [
        0x80u8, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    browser
        .send_to(&sealed(&mut out, &sr, true), relay_browser)
        .await
        .expect("send");
    let (got, from) = recv(&pbx_rtcp).await;
    assert_eq!(got, sr.to_vec());
    assert_eq!(from.port(), relay_rtp.port() + 1);

    // PBX → browser: plain RTP and RTCP in, SRTP and SRTCP out.
    pbx_rtp.send_to(&plain, relay_rtp).await.expect("send");
    let (mut got, from) = recv(&browser).await;
    assert_eq!(from, relay_browser);
    let n = inb
        .unprotect_rtp(&mut got)
        .expect("the browser decrypts it");
    assert_eq!(&got[..n], &plain[..]);
    let rtcp_port = SocketAddr::new(LO, relay_rtp.port() + 1);
    pbx_rtcp.send_to(&sr, rtcp_port).await.expect("send");
    let (mut got, _) = recv(&browser).await;
    let n = inb
        .unprotect_rtcp(&mut got)
        .expect("the browser decrypts it");
    assert_eq!(&got[..n], &sr[..]);

    // An oversized datagram is dropped whole, never cut short.
    let mut big = rtp(8);
    big.resize(2000, 0xd5);
    pbx_rtp.send_to(&big, relay_rtp).await.expect("send");
    let next = rtp(9);
    pbx_rtp.send_to(&next, relay_rtp).await.expect("send");
    let (mut got, _) = recv(&browser).await;
    let n = inb
        .unprotect_rtp(&mut got)
        .expect("the browser decrypts it");
    assert_eq!(&got[..n], &next[..]);

    engine.close(CALL); // the signalling ends the call
    let (id, ended) = ends.recv().await.expect("the call's end");
    assert_eq!(id, CALL);
    assert!(matches!(ended, Ended::Stopped), "{ended:?}");
    let total = figures.total();
    assert_eq!(
        (total.to_pbx, total.to_browser),
        (2, 3),
        "published at the end"
    );
    assert_eq!(total.bytes_to_pbx, (plain.len() + sr.len()) as u64);
}

#[tokio::test]
async fn every_call_reports_its_end_once_also_when_the_engine_stops() {
    let figures = MediaFigures::default();
    let (engine, mut ends) =
        Engine::start(2, Duration::from_secs(10), figures, None).expect("engine");
    assert_eq!(engine.workers(), 2);
    // Calls 1 and 2 land on different workers.
    engine
        .open(MediaId(1), sockets(47010, 47012))
        .expect("opened");
    engine
        .open(MediaId(2), sockets(47020, 47022))
        .expect("opened");
    engine.close(MediaId(1));
    engine.close(MediaId(1)); // twice: the second finds nothing
    let (id, ended) = ends.recv().await.expect("call 1's end");
    assert_eq!(id, MediaId(1));
    assert!(matches!(ended, Ended::Stopped), "{ended:?}");
    // A command for a call that is gone is dropped.
    engine.apply(Command::Answered { id: MediaId(1) });
    drop(engine); // the relay stops: its threads end their calls
    let (id, ended) = ends.recv().await.expect("call 2's end");
    assert_eq!(id, MediaId(2));
    assert!(matches!(ended, Ended::Stopped), "{ended:?}");
    assert!(
        ends.recv().await.is_none(),
        "nothing more, the workers gone"
    );
    // Their ports are free again.
    sockets(47010, 47012);
    sockets(47020, 47022);
}

/// The media table hands a pair out again as soon as its call
/// ended; the engine's worker closes the old sockets a moment
/// later: the bind waits for that, it does not fail.
#[tokio::test]
async fn a_closed_call_s_ports_bind_again_at_once() {
    let (engine, mut ends) =
        Engine::start(1, Duration::from_secs(10), MediaFigures::default(), None).expect("engine");
    let mut stash = SocketStash::default();
    // Below the kernel's ephemeral range (32768-60999): this test
    // binds its ports forty times, and in that range any other
    // test's port-0 socket (or baresip's RTP range) may take one
    // in between.
    let (browser, pbx) = (SocketAddr::new(LO, 29030), SocketAddr::new(LO, 29032));
    for round in 0..20 {
        stash.bind(browser, false).expect("bind");
        stash.bind(pbx, true).expect("bind");
        let sockets = MediaSockets::take(&stash, Some(browser), &[pbx]).expect("take");
        let call = MediaId(round);
        engine.open(call, sockets).expect("opened");
        engine.close(call);
        stash.unbind(browser);
        stash.unbind(pbx);
    }
    stash.bind(browser, false).expect("bind");
    for round in 0..20 {
        let (id, ended) = ends.recv().await.expect("an end");
        assert_eq!(id, MediaId(round));
        assert!(matches!(ended, Ended::Stopped), "{ended:?}");
    }
}

#[tokio::test]
async fn a_port_another_program_holds_is_passed_over() {
    let _squatter = UdpSocket::bind((LO, 47200)).await.expect("bind 47200");
    let stash = SocketStash::default();
    let cfg = MediaConfig {
        port_min: 47200,
        port_max: 47209,
        ..MediaConfig::default()
    };
    let identity = Arc::new(Identity::generate().expect("identity"));
    let mut calls = MediaCalls::new(cfg, identity, [1; 32])
        .expect("range")
        .with_binder(Box::new(stash.clone()));
    let offer =
        include_str!("../../../../sdk-wasm/core/tests/corpus/valid/invite_chromium_webrtc_sdp.sip");
    let body = offer.split("\r\n\r\n").nth(1).expect("a body");
    calls
        .sdp(
            ConnId(1),
            "c",
            Side::Browser,
            Carrier::Request(sipline_core::sip::Method::Invite),
            body.as_bytes(),
        )
        .expect("carried");
    let Some(Command::Open { browser, pbx, .. }) = calls.poll_command() else {
        panic!("the call opens first")
    };
    assert_eq!((browser.port(), pbx[0].port()), (47202, 47204));
    let sockets = MediaSockets::take(&stash, Some(browser), &pbx).expect("bound already");
    assert_eq!(sockets.pbx_addr().expect("addr"), pbx[0]);
    assert_eq!(calls.ports().0, 2, "the squatted pair went back");
}

#[tokio::test]
async fn silence_after_the_answer_ends_the_call() {
    let sockets = sockets(47100, 47102);
    let identity = Identity::generate().expect("identity");
    let dtls = DtlsServer::new(
        &identity,
        sockets.browser_addr().expect("its own").expect("addr"),
        "sha-256 00",
    )
    .expect("server");
    let session = Session::new(IceLite::new("rlyU", "relaypassword0123456789a"), dtls);
    let (engine, mut ends) =
        Engine::start(1, Duration::from_millis(300), MediaFigures::default(), None)
            .expect("engine");
    engine.open(CALL, sockets).expect("opened");
    engine.apply(Command::Browser {
        id: CALL,
        session: Box::new(session),
    });
    // Ringing is silent: no timeout before the answer.
    assert!(
        tokio::time::timeout(Duration::from_millis(600), ends.recv())
            .await
            .is_err(),
        "still running while unanswered"
    );
    engine.apply(Command::Answered { id: CALL });
    let (id, ended) = tokio::time::timeout(Duration::from_secs(5), ends.recv())
        .await
        .expect("ended by the RTP timeout")
        .expect("the call's end");
    assert_eq!(id, CALL);
    assert!(matches!(ended, Ended::MediaTimeout), "{ended:?}");
}

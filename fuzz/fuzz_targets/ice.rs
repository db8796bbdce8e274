//! The relay's ICE-lite agent (`sipline_relay::media::ice::IceLite`) on
//! arbitrary datagrams and on connectivity checks signed right or wrong,
//! across an ICE restart.
//!
//! Oracles, beyond "no panic":
//! - a check with our credentials, a right MESSAGE-INTEGRITY and a right
//!   or absent FINGERPRINT is answered; the answer verifies independently
//!   (transaction echoed, XOR-MAPPED-ADDRESS naming the sender, integrity
//!   with our password, fingerprint);
//! - a wrong fingerprint, a wrong or missing integrity, or a username not
//!   ours is refused with that error;
//! - nothing refused changes where media goes (`selected`, `is_verified`).

#![no_main]

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sipline_fuzz::stun::{Check, Seal};
use sipline_relay::media::ice::{IceError, IceLite, MAX_ANSWER, is_stun};

/// The relay's credentials before and after a restart, and the browser's.
const UFRAG: &str = "rlyU";
const PWD: &str = "relaypassword0123456789a";
const NEW_UFRAG: &str = "rly2";
const NEW_PWD: &str = "restartedpassword0123456";
const BROWSER_UFRAG: &str = "brwU";

/// Largest check the relay hashes (Chromium's are about 100 bytes).
const MAX_REQUEST: usize = 548;

/// Whose credentials a check uses.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
enum Username {
    /// The current ones.
    Current,
    /// Those from before the restart.
    Previous,
    /// Ours, with another browser fragment.
    WrongRemote,
    /// Someone else's.
    Stranger,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Raw {
        from: u8,
        bytes: Vec<u8>,
    },
    Check {
        from: u8,
        who: Username,
        check: Check,
        /// The answer buffer is this much short of [`MAX_ANSWER`].
        short: Option<u8>,
    },
    /// An ICE restart: new credentials, the old ones answered until a
    /// check with the new ones passes.
    Restart,
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Whether the browser's fragment is known (from its SDP).
    remote_known: bool,
    ops: Vec<Op>,
}

/// One of a few browser addresses, IPv4 and IPv6.
fn source(n: u8) -> SocketAddr {
    match n % 4 {
        0 => SocketAddr::from(([192, 0, 2, 7], 50_000)),
        1 => SocketAddr::from(([192, 0, 2, 7], 50_002)),
        2 => SocketAddr::from(([198, 51, 100, 4], 61_000)),
        _ => SocketAddr::new(
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9)),
            50_000,
        ),
    }
}

/// The agent and what the test knows of it.
struct Agent {
    ice: IceLite,
    restarted: bool,
    /// Whether the old credentials still answer (until a check with the
    /// new ones passes).
    previous_live: bool,
}

impl Agent {
    fn credentials(&self) -> (&'static str, &'static str) {
        if self.restarted {
            (NEW_UFRAG, NEW_PWD)
        } else {
            (UFRAG, PWD)
        }
    }
}

fuzz_target!(|input: Input| {
    let mut ice = IceLite::new(UFRAG, PWD);
    if input.remote_known {
        ice.set_remote_ufrag(BROWSER_UFRAG);
    }
    let mut agent = Agent {
        ice,
        restarted: false,
        previous_live: false,
    };
    for op in &input.ops {
        let before = agent.ice.selected();
        let verified: Vec<bool> = (0..4u8).map(|n| agent.ice.is_verified(source(n))).collect();
        let mut out = [0u8; MAX_ANSWER];
        let refused = match op {
            Op::Raw { from, bytes } => {
                let result = agent.ice.handle(bytes, source(*from), &mut out);
                if !is_stun(bytes) {
                    assert_eq!(result, Err(IceError::Malformed), "not STUN");
                }
                result.is_err()
            }
            Op::Restart => {
                if agent.restarted {
                    continue; // one restart is enough to cover carrying over
                }
                let mut new = IceLite::new(NEW_UFRAG, NEW_PWD);
                new.set_remote_ufrag(BROWSER_UFRAG);
                new.carry_over(&agent.ice);
                assert_eq!(
                    new.selected(),
                    agent.ice.selected(),
                    "media keeps its address"
                );
                agent.ice = new;
                agent.restarted = true;
                agent.previous_live = true;
                false
            }
            Op::Check {
                from,
                who,
                check,
                short,
            } => {
                let from = source(*from);
                let (ufrag, pwd) = match who {
                    Username::Previous => (UFRAG, PWD),
                    _ => agent.credentials(),
                };
                let username = match who {
                    Username::Current | Username::Previous => format!("{ufrag}:{BROWSER_UFRAG}"),
                    Username::WrongRemote => format!("{ufrag}:other"),
                    Username::Stranger => format!("someone:{BROWSER_UFRAG}"),
                };
                let request = check.encode(&username, pwd.as_bytes());
                let room = MAX_ANSWER - short.map_or(0, |s| 1 + usize::from(s) % MAX_ANSWER);
                let result = agent.ice.handle(&request, from, &mut out[..room]);

                let ours = match who {
                    Username::Current => true,
                    Username::Previous => !agent.restarted || agent.previous_live,
                    Username::WrongRemote => !input.remote_known && !agent.restarted,
                    Username::Stranger => false,
                };
                let fits = request.len() <= MAX_REQUEST;
                let expected = if !fits {
                    Err(IceError::Malformed)
                } else if !ours {
                    Err(IceError::WrongUsername)
                } else if check.fingerprint == Seal::Wrong {
                    Err(IceError::BadFingerprint)
                } else if check.integrity != Seal::Good {
                    Err(IceError::BadIntegrity)
                } else if room < MAX_ANSWER {
                    Err(IceError::NoRoom)
                } else {
                    Ok(check.nominates())
                };
                match (result, expected) {
                    (Ok(v), Ok(nominated)) => {
                        assert_eq!(v.nominated, nominated, "USE-CANDIDATE");
                        let answer = &out[..v.answer_len];
                        if let Err(e) = sipline_fuzz::stun::verify_answer(
                            answer,
                            &request,
                            from,
                            pwd.as_bytes(),
                        ) {
                            panic!("a wrong answer to a right check: {e}");
                        }
                        if nominated {
                            assert_eq!(agent.ice.selected(), Some(from), "nominated");
                        }
                        if *who == Username::Current {
                            agent.previous_live = false;
                        }
                        false
                    }
                    (Err(got), Err(want)) => {
                        assert_eq!(got, want, "why the check was refused");
                        true
                    }
                    (got, want) => panic!("check answered {got:?}, expected {want:?}"),
                }
            }
        };
        if refused {
            assert_eq!(
                agent.ice.selected(),
                before,
                "a refused datagram moved media"
            );
            for (n, was) in (0..4u8).zip(verified) {
                assert_eq!(
                    agent.ice.is_verified(source(n)),
                    was,
                    "a refused datagram verified"
                );
            }
        }
    }
});

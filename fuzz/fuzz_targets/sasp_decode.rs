//! `tandem_core::sasp`: `Message::decode` of the input, the `Framer` over the input cut
//! into chunks, and an `LbSession` fed the same bytes as if they came from its GWM.
//!
//! Input: a control byte, then the byte stream. Control bits 0-5: chunk size − 1 (the
//! stream is pushed in chunks of 1 to 64 bytes); bit 6: pull mode (else push); bit 7:
//! changed only. The session is LB UID `LB1` with group `FARM1` = 10.10.10.1 and
//! 10.10.10.2, TCP port 80, as in the golden vectors; its own requests carry IDs 1
//! (Set LB State), 2 (Registration) and 3 (Get Weights).
//!
//! Checked besides "no panic": whatever decodes re-encodes and decodes equal; chunked
//! framing yields the same messages and the same error as one push; the session writes
//! only messages that decode, queues a bounded number of them and of events, holds only
//! registered members in its weight table, and after `Closed` does nothing more; its timers
//! never livelock.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tandem_core::config::{SaspGwm, SaspMode};
use tandem_core::sasp::codec::{DecodeError, Framer, Message};
use tandem_core::sasp::lb::{
    Groups, LbEvent, LbSession, LbSettings, MemberId, PROTOCOL_TCP, SessionState,
};

fn round_trip(m: &Message) {
    let bytes = m.to_bytes().expect("a decoded message re-encodes");
    assert_eq!(Message::decode(&bytes).as_ref(), Ok(m), "round trip");
}

/// Every message of `stream` pushed in chunks of `chunk`, and the error that ended it.
fn frame(stream: &[u8], chunk: usize) -> (Vec<Message>, Option<DecodeError>) {
    let mut f = Framer::new();
    let mut out = Vec::new();
    for part in stream.chunks(chunk) {
        f.push(part);
        loop {
            match f.next_message() {
                Ok(Some(m)) => out.push(m),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn session(ctl: u8) -> LbSession {
    let gwm = SaspGwm {
        mode: if ctl & 0x40 != 0 {
            SaspMode::Pull
        } else {
            SaspMode::Push
        },
        changed_only: ctl & 0x80 != 0,
        ..SaspGwm::default()
    };
    let members: BTreeSet<MemberId> = [1, 2]
        .map(|i| MemberId::new(IpAddr::V4(Ipv4Addr::new(10, 10, 10, i)), 80, PROTOCOL_TCP))
        .into();
    let groups = Groups::from([("FARM1".to_string(), members)]);
    LbSession::new(LbSettings::new("LB1", &gwm), groups).expect("valid settings")
}

fn drain(s: &mut LbSession, closed: &mut bool) {
    let mut n = 0;
    while let Some(bytes) = s.poll_transmit() {
        n += 1;
        assert!(n < 100, "the session queues messages without end");
        Message::decode(&bytes).expect("the session writes valid SASP");
    }
    let mut n = 0;
    while let Some(ev) = s.poll_event() {
        n += 1;
        assert!(n < 10_000, "the session queues events without end");
        assert!(!*closed, "an event after Closed: {ev:?}");
        if let LbEvent::Closed { .. } = ev {
            *closed = true;
        }
    }
    for (g, table) in s.weights() {
        let members = &s.groups()[g];
        assert!(
            table.keys().all(|m| members.contains(m)),
            "unregistered member kept"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    if let Ok(m) = Message::decode(stream) {
        round_trip(&m);
    }
    let chunk = 1 + usize::from(ctl & 0x3f);
    let (msgs, err) = frame(stream, chunk);
    msgs.iter().for_each(round_trip);
    assert_eq!(
        (msgs, err),
        frame(stream, stream.len().max(1)),
        "chunking changes framing"
    );

    let mut s = session(ctl);
    let mut now = Instant::now();
    let mut closed = false;
    s.handle_connected(now);
    drain(&mut s, &mut closed);
    for part in stream.chunks(chunk) {
        now += Duration::from_millis(100);
        s.handle_bytes(now, part);
        drain(&mut s, &mut closed);
        let mut n = 0;
        while let Some(t) = s.poll_timeout() {
            if t > now {
                break;
            }
            n += 1;
            assert!(n < 100, "timers livelock at {t:?} <= {now:?}");
            s.handle_timeout(now);
            drain(&mut s, &mut closed);
        }
    }
    if closed {
        assert_eq!(s.state(), SessionState::Closed);
        assert!(s.poll_timeout().is_none());
    }
    s.shutdown(now);
    drain(&mut s, &mut closed);
});

//! Fault injection for tests of a load balancer's error paths (`--fault`).
//!
//! Each fault applies per connection, to the messages the GWM sends, after the first
//! `--fault-after N` messages of that connection went out unchanged (default 0):
//!
//! * `close`: close the connection instead of sending the next message (`close-after=N`
//!   is `close` with `--fault-after N`).
//! * `silent`: send nothing more (the connection stays open, requests are read and dropped).
//! * `bad-version`: send messages with version 2 in their header.
//! * `malformed`: send weights messages (Get Weights replies, Send Weights) whose count of
//!   groups is one more than they hold, so the last group is truncated; other messages
//!   unchanged.
//! * `oversized`: send a header announcing a message of 2^31 - 1 bytes, then nothing.
//! * `slow=MS`: hold every message MS milliseconds before sending it.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Result, bail};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Close,
    Silent,
    BadVersion,
    Malformed,
    Oversized,
    Slow(Duration),
}

impl FromStr for Fault {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Fault> {
        Ok(match s {
            "close" => Fault::Close,
            "silent" => Fault::Silent,
            "bad-version" => Fault::BadVersion,
            "malformed" => Fault::Malformed,
            "oversized" => Fault::Oversized,
            _ => match s.strip_prefix("slow=") {
                Some(ms) => match ms.parse::<u64>() {
                    Ok(ms) if ms <= 600_000 => Fault::Slow(Duration::from_millis(ms)),
                    _ => bail!("slow=MS wants milliseconds (0-600000), not {ms:?}"),
                },
                None => bail!(
                    "unknown fault {s:?} (close, close-after=N, silent, bad-version, malformed, \
                     oversized, slow=MS)"
                ),
            },
        })
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Close => write!(f, "close"),
            Fault::Silent => write!(f, "silent"),
            Fault::BadVersion => write!(f, "bad-version"),
            Fault::Malformed => write!(f, "malformed"),
            Fault::Oversized => write!(f, "oversized"),
            Fault::Slow(d) => write!(f, "slow={}", d.as_millis()),
        }
    }
}

/// `--fault` as given: a fault, and for `close-after=N` the count of messages before it.
pub fn parse_arg(s: &str) -> Result<(Fault, Option<u64>)> {
    if let Some(n) = s.strip_prefix("close-after=") {
        let n: u64 = n
            .parse()
            .map_err(|_| anyhow::anyhow!("close-after=N wants a count of messages, not {n:?}"))?;
        return Ok((Fault::Close, Some(n)));
    }
    Ok((s.parse()?, None))
}

/// What to do with one outgoing message.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Send(Vec<u8>),
    Delay(Duration, Vec<u8>),
    Drop,
    Close,
}

/// The fault state of one connection.
#[derive(Debug)]
pub struct Injector {
    fault: Option<Fault>,
    after: u64,
    sent: u64,
    done: bool,
}

impl Injector {
    pub fn new(fault: Option<Fault>, after: u64) -> Injector {
        Injector {
            fault,
            after,
            sent: 0,
            done: false,
        }
    }

    pub fn apply(&mut self, mut msg: Vec<u8>) -> Action {
        if self.done {
            return Action::Drop;
        }
        self.sent += 1;
        let Some(fault) = self.fault else {
            return Action::Send(msg);
        };
        if self.sent <= self.after {
            return Action::Send(msg);
        }
        match fault {
            Fault::Close => {
                self.done = true;
                Action::Close
            }
            Fault::Silent => Action::Drop,
            Fault::BadVersion => {
                if msg.len() > 4 {
                    msg[4] = 2;
                }
                Action::Send(msg)
            }
            Fault::Malformed => {
                // Get Weights Reply: count at 13+4+1+2 = 20; Send Weights: at 13+4 = 17.
                let at = match msg.get(13..15) {
                    Some([0x10, 0x35]) => Some(20),
                    Some([0x10, 0x40]) => Some(17),
                    _ => None,
                };
                if let Some(at) = at
                    && let Some(b) = msg.get_mut(at..at + 2)
                {
                    let n = u16::from_be_bytes([b[0], b[1]]).wrapping_add(1);
                    b.copy_from_slice(&n.to_be_bytes());
                }
                Action::Send(msg)
            }
            Fault::Oversized => {
                self.done = true;
                let mut header = msg[..13.min(msg.len())].to_vec();
                if header.len() == 13 {
                    header[5..9].copy_from_slice(&i32::MAX.to_be_bytes());
                }
                Action::Send(header)
            }
            Fault::Slow(d) => Action::Delay(d, msg),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Send Weights with one empty group of LB1/FARM1.
    fn push() -> Vec<u8> {
        hex("2010000d0100000027000000001040000600014011000600003011000e034c4231054641524d31")
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn faults_parse() {
        assert_eq!("close".parse::<Fault>().unwrap(), Fault::Close);
        assert_eq!(
            "slow=250".parse::<Fault>().unwrap(),
            Fault::Slow(Duration::from_millis(250))
        );
        assert!("slow=x".parse::<Fault>().is_err());
        assert!("drop".parse::<Fault>().is_err());
        assert_eq!(parse_arg("close-after=3").unwrap(), (Fault::Close, Some(3)));
        assert_eq!(parse_arg("silent").unwrap(), (Fault::Silent, None));
        assert!(parse_arg("close-after=x").is_err());
    }

    #[test]
    fn faults_start_after_n_messages() {
        let mut inj = Injector::new(Some(Fault::Close), 2);
        assert_eq!(inj.apply(push()), Action::Send(push()));
        assert_eq!(inj.apply(push()), Action::Send(push()));
        assert_eq!(inj.apply(push()), Action::Close);
        assert_eq!(inj.apply(push()), Action::Drop);
    }

    #[test]
    fn malformed_bumps_the_group_count() {
        let mut inj = Injector::new(Some(Fault::Malformed), 0);
        let Action::Send(m) = inj.apply(push()) else {
            panic!()
        };
        assert_eq!(&m[17..19], &[0, 2]);
        let mut inj = Injector::new(Some(Fault::BadVersion), 0);
        let Action::Send(m) = inj.apply(push()) else {
            panic!()
        };
        assert_eq!(m[4], 2);
        let mut inj = Injector::new(Some(Fault::Oversized), 0);
        let Action::Send(m) = inj.apply(push()) else {
            panic!()
        };
        assert_eq!(m.len(), 13);
        assert_eq!(&m[5..9], &[0x7f, 0xff, 0xff, 0xff]);
    }
}

//! Which packet I/O backend the lab's daemons run (`executor set packetio`), and the macro
//! that runs a lab test once per backend (docs/packet-io.md).

use std::sync::atomic::{AtomicU8, Ordering};

/// A backend of `executor set packetio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketIo {
    Auto,
    Afxdp,
    Afpacket,
}

impl PacketIo {
    pub fn from_word(w: &str) -> Option<PacketIo> {
        [PacketIo::Auto, PacketIo::Afxdp, PacketIo::Afpacket]
            .into_iter()
            .find(|p| p.word() == w)
    }

    pub fn word(self) -> &'static str {
        match self {
            PacketIo::Auto => "auto",
            PacketIo::Afxdp => "afxdp",
            PacketIo::Afpacket => "afpacket",
        }
    }
}

/// 0: none set (the configuration says what it says); else `PacketIo as u8 + 1`.
static PACKETIO: AtomicU8 = AtomicU8::new(0);

/// The backend [`crate::cluster::TandemNode::start`] writes into every configuration it
/// starts a daemon with (its first line), if one is set: by [`set_packetio`], else by the
/// environment variable `TANDEM_LAB_PACKETIO` (`auto`, `afxdp` or `afpacket`; for
/// `tandem-lab bench` and whole test runs).
pub fn packetio() -> Option<PacketIo> {
    match PACKETIO.load(Ordering::Relaxed) {
        1 => Some(PacketIo::Auto),
        2 => Some(PacketIo::Afxdp),
        3 => Some(PacketIo::Afpacket),
        _ => std::env::var("TANDEM_LAB_PACKETIO")
            .ok()
            .and_then(|v| PacketIo::from_word(v.trim())),
    }
}

/// Sets the backend of the daemons started from now on in this process.
pub fn set_packetio(p: Option<PacketIo>) {
    PACKETIO.store(p.map(|p| p as u8 + 1).unwrap_or(0), Ordering::Relaxed);
}

/// Runs `test` with the daemons on backend `p` (lab tests run one at a time per process:
/// they take [`crate::serial`]; nextest gives each test its own process).
pub fn with_packetio(p: PacketIo, test: fn()) {
    set_packetio(Some(p));
    test();
    set_packetio(None);
}

/// Makes each named lab test function (no `#[test]` of its own) a module of two tests,
/// `NAME::afxdp` and `NAME::afpacket`, one per packet I/O backend.
#[macro_export]
macro_rules! packetio_matrix {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn afxdp() {
                $crate::packetio::with_packetio($crate::PacketIo::Afxdp, super::$name)
            }
            #[test]
            fn afpacket() {
                $crate::packetio::with_packetio($crate::PacketIo::Afpacket, super::$name)
            }
        }
    )*};
}

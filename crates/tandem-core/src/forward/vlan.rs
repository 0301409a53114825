//! The checks every frame for a cluster or return address passes before its flow is looked
//! at: its VLAN and its size.
//!
//! **VLAN.** Tandem forwards on one interface and sends untagged frames on it. A balancer for
//! a VLAN runs on the VLAN's sub-interface (`eth0.100`): the kernel takes the tag off before
//! Tandem's socket sees the frame and puts it back on what Tandem sends. A frame that still
//! carries a tag (VLAN id 1..4095) on the interface Tandem runs on belongs to a VLAN Tandem
//! is not configured for: it is dropped as `vlan` and counted per VLAN id ([`VlanDrops`]),
//! so `executor report` can say which VLAN to run a balancer on; tagged ARP requests are not
//! answered (the answer would go out untagged). Priority-tagged frames
//! (VLAN id 0, 802.1p) belong to the untagged network and are forwarded.
//!
//! **Size.** A frame larger than the interface carries ([`Plan::frame_limit`]: the MTU plus
//! the Ethernet header, and the 4 bytes of a tag left in the frame) or larger than the ring
//! slot it came in is dropped as `oversize`: sending it on would fail or be truncated.

use super::engine::{Engine, RxMeta};
use super::plan::Plan;
use super::stats::DropReason;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tandem_wire::ethernet::field as eth;

/// Number of VLAN ids (12 bits).
const VLAN_IDS: usize = 4096;

/// Tagged frames dropped, per VLAN id: one counter per id (32 KiB), so counting takes no lock
/// and no memory grows with what arrives.
pub struct VlanDrops {
    counts: Box<[AtomicU64]>,
}

impl Default for VlanDrops {
    fn default() -> Self {
        VlanDrops {
            counts: (0..VLAN_IDS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl VlanDrops {
    /// Counts a dropped frame of VLAN `id` (the low 12 bits of a tag's TCI).
    pub fn count(&self, id: u16) {
        if let Some(c) = self.counts.get(usize::from(id & 0x0fff)) {
            c.fetch_add(1, Relaxed);
        }
    }

    /// VLAN ids with dropped frames, in id order, with their counts.
    pub fn read(&self) -> Vec<(u16, u64)> {
        self.counts
            .iter()
            .enumerate()
            .filter_map(|(id, c)| {
                let n = c.load(Relaxed);
                (n > 0).then_some((id as u16, n))
            })
            .collect()
    }

    /// Frames dropped for VLAN `id`.
    pub fn dropped(&self, id: u16) -> u64 {
        self.counts
            .get(usize::from(id & 0x0fff))
            .map_or(0, |c| c.load(Relaxed))
    }
}

/// The VLAN id of a received frame: the tag the kernel took off (`meta`), or one still in
/// the frame (its IP header at offset 18). `Some(None)`: tagged, id unknown.
fn vlan_tag(frame: &[u8], l3: usize, meta: RxMeta) -> Option<Option<u16>> {
    if meta.vlan {
        return Some(meta.vlan_id.map(|id| id & 0x0fff));
    }
    (l3 == eth::VLAN_HEADER_LEN).then(|| {
        frame
            .get(eth::VLAN_TCI)
            .map(|t| u16::from_be_bytes([t[0], t[1]]) & 0x0fff)
    })
}

/// Whether a frame carries a VLAN tag other than a priority tag (VLAN 0), in `meta` or in
/// the frame: a frame of a VLAN Tandem does not run on.
pub(super) fn foreign_vlan(frame: &[u8], meta: RxMeta) -> bool {
    let in_frame = frame.get(eth::ETHERTYPE) == Some(&[0x81, 0x00][..]);
    let l3 = if in_frame {
        eth::VLAN_HEADER_LEN
    } else {
        eth::HEADER_LEN
    };
    !matches!(vlan_tag(frame, l3, meta), None | Some(Some(0)))
}

impl Engine {
    /// Whether a frame for `dst_ip` (IP header at `l3`) is Tandem's to forward: `Pass` when
    /// it is not to our MAC and an owned address, a drop when the VLAN and size checks refuse
    /// it, `None` when it goes on.
    pub(super) fn admit_owned(
        &self,
        plan: &Plan,
        frame: &[u8],
        (dst_mac, dst_ip, l3): ([u8; 6], std::net::IpAddr, usize),
        meta: RxMeta,
    ) -> Option<super::engine::Verdict> {
        use super::engine::Verdict;
        if dst_mac != plan.our_mac || !plan.owns(dst_ip) {
            return Some(Verdict::Pass);
        }
        self.frame_gate(plan, frame, l3, meta).map(Verdict::Drop)
    }

    /// The VLAN and size checks of a frame for an address Tandem owns, whose IP header is at
    /// `l3` (see the module docs). `None`: the frame may be forwarded.
    fn frame_gate(&self, plan: &Plan, frame: &[u8], l3: usize, meta: RxMeta) -> Option<DropReason> {
        match vlan_tag(frame, l3, meta) {
            None | Some(Some(0)) => {}
            Some(id) => {
                if let Some(id) = id {
                    self.vlans.count(id);
                }
                return Some(DropReason::Vlan);
            }
        }
        let tag = if l3 == eth::VLAN_HEADER_LEN { 4 } else { 0 };
        if meta.truncated || frame.len() > plan.frame_limit() + tag {
            return Some(DropReason::Oversize);
        }
        None
    }
}

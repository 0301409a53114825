//! The components of SASP (RFC 4678 §5–§6): Member Data, Group Data, Weight Entry, Member
//! State Instance and the three group components, with the helpers every encoder shares.

use super::{
    DecodeError, EncodeError, WEIGHT_CONFIDENT, WEIGHT_CONTACT, WEIGHT_QUIESCE,
    WEIGHT_REGISTRATION, comp_type,
};
use crate::codec::{Reader, put_u16};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest string the 1-byte length fields can carry.
pub const MAX_STRING_LEN: usize = 255;

/// Member Data (0x3010): one member, identified by (address, port, protocol) in its group.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Member {
    /// IP protocol number (TCP 6, UDP 17); 0 with port 0 is a system-level member.
    pub protocol: u8,
    pub port: u16,
    pub address: IpAddr,
    /// Opaque to the GWM, echoed back (0–255 bytes).
    pub label: String,
}

/// Group Data (0x3011): which LB and which of its groups.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Group {
    pub lb_uid: String,
    /// Empty: every group of the LB (valid in Get Weights and DeRegistration only).
    pub name: String,
}

/// Weight Entry Data (0x3012), sent after the Member Data it refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeightEntry {
    /// Opaque, set by the member, passed through by the GWM.
    pub state: u8,
    /// `WEIGHT_*` bits.
    pub flags: u8,
    pub weight: u16,
}

impl WeightEntry {
    pub fn contact(&self) -> bool {
        self.flags & WEIGHT_CONTACT != 0
    }
    pub fn quiesce(&self) -> bool {
        self.flags & WEIGHT_QUIESCE != 0
    }
    pub fn registration(&self) -> bool {
        self.flags & WEIGHT_REGISTRATION != 0
    }
    pub fn confident(&self) -> bool {
        self.flags & WEIGHT_CONFIDENT != 0
    }
}

/// Member State Instance (0x3013), sent after the Member Data it refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberState {
    /// Opaque, returned in the Weight Entry's state.
    pub state: u8,
    /// `STATE_QUIESCE` (other bits reserved).
    pub flags: u8,
}

/// Group of Member Data (0x4010). In DeRegistration no member means the whole group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMembers {
    pub group: Group,
    pub members: Vec<Member>,
}

/// Group of Weight Entry Data (0x4011).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupWeights {
    pub group: Group,
    pub entries: Vec<(Member, WeightEntry)>,
}

/// Group of Member State Data (0x4012).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberStates {
    pub group: Group,
    pub entries: Vec<(Member, MemberState)>,
}

pub(super) type Enc = Result<(), EncodeError>;

pub(super) fn put_str(out: &mut Vec<u8>, what: &'static str, s: &str) -> Enc {
    let len =
        u8::try_from(s.len()).map_err(|_| EncodeError::StringTooLong { what, len: s.len() })?;
    out.push(len);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

pub(super) fn put_count(out: &mut Vec<u8>, what: &'static str, count: usize) -> Enc {
    let n = u16::try_from(count).map_err(|_| EncodeError::TooMany { what, count })?;
    put_u16(out, n);
    Ok(())
}

/// Writes the TLV head of a component whose fixed length is `len` (≤ 24 + 255 + 255).
pub(super) fn put_tlv(out: &mut Vec<u8>, ty: u16, len: usize) {
    put_u16(out, ty);
    put_u16(out, len as u16);
}

pub(super) fn get_str(r: &mut Reader<'_>, what: &'static str) -> Result<String, DecodeError> {
    let len = r.u8().ok_or(DecodeError::Truncated(what))?;
    let bytes = r
        .take(usize::from(len))
        .ok_or(DecodeError::Truncated(what))?;
    String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::BadString(what))
}

/// Reads a TLV head that must be of type `ty`; returns its Length.
pub(super) fn get_tlv(r: &mut Reader<'_>, ty: u16, what: &'static str) -> Result<u16, DecodeError> {
    let found = r.u16().ok_or(DecodeError::Truncated(what))?;
    if found != ty {
        return Err(DecodeError::UnexpectedComponent {
            expected: what,
            expected_type: ty,
            found,
        });
    }
    r.u16().ok_or(DecodeError::Truncated(what))
}

pub(super) fn exact_len(what: &'static str, got: u16, expected: usize) -> Result<(), DecodeError> {
    if usize::from(got) == expected {
        Ok(())
    } else {
        Err(DecodeError::BadLength {
            what,
            got,
            expected,
        })
    }
}

/// A parent TLV's Length: its fixed size (the RFC), or fixed size plus nested bytes.
pub(super) fn parent_len(
    what: &'static str,
    got: u16,
    fixed: usize,
    nested: usize,
) -> Result<(), DecodeError> {
    let got_len = usize::from(got);
    if got_len == fixed || got_len == fixed + nested {
        Ok(())
    } else {
        Err(DecodeError::BadLength {
            what,
            got,
            expected: fixed,
        })
    }
}

pub(super) fn get_u8(r: &mut Reader<'_>, what: &'static str) -> Result<u8, DecodeError> {
    r.u8().ok_or(DecodeError::Truncated(what))
}

pub(super) fn get_u16(r: &mut Reader<'_>, what: &'static str) -> Result<u16, DecodeError> {
    r.u16().ok_or(DecodeError::Truncated(what))
}

/// A Vec for `count` items of at least `min_size` bytes each, capacity bounded by the input.
pub(super) fn vec_for<T>(count: u16, min_size: usize, r: &Reader<'_>) -> Vec<T> {
    Vec::with_capacity(usize::from(count).min(r.remaining() / min_size))
}

/// 16 address bytes as read from Member Data (see the module doc).
pub fn address_from_wire(b: [u8; 16]) -> IpAddr {
    let v6 = Ipv6Addr::from(b);
    if b[..12].iter().all(|&x| x == 0) && u32::from_be_bytes([b[12], b[13], b[14], b[15]]) > 1 {
        return IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]));
    }
    v6.to_canonical()
}

/// 16 address bytes as written in Member Data: IPv4 as IPv4-compatible `::a.b.c.d`.
pub fn address_to_wire(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[12..].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

pub(super) const MEMBER_MIN: usize = 24;
pub(super) const GROUP_MIN: usize = 6;

impl Member {
    /// A member without label.
    pub fn new(address: IpAddr, port: u16, protocol: u8) -> Member {
        Member {
            protocol,
            port,
            address,
            label: String::new(),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.label.len() > MAX_STRING_LEN {
            return Err(EncodeError::StringTooLong {
                what: "Label",
                len: self.label.len(),
            });
        }
        put_tlv(out, comp_type::MEMBER_DATA, MEMBER_MIN + self.label.len());
        out.push(self.protocol);
        put_u16(out, self.port);
        out.extend_from_slice(&address_to_wire(self.address));
        put_str(out, "Label", &self.label)
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Member, DecodeError> {
        const W: &str = "Member Data";
        let len = get_tlv(r, comp_type::MEMBER_DATA, W)?;
        let protocol = get_u8(r, W)?;
        let port = get_u16(r, W)?;
        let address = address_from_wire(r.array::<16>().ok_or(DecodeError::Truncated(W))?);
        let label = get_str(r, "Label")?;
        exact_len(W, len, MEMBER_MIN + label.len())?;
        Ok(Member {
            protocol,
            port,
            address,
            label,
        })
    }
}

impl Group {
    pub fn new(lb_uid: &str, name: &str) -> Group {
        Group {
            lb_uid: lb_uid.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        for (what, s) in [("LB UID", &self.lb_uid), ("Group Name", &self.name)] {
            if s.len() > MAX_STRING_LEN {
                return Err(EncodeError::StringTooLong { what, len: s.len() });
            }
        }
        put_tlv(
            out,
            comp_type::GROUP_DATA,
            GROUP_MIN + self.lb_uid.len() + self.name.len(),
        );
        put_str(out, "LB UID", &self.lb_uid)?;
        put_str(out, "Group Name", &self.name)
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Group, DecodeError> {
        const W: &str = "Group Data";
        let len = get_tlv(r, comp_type::GROUP_DATA, W)?;
        let lb_uid = get_str(r, "LB UID")?;
        let name = get_str(r, "Group Name")?;
        exact_len(W, len, GROUP_MIN + lb_uid.len() + name.len())?;
        Ok(Group { lb_uid, name })
    }
}

impl WeightEntry {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_tlv(out, comp_type::WEIGHT_ENTRY, 8);
        out.push(self.state);
        out.push(self.flags);
        put_u16(out, self.weight);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<WeightEntry, DecodeError> {
        const W: &str = "Weight Entry Data";
        let len = get_tlv(r, comp_type::WEIGHT_ENTRY, W)?;
        let state = get_u8(r, W)?;
        let flags = get_u8(r, W)?;
        let weight = get_u16(r, W)?;
        exact_len(W, len, 8)?;
        Ok(WeightEntry {
            state,
            flags,
            weight,
        })
    }
}

impl MemberState {
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_tlv(out, comp_type::MEMBER_STATE, 6);
        out.push(self.state);
        out.push(self.flags);
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<MemberState, DecodeError> {
        const W: &str = "Member State Instance";
        let len = get_tlv(r, comp_type::MEMBER_STATE, W)?;
        let state = get_u8(r, W)?;
        let flags = get_u8(r, W)?;
        exact_len(W, len, 6)?;
        Ok(MemberState { state, flags })
    }
}

/// The shared shape of the three group components: head, Group Data, `count` items.
fn encode_group<T>(
    out: &mut Vec<u8>,
    ty: u16,
    what: &'static str,
    group: &Group,
    items: &[T],
    mut item: impl FnMut(&T, &mut Vec<u8>) -> Enc,
) -> Enc {
    put_tlv(out, ty, GROUP_MIN);
    put_count(out, what, items.len())?;
    group.encode(out)?;
    items.iter().try_for_each(|i| item(i, out))
}

fn decode_group<T>(
    r: &mut Reader<'_>,
    ty: u16,
    what: &'static str,
    item_min: usize,
    mut item: impl FnMut(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<(Group, Vec<T>), DecodeError> {
    let len = get_tlv(r, ty, what)?;
    let count = get_u16(r, what)?;
    let start = r.position();
    let group = Group::decode(r)?;
    let mut items = vec_for(count, item_min, r);
    for _ in 0..count {
        items.push(item(r)?);
    }
    parent_len(what, len, GROUP_MIN, r.position() - start)?;
    Ok((group, items))
}

impl GroupMembers {
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_group(
            out,
            comp_type::GROUP_OF_MEMBERS,
            "Group of Member Data",
            &self.group,
            &self.members,
            Member::encode,
        )
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<GroupMembers, DecodeError> {
        let (group, members) = decode_group(
            r,
            comp_type::GROUP_OF_MEMBERS,
            "Group of Member Data",
            MEMBER_MIN,
            Member::decode,
        )?;
        Ok(GroupMembers { group, members })
    }
}

impl GroupWeights {
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_group(
            out,
            comp_type::GROUP_OF_WEIGHTS,
            "Group of Weight Entry Data",
            &self.group,
            &self.entries,
            |(m, w), out| {
                m.encode(out)?;
                w.encode(out);
                Ok(())
            },
        )
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<GroupWeights, DecodeError> {
        let (group, entries) = decode_group(
            r,
            comp_type::GROUP_OF_WEIGHTS,
            "Group of Weight Entry Data",
            MEMBER_MIN + 8,
            |r| Ok((Member::decode(r)?, WeightEntry::decode(r)?)),
        )?;
        Ok(GroupWeights { group, entries })
    }
}

impl GroupMemberStates {
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        encode_group(
            out,
            comp_type::GROUP_OF_MEMBER_STATES,
            "Group of Member State Data",
            &self.group,
            &self.entries,
            |(m, s), out| {
                m.encode(out)?;
                s.encode(out);
                Ok(())
            },
        )
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<GroupMemberStates, DecodeError> {
        let (group, entries) = decode_group(
            r,
            comp_type::GROUP_OF_MEMBER_STATES,
            "Group of Member State Data",
            MEMBER_MIN + 6,
            |r| Ok((Member::decode(r)?, MemberState::decode(r)?)),
        )?;
        Ok(GroupMemberStates { group, entries })
    }
}

pub(super) fn encode_list<T>(
    out: &mut Vec<u8>,
    what: &'static str,
    items: &[T],
    item: impl Fn(&T, &mut Vec<u8>) -> Enc,
) -> Enc {
    put_count(out, what, items.len())?;
    items.iter().try_for_each(|i| item(i, out))
}

pub(super) fn decode_list<T>(
    r: &mut Reader<'_>,
    count: u16,
    item_min: usize,
    item: impl Fn(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let mut items = vec_for(count, item_min, r);
    for _ in 0..count {
        items.push(item(r)?);
    }
    Ok(items)
}

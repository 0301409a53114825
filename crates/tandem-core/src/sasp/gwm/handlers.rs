//! The requests: who may act for which LB UID, and what each request changes.

use std::collections::BTreeSet;
use std::time::Instant;

use super::request::{GroupRef, MemberSpec, StateSpec};
use super::*;

impl Gwm {
    /// Binds `conn` to `uid` (replacing another connection of that UID).
    pub(super) fn bind(&mut self, now: Instant, conn: ConnId, uid: &str) {
        let push_interval = self.settings.push_interval;
        let lb = self.lbs.entry(uid.to_owned()).or_insert_with(LbEntry::new);
        let old = lb.conn.replace(conn);
        lb.lost_at = None;
        let push = lb.flags & LB_PUSH != 0;
        if let Some(session) = self.sessions.get_mut(&conn)
            && session.lb_uid.is_none()
        {
            session.lb_uid = Some(uid.to_owned());
            session.next_push = push.then(|| now + push_interval);
            self.dirty = true;
            self.events.push_back(GwmEvent::LbBound {
                conn,
                lb_uid: uid.to_owned(),
            });
        }
        if let Some(old) = old
            && old != conn
        {
            self.events.push_back(GwmEvent::LbReplaced {
                lb_uid: uid.to_owned(),
                old,
                new: conn,
            });
            self.close(
                old,
                format!("replaced by a new connection of LB UID {uid:?}"),
            );
        }
    }

    /// Checks that `conn` may act for `uid` (LB flag set) or as a member of it (LB flag 0).
    pub(super) fn authority(&self, conn: ConnId, lb_flag: bool, uid: &str) -> Result<(), u8> {
        if uid.is_empty() || uid.len() > MAX_LB_UID {
            return Err(rc::LB_UID_SIZE);
        }
        let session_uid = self.sessions.get(&conn).and_then(|s| s.lb_uid.as_deref());
        if lb_flag {
            match session_uid {
                Some(own) if own != uid => Err(rc::NOT_ACCEPTED),
                _ => Ok(()),
            }
        } else {
            // A member acting on itself: needs its LB to have contacted us, with TRUST.
            if session_uid.is_some() {
                return Err(rc::NOT_ACCEPTED);
            }
            match self.lbs.get(uid) {
                None => Err(rc::LB_NOT_CONTACTED),
                Some(lb) if lb.flags & LB_TRUST == 0 => Err(rc::NOT_ACCEPTED),
                Some(_) => Ok(()),
            }
        }
    }

    /// All groups of one request must name one LB UID; returns it.
    pub(super) fn single_uid<'a>(
        groups: impl Iterator<Item = &'a GroupRef>,
    ) -> Result<Option<String>, u8> {
        let mut uid: Option<&str> = None;
        for g in groups {
            match uid {
                None => uid = Some(&g.uid),
                Some(u) if u != g.uid => return Err(rc::NOT_ACCEPTED),
                Some(_) => {}
            }
        }
        Ok(uid.map(str::to_owned))
    }

    pub(super) fn set_lb_state(
        &mut self,
        now: Instant,
        conn: ConnId,
        uid: String,
        health: u8,
        flags: u8,
    ) -> u8 {
        if let Err(code) = self.authority(conn, true, &uid) {
            return code;
        }
        self.bind(now, conn, &uid);
        let lb = self.lbs.get_mut(&uid).expect("bound above");
        let was_push = lb.flags & LB_PUSH != 0;
        lb.health = health;
        lb.flags = flags;
        let push = flags & LB_PUSH != 0;
        if let Some(session) = self.sessions.get_mut(&conn) {
            if push && !was_push {
                session.next_push = Some(now + self.settings.push_interval);
            } else if !push {
                session.next_push = None;
            }
        }
        self.dirty = true;
        rc::OK
    }

    pub(super) fn registration(
        &mut self,
        now: Instant,
        conn: ConnId,
        lb_flag: bool,
        groups: Vec<(GroupRef, Vec<MemberSpec>)>,
    ) -> u8 {
        let uid = match Self::single_uid(groups.iter().map(|(g, _)| g)) {
            Ok(Some(uid)) => uid,
            Ok(None) => return rc::OK,
            Err(code) => return code,
        };
        if let Err(code) = self.authority(conn, lb_flag, &uid) {
            return code;
        }
        let mut seen = BTreeSet::new();
        let mut added = 0usize;
        for (group, members) in &groups {
            if group.name.is_empty() {
                return rc::GROUP_NAME_SIZE;
            }
            let existing = self.lbs.get(&uid).and_then(|lb| lb.groups.get(&group.name));
            for m in members {
                if !seen.insert((group.name.as_str(), m.key)) {
                    return rc::DUPLICATE_MEMBER;
                }
                if existing.is_some_and(|g| g.members.contains_key(&m.key)) {
                    return rc::ALREADY_REGISTERED;
                }
                added += 1;
            }
        }
        let total: usize = self
            .lbs
            .values()
            .flat_map(|lb| lb.groups.values())
            .map(|g| g.members.len())
            .sum();
        if total + added > self.settings.max_members {
            return rc::INVALID_GROUP;
        }
        let mut names: BTreeSet<&str> = self
            .lbs
            .get(&uid)
            .map(|lb| lb.groups.keys().map(String::as_str).collect())
            .unwrap_or_default();
        names.extend(groups.iter().map(|(g, _)| g.name.as_str()));
        if names.len() > self.settings.max_groups {
            return rc::INVALID_GROUP;
        }
        if lb_flag {
            self.bind(now, conn, &uid);
        }
        let lb = self.lbs.entry(uid).or_insert_with(LbEntry::new);
        for (group, members) in groups {
            let g = lb.groups.entry(group.name).or_default();
            for m in members {
                g.members.insert(
                    m.key,
                    Member {
                        label: m.label,
                        by_lb: lb_flag,
                        quiesce: false,
                        state: 0,
                    },
                );
            }
        }
        self.dirty = true;
        rc::OK
    }

    pub(super) fn deregistration(
        &mut self,
        now: Instant,
        conn: ConnId,
        lb_flag: bool,
        groups: Vec<(GroupRef, Vec<MemberSpec>)>,
    ) -> u8 {
        let uid = match Self::single_uid(groups.iter().map(|(g, _)| g)) {
            Ok(Some(uid)) => uid,
            Ok(None) => return rc::OK,
            Err(code) => return code,
        };
        if let Err(code) = self.authority(conn, lb_flag, &uid) {
            return code;
        }
        let Some(lb) = self.lbs.get(&uid) else {
            return rc::UNKNOWN_LB_UID;
        };
        let mut seen_groups = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (group, members) in &groups {
            if !seen_groups.insert(group.name.as_str()) {
                return rc::DUPLICATE_GROUP;
            }
            if group.name.is_empty() {
                if !members.is_empty() {
                    return rc::UNKNOWN_GROUP;
                }
                continue;
            }
            let Some(existing) = lb.groups.get(&group.name) else {
                return rc::UNKNOWN_GROUP;
            };
            for m in members {
                if !seen.insert((group.name.as_str(), m.key)) {
                    return rc::DUPLICATE_MEMBER;
                }
                if !existing.members.contains_key(&m.key) {
                    return rc::NOT_REGISTERED;
                }
            }
        }
        if lb_flag {
            self.bind(now, conn, &uid);
        }
        let lb = self.lbs.get_mut(&uid).expect("checked above");
        for (group, members) in groups {
            if group.name.is_empty() {
                lb.groups.clear();
            } else if members.is_empty() {
                lb.groups.remove(&group.name);
            } else if let Some(g) = lb.groups.get_mut(&group.name) {
                for m in members {
                    g.members.remove(&m.key);
                }
            }
        }
        self.prune_health();
        // What is no longer registered is no longer "last sent": a re-registration is new.
        let lb = &self.lbs[&uid];
        for session in self.sessions.values_mut() {
            if session.lb_uid.as_deref() == Some(uid.as_str()) {
                session.last_sent.retain(|(group, key), _| {
                    lb.groups
                        .get(group)
                        .is_some_and(|g| g.members.contains_key(key))
                });
            }
        }
        self.dirty = true;
        rc::OK
    }

    pub(super) fn set_member_state(
        &mut self,
        now: Instant,
        conn: ConnId,
        lb_flag: bool,
        groups: Vec<(GroupRef, Vec<StateSpec>)>,
    ) -> u8 {
        let uid = match Self::single_uid(groups.iter().map(|(g, _)| g)) {
            Ok(Some(uid)) => uid,
            Ok(None) => return rc::OK,
            Err(code) => return code,
        };
        if let Err(code) = self.authority(conn, lb_flag, &uid) {
            return code;
        }
        let Some(lb) = self.lbs.get(&uid) else {
            return rc::UNKNOWN_LB_UID;
        };
        let mut seen_groups = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for (group, members) in &groups {
            if group.name.is_empty() {
                return rc::GROUP_NAME_SIZE;
            }
            if !seen_groups.insert(group.name.as_str()) {
                return rc::DUPLICATE_GROUP;
            }
            let Some(existing) = lb.groups.get(&group.name) else {
                return rc::UNKNOWN_GROUP;
            };
            for m in members {
                if !seen.insert((group.name.as_str(), m.member.key)) {
                    return rc::DUPLICATE_MEMBER;
                }
                if !existing.members.contains_key(&m.member.key) {
                    return rc::NOT_REGISTERED;
                }
            }
        }
        if lb_flag {
            self.bind(now, conn, &uid);
        }
        let lb = self.lbs.get_mut(&uid).expect("checked above");
        for (group, members) in groups {
            let g = lb.groups.get_mut(&group.name).expect("checked above");
            for m in members {
                let entry = g.members.get_mut(&m.member.key).expect("checked above");
                entry.quiesce = m.quiesce;
                entry.state = m.state;
            }
        }
        self.dirty = true;
        rc::OK
    }

    pub(super) fn get_weights(
        &mut self,
        now: Instant,
        conn: ConnId,
        groups: &[GroupRef],
    ) -> Result<Vec<GroupWeights>, u8> {
        let uid = match Self::single_uid(groups.iter()) {
            Ok(Some(uid)) => uid,
            Ok(None) => return Ok(Vec::new()),
            Err(code) => return Err(code),
        };
        self.authority(conn, true, &uid)?;
        let lb = self.lbs.get(&uid).ok_or(rc::UNKNOWN_LB_UID)?;
        let mut names = BTreeSet::new();
        let mut wanted: Vec<String> = Vec::new();
        for g in groups {
            if !names.insert(g.name.as_str()) {
                return Err(rc::DUPLICATE_GROUP);
            }
            if g.name.is_empty() {
                wanted.extend(lb.groups.keys().cloned());
            } else if lb.groups.contains_key(&g.name) {
                wanted.push(g.name.clone());
            } else {
                return Err(rc::UNKNOWN_GROUP);
            }
        }
        wanted.sort();
        wanted.dedup();
        self.bind(now, conn, &uid);
        let nochange = self.lbs[&uid].flags & LB_NOCHANGE != 0;
        Ok(self.weights_for(conn, &uid, &wanted, nochange))
    }
}

//! Targets: `CLUSTER[+...]`, `CLUSTER@PORT`, `CLUSTER@PORT@SERVER`, with `@` wildcards.

use super::ParseError;
use super::words::{Words, parse_address, parse_port};
use serde::Serialize;
use std::fmt;
use std::net::IpAddr;
/// Either the `@` wildcard (every existing object at that level) or a `+` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Targets<T> {
    /// `@`: every cluster / port / server that exists at that level.
    All,
    /// Explicit objects, in command order, without duplicates.
    List(Vec<T>),
}

impl<T: PartialEq> Targets<T> {
    /// Whether this is the `@` wildcard.
    pub fn is_all(&self) -> bool {
        matches!(self, Targets::All)
    }

    /// Whether `item` is selected (always true for the wildcard).
    pub fn contains(&self, item: &T) -> bool {
        match self {
            Targets::All => true,
            Targets::List(items) => items.contains(item),
        }
    }
}

impl<T: fmt::Display> Targets<T> {
    /// Writes the part as it appears inside a target: the `+` list, or nothing for `@`.
    pub(super) fn write_part(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Targets::List(items) = self {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str("+")?;
                }
                write!(f, "{item}")?;
            }
        }
        Ok(())
    }
}

/// A cluster target: `CLUSTER[+CLUSTER...]` or `@`.
impl<T: fmt::Display> fmt::Display for Targets<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Targets::All => f.write_str("@"),
            Targets::List(_) => self.write_part(f),
        }
    }
}

/// `CLUSTER@PORT`, each part a `+` list or the wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortTarget {
    pub clusters: Targets<IpAddr>,
    pub ports: Targets<u16>,
}

impl fmt::Display for PortTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.clusters.write_part(f)?;
        f.write_str("@")?;
        self.ports.write_part(f)
    }
}

/// `CLUSTER@PORT@SERVER`, each part a `+` list or the wildcard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerTarget {
    pub clusters: Targets<IpAddr>,
    pub ports: Targets<u16>,
    pub servers: Targets<IpAddr>,
}

impl ServerTarget {
    /// The `CLUSTER@PORT` part.
    pub fn port_target(&self) -> PortTarget {
        PortTarget {
            clusters: self.clusters.clone(),
            ports: self.ports.clone(),
        }
    }
}

impl fmt::Display for ServerTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.clusters.write_part(f)?;
        f.write_str("@")?;
        self.ports.write_part(f)?;
        f.write_str("@")?;
        self.servers.write_part(f)
    }
}
/// One part of a target: empty = `@` wildcard, else a `+` list without duplicates.
pub(super) fn parse_part<T: PartialEq>(
    word: &str,
    part: &str,
    mut parse_item: impl FnMut(&str) -> Result<T, ParseError>,
) -> Result<Targets<T>, ParseError> {
    if part.is_empty() {
        return Ok(Targets::All);
    }
    let mut items = Vec::new();
    for item in part.split('+') {
        if item.is_empty() {
            return Err(ParseError::BadTarget {
                word: word.to_string(),
                expected: "items joined by single '+' signs",
            });
        }
        let item = parse_item(item)?;
        if !items.contains(&item) {
            items.push(item);
        }
    }
    Ok(Targets::List(items))
}

/// `CLUSTER[+CLUSTER...]` or `@`.
pub(super) fn parse_cluster_target(word: &str) -> Result<Targets<IpAddr>, ParseError> {
    if word == "@" {
        return Ok(Targets::All);
    }
    if word.is_empty() || word.contains('@') {
        return Err(ParseError::BadTarget {
            word: word.to_string(),
            expected: "CLUSTER[+CLUSTER...] or @",
        });
    }
    parse_part(word, word, parse_address)
}

pub(super) fn parse_server_target(word: &str) -> Result<ServerTarget, ParseError> {
    let parts: Vec<&str> = word.split('@').collect();
    let [clusters, ports, servers] = parts[..] else {
        return Err(ParseError::BadTarget {
            word: word.to_string(),
            expected: "CLUSTER@PORT@SERVER",
        });
    };
    Ok(ServerTarget {
        clusters: parse_part(word, clusters, parse_address)?,
        ports: parse_part(word, ports, parse_port)?,
        servers: parse_part(word, servers, parse_address)?,
    })
}

/// `CLUSTER[+CLUSTER...]` or `@`, where the clusters may be host names.
pub(super) fn cluster_target_in(
    w: &mut Words<'_>,
    word: &str,
) -> Result<Targets<IpAddr>, ParseError> {
    if word == "@" {
        return Ok(Targets::All);
    }
    if word.is_empty() || word.contains('@') {
        return Err(ParseError::BadTarget {
            word: word.to_string(),
            expected: "CLUSTER[+CLUSTER...] or @",
        });
    }
    parse_part(word, word, |item| w.host(item))
}

/// `CLUSTER@PORT`, where the clusters may be host names.
pub(super) fn port_target_in(w: &mut Words<'_>, word: &str) -> Result<PortTarget, ParseError> {
    let parts: Vec<&str> = word.split('@').collect();
    let [clusters, ports] = parts[..] else {
        return Err(ParseError::BadTarget {
            word: word.to_string(),
            expected: "CLUSTER@PORT",
        });
    };
    Ok(PortTarget {
        clusters: parse_part(word, clusters, |item| w.host(item))?,
        ports: parse_part(word, ports, parse_port)?,
    })
}

/// `CLUSTER@PORT@SERVER`, where clusters and servers may be host names; the server part is
/// returned as written, for the caller to resolve (a server's label is not resolved when
/// `address ADDR` follows).
pub(super) fn server_target_in<'a>(
    w: &mut Words<'_>,
    word: &'a str,
) -> Result<(PortTarget, &'a str), ParseError> {
    let parts: Vec<&str> = word.split('@').collect();
    let [clusters, ports, servers] = parts[..] else {
        return Err(ParseError::BadTarget {
            word: word.to_string(),
            expected: "CLUSTER@PORT@SERVER",
        });
    };
    Ok((
        PortTarget {
            clusters: parse_part(word, clusters, |item| w.host(item))?,
            ports: parse_part(word, ports, parse_port)?,
        },
        servers,
    ))
}

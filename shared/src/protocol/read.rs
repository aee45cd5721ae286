//! Reading a [`ServerMsg`] without serde's buffering of internally tagged enums.
//!
//! `#[serde(tag = "type")]` reads a whole frame into serde's `Content` before it knows the
//! variant, then reads every field of it again from that: a second reader of every wire type in
//! the page's WebAssembly (about a tenth of its code, measured with twiggy). The server writes
//! the tag first, so the variant is known after one field and the rest of the object is read
//! straight into it.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

use super::{Delta, GeneratorStatus, ServerMsg, Snapshot};
use crate::group::GroupStatus;
use crate::transaction::Transaction;

const VARIANTS: &[&str] = &[
    "hello",
    "presenter",
    "snapshot",
    "delta",
    "ack",
    "error",
    "calculator",
    "replay",
    "naive",
    "outage",
    "reset",
    "reload",
];

// The struct variants' fields, as the derived `Serialize` writes them after the tag.
#[derive(serde::Deserialize)]
struct Hello {
    protocol: u32,
    server: String,
    #[serde(default)]
    presenter_required: bool,
}

#[derive(serde::Deserialize)]
struct Id {
    id: Option<u64>,
}

#[derive(serde::Deserialize)]
struct Ack {
    id: Option<u64>,
    generator: GeneratorStatus,
    transaction: Option<Transaction>,
}

#[derive(serde::Deserialize)]
struct Error {
    id: Option<u64>,
    message: String,
}

#[derive(serde::Deserialize)]
struct Calculator {
    id: Option<u64>,
    group: GroupStatus,
}

#[derive(serde::Deserialize)]
struct Replay {
    id: Option<u64>,
    replay: crate::replay::ReplayStatus,
}

#[derive(serde::Deserialize)]
struct Naive {
    id: Option<u64>,
    naive: crate::naive::NaiveStatus,
}

#[derive(serde::Deserialize)]
struct Outage {
    id: Option<u64>,
    outage: crate::outage::OutageStatus,
}

#[derive(serde::Deserialize)]
struct Reload {
    reason: String,
}

impl<'de> Deserialize<'de> for ServerMsg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MsgVisitor)
    }
}

struct MsgVisitor;

impl<'de> Visitor<'de> for MsgVisitor {
    type Value = ServerMsg;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a server message: an object whose first field is its \"type\"")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ServerMsg, A::Error> {
        let first: Option<String> = map.next_key()?;
        if first.as_deref() != Some("type") {
            return Err(de::Error::custom(
                "a server message starts with its \"type\" field",
            ));
        }
        let kind: String = map.next_value()?;
        let rest = MapAccessDeserializer::new(map);
        Ok(match kind.as_str() {
            "hello" => {
                let h = Hello::deserialize(rest)?;
                ServerMsg::Hello {
                    protocol: h.protocol,
                    server: h.server,
                    presenter_required: h.presenter_required,
                }
            }
            "presenter" => ServerMsg::Presenter {
                id: Id::deserialize(rest)?.id,
            },
            "snapshot" => ServerMsg::Snapshot(Box::new(Snapshot::deserialize(rest)?)),
            "delta" => ServerMsg::Delta(Box::new(Delta::deserialize(rest)?)),
            "ack" => {
                let a = Ack::deserialize(rest)?;
                ServerMsg::Ack {
                    id: a.id,
                    generator: a.generator,
                    transaction: a.transaction,
                }
            }
            "error" => {
                let e = Error::deserialize(rest)?;
                ServerMsg::Error {
                    id: e.id,
                    message: e.message,
                }
            }
            "calculator" => {
                let c = Calculator::deserialize(rest)?;
                ServerMsg::Calculator {
                    id: c.id,
                    group: c.group,
                }
            }
            "replay" => {
                let r = Replay::deserialize(rest)?;
                ServerMsg::Replay {
                    id: r.id,
                    replay: r.replay,
                }
            }
            "naive" => {
                let n = Naive::deserialize(rest)?;
                ServerMsg::Naive {
                    id: n.id,
                    naive: n.naive,
                }
            }
            "outage" => {
                let o = Outage::deserialize(rest)?;
                ServerMsg::Outage {
                    id: o.id,
                    outage: o.outage,
                }
            }
            "reset" => ServerMsg::Reset {
                id: Id::deserialize(rest)?.id,
            },
            "reload" => ServerMsg::Reload {
                reason: Reload::deserialize(rest)?.reason,
            },
            other => return Err(de::Error::unknown_variant(other, VARIANTS)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Sample;

    /// Every variant reads back what the derived `Serialize` wrote.
    #[test]
    fn every_message_round_trips() {
        let msgs = vec![
            ServerMsg::Hello {
                protocol: 4,
                server: "s".into(),
                presenter_required: true,
            },
            ServerMsg::Presenter { id: Some(3) },
            ServerMsg::Snapshot(Box::new(Snapshot {
                topic: "t".into(),
                opening_balance: crate::Money::from_major(100),
                accounts: vec![],
                counters: Default::default(),
                generator: Default::default(),
                broker_reachable: true,
                broker_managed: false,
                log: vec![],
                history: vec![Sample {
                    t_ms: 1,
                    balances: vec![1, 2],
                    applied_per_second: 0.5,
                }],
                partitions: vec![],
                store: Default::default(),
                topic_view: None,
                group: Default::default(),
                flow: vec![],
                dead_letters: vec![],
                replay: Default::default(),
                naive: Default::default(),
                outage: Default::default(),
                lessons: Default::default(),
            })),
            ServerMsg::Delta(Box::new(Delta {
                dropped: vec![4],
                counters: Some(serde_json::json!({"sent": 3})),
                ..Delta::default()
            })),
            ServerMsg::Ack {
                id: Some(1),
                generator: Default::default(),
                transaction: None,
            },
            ServerMsg::Error {
                id: None,
                message: "no".into(),
            },
            ServerMsg::Calculator {
                id: Some(2),
                group: Default::default(),
            },
            ServerMsg::Replay {
                id: Some(2),
                replay: Default::default(),
            },
            ServerMsg::Naive {
                id: Some(2),
                naive: Default::default(),
            },
            ServerMsg::Outage {
                id: Some(2),
                outage: Default::default(),
            },
            ServerMsg::Reset { id: Some(9) },
            ServerMsg::Reload {
                reason: "old".into(),
            },
        ];
        assert_eq!(msgs.len(), VARIANTS.len());
        for m in msgs {
            let text = m.to_json();
            assert!(text.starts_with(r#"{"type":""#), "{text}");
            assert_eq!(
                serde_json::from_str::<ServerMsg>(&text).unwrap(),
                m,
                "{text}"
            );
        }
    }

    #[test]
    fn other_frames_are_refused_with_a_reason() {
        for (text, says) in [
            (r#"{"id":1,"type":"reset"}"#, "starts with its \"type\""),
            (r#"{"type":"gossip"}"#, "unknown variant `gossip`"),
            (r#"{"type":"reset","id":"x"}"#, "invalid type"),
            (r#"[1]"#, "an object whose first field"),
        ] {
            let e = serde_json::from_str::<ServerMsg>(text)
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}

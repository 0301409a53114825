//! What a port's selection settings leave without effect, said to the operator.
//!
//! The configuration accepts these combinations (a file may set `stickytime` or `repstrategy`
//! a line after `selectionalgorithm`, and IBM's `port set` cannot change the algorithm), but
//! Tandem never ignores them silently: the daemon answers the `port add|set` that makes one
//! with a warning, and `port report|status` lists it under `notes`.

use crate::config::{Port, RepStrategy, Selection};

/// Whether the port makes affinity records (as [`crate::forward::PortPlan::uses_affinity`]).
fn makes_affinity(port: &Port) -> bool {
    port.stickytime > 0 && matches!(port.selection, Selection::Affinity | Selection::ConnAffin)
}

/// Whether the port makes connection records (all but `affinity` with a stickytime).
fn makes_connections(port: &Port) -> bool {
    !(port.selection == Selection::Affinity && port.stickytime > 0)
}

/// The settings of `port` that have no effect under its `selectionalgorithm`, one sentence
/// each (empty when every setting acts).
pub fn selection_notes(port: &Port) -> Vec<String> {
    let mut notes = Vec::new();
    let algorithm = port.selection.keyword();
    match port.selection {
        Selection::Connection | Selection::Hash if port.stickytime > 0 => notes.push(format!(
            "stickytime {} has no effect under selectionalgorithm {algorithm}, which makes no \
             affinity records (use conn+affin or affinity for sticky clients)",
            port.stickytime
        )),
        Selection::Affinity | Selection::ConnAffin if port.stickytime == 0 => notes.push(format!(
            "selectionalgorithm {algorithm} with stickytime 0 makes no affinity records: the \
                 port works as connection until a stickytime above 0 is set"
        )),
        _ => {}
    }
    match port.repstrategy {
        RepStrategy::Connection if !makes_connections(port) => notes.push(
            "repstrategy connection sends nothing: selectionalgorithm affinity makes no \
             connection records (use repstrategy affinity or both)"
                .to_string(),
        ),
        RepStrategy::Affinity if !makes_affinity(port) => notes.push(format!(
            "repstrategy affinity sends nothing: selectionalgorithm {algorithm} with stickytime {} \
             makes no affinity records (use repstrategy connection or both, or conn+affin with a \
             stickytime)",
            port.stickytime
        )),
        _ => {}
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(selection: Selection, stickytime: u32, repstrategy: RepStrategy) -> Port {
        Port {
            selection,
            stickytime,
            repstrategy,
            ..Port::with_defaults(80)
        }
    }

    #[test]
    fn settings_without_effect_are_noted() {
        use RepStrategy as R;
        use Selection as S;
        let notes = |s, t, r| selection_notes(&port(s, t, r));
        assert!(notes(S::Connection, 0, R::None).is_empty());
        assert!(notes(S::Affinity, 60, R::Affinity).is_empty());
        assert!(notes(S::Affinity, 60, R::Both).is_empty());
        assert!(notes(S::ConnAffin, 60, R::Both).is_empty());
        assert!(notes(S::ConnAffin, 60, R::Connection).is_empty());
        assert!(notes(S::Hash, 0, R::Connection).is_empty());
        assert!(notes(S::Connection, 60, R::None)[0].contains("stickytime 60 has no effect"));
        assert!(notes(S::Hash, 5, R::None)[0].contains("under selectionalgorithm hash"));
        assert!(notes(S::Affinity, 0, R::None)[0].contains("works as connection"));
        assert!(notes(S::ConnAffin, 0, R::None)[0].contains("works as connection"));
        assert!(notes(S::Affinity, 60, R::Connection)[0].contains("makes no connection records"));
        assert_eq!(notes(S::Connection, 60, R::Affinity).len(), 2);
        // Affinity with stickytime 0 keeps connection records: repstrategy connection acts.
        assert_eq!(notes(S::Affinity, 0, R::Connection).len(), 1);
    }
}

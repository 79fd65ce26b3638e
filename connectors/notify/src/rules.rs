//! Which rules an alert matches.

use drover_catalog::NotificationRule;

/// An alert change, as notifications see it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Notice {
    /// The alert's id and state: what a delivery is called.
    pub id: String,
    pub device: String,
    /// The device's group in the registry, if any.
    pub group: Option<String>,
    pub kind: String,
    pub severity: String,
    pub state: String,
    /// The alert's JSON (the MQTT payload): what webhooks receive.
    pub json: Vec<u8>,
    /// One line for people: an email's subject.
    pub title: String,
    /// A few lines for people: an email's body.
    pub text: String,
}

/// Whether `rule` wants to hear about `notice`.
pub fn matches(rule: &NotificationRule, notice: &Notice) -> bool {
    let kind = rule.kinds.is_empty() || rule.kinds.contains(&notice.kind);
    let state = rule.states.contains(&notice.state);
    let everyone = rule.devices.is_empty() && rule.groups.is_empty();
    let device = everyone
        || rule.devices.contains(&notice.device)
        || notice
            .group
            .as_ref()
            .is_some_and(|g| rule.groups.iter().any(|r| r == g));
    kind && state && device
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_catalog::Channel;

    fn rule(
        kinds: &[&str],
        devices: &[&str],
        groups: &[&str],
        states: &[&str],
    ) -> NotificationRule {
        let owned = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        NotificationRule {
            id: "nr_1".to_owned(),
            name: "r".to_owned(),
            kinds: owned(kinds),
            devices: owned(devices),
            groups: owned(groups),
            states: owned(states),
            channel: Channel::Mqtt,
            created_ms: 0,
        }
    }

    fn notice(kind: &str, device: &str, group: Option<&str>, state: &str) -> Notice {
        Notice {
            id: "a".to_owned(),
            device: device.to_owned(),
            group: group.map(str::to_owned),
            kind: kind.to_owned(),
            severity: "warning".to_owned(),
            state: state.to_owned(),
            json: Vec::new(),
            title: String::new(),
            text: String::new(),
        }
    }

    #[test]
    fn rules_match_by_kind_state_device_and_group() {
        let all = rule(&[], &[], &[], &["open"]);
        assert!(matches(&all, &notice("sos", "d1", None, "open")));
        assert!(!matches(&all, &notice("sos", "d1", None, "closed")));
        let sos_north = rule(&["sos"], &[], &["north"], &["open", "closed"]);
        assert!(matches(
            &sos_north,
            &notice("sos", "d1", Some("north"), "closed")
        ));
        assert!(!matches(
            &sos_north,
            &notice("sos", "d1", Some("south"), "open")
        ));
        assert!(!matches(
            &sos_north,
            &notice("offline", "d1", Some("north"), "open")
        ));
        let one = rule(&[], &["d2"], &["north"], &["open"]);
        assert!(matches(&one, &notice("x", "d2", None, "open")));
        assert!(!matches(&one, &notice("x", "d3", None, "open")));
    }
}

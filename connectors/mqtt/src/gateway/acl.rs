//! What a client logged in with an API key may do: read everything under
//! the prefix and publish commands, nothing else. The node account is not
//! checked here: it has full rights.

use rumqttc::mqttbytes::valid_filter;

use crate::credentials::Rights;
use crate::{MqttError, payload};

#[derive(Debug)]
pub(crate) struct Acl {
    prefix: Box<str>,
}

impl Acl {
    pub(crate) fn new(prefix: &str) -> Result<Self, MqttError> {
        // A wildcard or `$` in the prefix would make "within the prefix"
        // mean more than the operator wrote.
        let valid = !prefix.is_empty() && !prefix.starts_with('$') && !prefix.contains(['+', '#']);
        if !valid {
            return Err(MqttError::BadPrefix(prefix.to_owned()));
        }
        Ok(Acl {
            prefix: prefix.into(),
        })
    }

    /// Filters within `{prefix}/#` (which includes `{prefix}` itself).
    pub(crate) fn may_subscribe(&self, filter: &str) -> bool {
        let within = match filter.strip_prefix(&*self.prefix) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        };
        within && valid_filter(filter)
    }

    /// Commands only, `{prefix}/devices/{id}/command`, with the rights to
    /// send them, and never retained: a retained command would run again at
    /// every resubscription of the node.
    pub(crate) fn may_publish(&self, rights: Rights, topic: &str, retain: bool) -> bool {
        rights == Rights::ReadAndCommand
            && !retain
            && payload::command_device(&self.prefix, topic).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_read_within_the_prefix_only() {
        let acl = Acl::new("drover").unwrap();
        for allowed in [
            "drover/#",
            "drover",
            "drover/devices/+/position",
            "drover/devices/42/command/result",
            "drover/+/+/status",
        ] {
            assert!(acl.may_subscribe(allowed), "{allowed}");
        }
        for refused in [
            "#",
            "+/devices/#",
            "other/#",
            "droverx/#",
            "drover#",
            "drover/de#",
            "$SYS/#",
            "$share/g/drover/#",
            "",
        ] {
            assert!(!acl.may_subscribe(refused), "{refused}");
        }
    }

    #[test]
    fn subscribers_publish_commands_only() {
        let acl = Acl::new("fleet/eu").unwrap();
        let may = |topic, retain| acl.may_publish(Rights::ReadAndCommand, topic, retain);
        assert!(may("fleet/eu/devices/42/command", false));
        assert!(!may("fleet/eu/devices/42/command", true));
        assert!(!may("fleet/eu/devices/42/position", false));
        assert!(!may("fleet/eu/devices/42/command/result", false));
        assert!(!may("fleet/eu/server/status", false));
        assert!(!may("other/devices/42/command", false));
        assert!(!acl.may_publish(Rights::Read, "fleet/eu/devices/42/command", false));
    }

    #[test]
    fn prefixes_with_wildcards_are_refused() {
        for prefix in ["", "a/+", "#", "$SYS"] {
            assert!(Acl::new(prefix).is_err(), "{prefix}");
        }
    }
}

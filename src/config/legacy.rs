//! Variables the Go logtrain read that this one does not: set, each is named in a
//! warning (by `logtrain check` and at start) instead of being ignored silently.
//! Pure: the caller passes the environment; nothing here logs or prints.

use super::Env;

/// A Go-only variable and what became of what it did.
pub struct GoOnly {
    pub variable: &'static str,
    pub instead: &'static str,
}

/// Every variable the Go logtrain read and this one ignores.
pub const GO_ONLY: &[GoOnly] = &[
    GoOnly {
        variable: "PERSISTENT_DATABASE_URL",
        instead: "persistent:// drains are gone; route to a network drain instead",
    },
    GoOnly {
        variable: "METRICS",
        instead: "/metrics is always served on HTTP_PORT",
    },
    GoOnly {
        variable: "PROFILE",
        instead: "pprof is gone",
    },
];

/// One warning per Go-only variable that is set (even empty), naming it.
pub fn warnings(env: &dyn Env) -> Vec<String> {
    GO_ONLY
        .iter()
        .filter(|g| env.var(g.variable).is_some())
        .map(|g| {
            format!(
                "{} is set but only the Go logtrain read it: ignored ({})",
                g.variable, g.instead
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn each_go_only_variable_that_is_set_is_named_once() {
        let env: HashMap<String, String> = [("METRICS", "true"), ("PROFILE", ""), ("HTTP_PORT", "9000")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let w = warnings(&env);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("METRICS is set") && w[1].starts_with("PROFILE is set"),
            "{w:?}"
        );
        assert!(warnings(&HashMap::new()).is_empty());
    }

    #[test]
    fn no_go_only_variable_is_a_setting() {
        for g in GO_ONLY {
            assert!(
                crate::config::SETTINGS
                    .iter()
                    .all(|s| s.env != g.variable && !s.also.contains(&g.variable)),
                "{} is read",
                g.variable
            );
        }
    }
}

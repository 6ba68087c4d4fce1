//! The declared table of settings: `settings!` turns one row per setting into the
//! `Config` struct (with its docs), its `Default`, its environment loading, its
//! bounds check and [`SETTINGS`](super::SETTINGS), the description tests, the
//! chart and `logtrain --help` read. A setting is written once, as its row; this
//! module never names a setting itself.

/// One row of the table, as data: what `logtrain --help`, the README test and the
/// chart test read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub env: &'static str,
    /// Older names of the same setting, read before `env` (so `env` wins).
    pub also: &'static [&'static str],
    /// The key of the YAML file (the `Config` field).
    pub key: &'static str,
    /// The default, as it would be written in the variable (empty: unset).
    pub default: &'static str,
    /// What the setting does (the field's doc).
    pub doc: &'static str,
}

impl Setting {
    /// Every variable this setting reads, in the order they are applied.
    pub fn vars(&self) -> impl DoubleEndedIterator<Item = &'static str> {
        self.also.iter().copied().chain([self.env])
    }

    /// The doc as one line.
    pub fn summary(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The environment variables of `settings` for `logtrain --help`: each with its
/// default and doc (wrapped), and its YAML key where that is not the variable in
/// lower case.
pub fn help(settings: &[Setting]) -> String {
    let mut out = String::from("Environment variables (each also a key of the YAML file; the environment wins):\n");
    for s in settings {
        let names: Vec<&str> = s.vars().rev().collect();
        out.push_str(&format!("  {}", names.join(", ")));
        if !s.default.is_empty() {
            out.push_str(&format!("  [default: {}]", s.default));
        }
        if s.key != s.env.to_ascii_lowercase() {
            out.push_str(&format!("  [file: {}]", s.key));
        }
        out.push('\n');
        let mut line = String::new();
        for word in s.summary().split(' ') {
            if !line.is_empty() && line.len() + word.len() > 76 {
                out.push_str(&format!("      {line}\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&format!("      {line}\n"));
    }
    out
}

/// Declares the settings. A row is the field's `///` doc, then
/// `field: Type = "default", "VAR" [| "OLDER_VAR" …], reader;` where the default
/// is written as the variable would be and `reader` (see [`read`](super::read))
/// parses the variable and the default and checks bounds. Fields after
/// `file only` have no variable.
macro_rules! settings {
    (
        $(
            $(#[doc = $doc:literal])+
            $field:ident: $ty:ty = $default:expr, $env:literal $(| $also:literal)*, $read:expr;
        )+
        file only:
        $(
            $(#[doc = $fdoc:literal])+
            $ffield:ident: $fty:ty;
        )*
    ) => {
        /// Everything logtrain can be told: one row of [`SETTINGS`] per field,
        /// plus what only the file can say.
        #[derive(Clone, Debug, serde::Deserialize, PartialEq)]
        #[serde(deny_unknown_fields, default)]
        pub struct Config {
            $(
                $(#[doc = $doc])+
                #[doc = ""]
                #[doc = concat!("Variable `", $env, "`" $(, ", or the older `", $also, "`")*, ".")]
                pub $field: $ty,
            )+
            $(
                $(#[doc = $fdoc])+
                pub $ffield: $fty,
            )*
        }

        impl Default for Config {
            fn default() -> Self {
                Config {
                    $($field: $crate::config::read::default_of($env, &$read, $default),)+
                    $($ffield: Default::default(),)*
                }
            }
        }

        /// Every setting with a variable, in the order they are applied.
        pub const SETTINGS: &[$crate::config::Setting] = &[
            $(
                $crate::config::Setting {
                    env: $env,
                    also: &[$($also),*],
                    key: stringify!($field),
                    default: $default,
                    doc: concat!($($doc, "\n"),+),
                },
            )+
        ];

        impl Config {
            /// Applies environment variables over the current values; returns every bad value.
            pub fn apply_env(&mut self, env: &dyn $crate::config::Env) -> Vec<$crate::config::ConfigError> {
                let mut errors = Vec::new();
                $(
                    for var in [$($also,)* $env] {
                        if let Some(v) = $crate::config::read::from_env(env, var, &$read, &mut errors) {
                            self.$field = v;
                        }
                    }
                )+
                errors
            }

            /// The values (from whatever source) their row's bounds refuse, as
            /// `key: what was expected`.
            fn out_of_bounds(&self) -> Vec<String> {
                let mut out = Vec::new();
                $(
                    if let Err(e) = $crate::config::read::Read::check(&$read, &self.$field) {
                        out.push(format!("{}: {e}", stringify!($field)));
                    }
                )+
                out
            }
        }
    };
}

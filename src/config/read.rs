//! How one setting's text becomes its value: the parser column of the table in
//! `config.rs`. Each reader turns the text of an environment variable (or of a
//! default) into a value or says what it expected, and checks a value's bounds
//! whichever source gave it. Pure functions only: nothing here reads the
//! environment or a file.

use std::str::FromStr;

use crate::egress::{self, Cidr};
use crate::record::Severity;

use super::{ConfigError, Env};

/// Reads one setting from text.
pub trait Read {
    type Value;
    /// Whether a variable that is set but empty is read (else it counts as unset).
    fn reads_empty(&self) -> bool {
        false
    }
    /// The value `text` says, or what was expected instead.
    fn read(&self, text: &str) -> Result<Self::Value, String>;
    /// What is wrong with a value, whichever source gave it (a bound).
    fn check(&self, _value: &Self::Value) -> Result<(), String> {
        Ok(())
    }
}

/// `var` from `env` if it is set (and not empty, unless `r` reads empty values);
/// a bad value is pushed to `errors`, naming the variable.
pub(super) fn from_env<R: Read>(env: &dyn Env, var: &str, r: &R, errors: &mut Vec<ConfigError>) -> Option<R::Value> {
    let value = env.var(var)?;
    if value.is_empty() && !r.reads_empty() {
        return None;
    }
    match r.read(&value) {
        Ok(v) => Some(v),
        Err(expected) => {
            errors.push(ConfigError::Env {
                var: var.into(),
                value,
                expected,
            });
            None
        }
    }
}

/// The value of a row's default text (a default the row refuses is a bug of the table).
pub(super) fn default_of<R: Read>(var: &str, r: &R, text: &str) -> R::Value {
    r.read(text)
        .unwrap_or_else(|e| panic!("the default of {var} ({text:?}) does not read: {e}"))
}

/// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`); set but empty is false.
pub struct Flag;

impl Read for Flag {
    type Value = bool;
    fn reads_empty(&self) -> bool {
        true
    }
    fn read(&self, text: &str) -> Result<bool, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err("expected true or false".into()),
        }
    }
}

/// A number, described as `what` ("a port number", "a byte count") in errors.
pub struct Num<T> {
    what: &'static str,
    min: Option<T>,
}

/// A number, described as `what` in errors.
pub fn num<T>(what: &'static str) -> Num<T> {
    Num { what, min: None }
}

impl<T: From<u8>> Num<T> {
    /// Refuses values below `min` (e.g. a queue of 0 records).
    pub fn at_least(self, min: u8) -> Self {
        Num {
            min: Some(min.into()),
            ..self
        }
    }
}

impl<T: FromStr + PartialOrd + std::fmt::Display> Read for Num<T> {
    type Value = T;
    fn read(&self, text: &str) -> Result<T, String> {
        let v: T = text.trim().parse().map_err(|_| format!("expected {}", self.what))?;
        self.check(&v)?;
        Ok(v)
    }
    fn check(&self, value: &T) -> Result<(), String> {
        match &self.min {
            Some(min) if value < min => Err(format!("expected {} of at least {min}", self.what)),
            _ => Ok(()),
        }
    }
}

/// Text as it is; `T` is `String` or `PathBuf`.
pub struct Text<T>(std::marker::PhantomData<T>);

/// Text as it is.
pub const fn text<T>() -> Text<T> {
    Text(std::marker::PhantomData)
}

impl<T: From<String>> Read for Text<T> {
    type Value = T;
    fn read(&self, text: &str) -> Result<T, String> {
        Ok(text.to_string().into())
    }
}

/// Text that may be absent (the empty text); `T` is `String` or `Secret`.
pub struct Optional<T>(std::marker::PhantomData<T>);

/// Text that may be absent.
pub const fn optional<T>() -> Optional<T> {
    Optional(std::marker::PhantomData)
}

impl<T: From<String>> Read for Optional<T> {
    type Value = Option<T>;
    fn read(&self, text: &str) -> Result<Option<T>, String> {
        Ok((!text.is_empty()).then(|| text.to_string().into()))
    }
}

/// One of a few names (any case), each meaning a value.
pub struct Choice<T: 'static>(pub &'static [(&'static str, T)]);

impl<T: Clone> Read for Choice<T> {
    type Value = T;
    fn read(&self, text: &str) -> Result<T, String> {
        let lower = text.to_ascii_lowercase();
        match self.0.iter().find(|(name, _)| *name == lower) {
            Some((_, v)) => Ok(v.clone()),
            None => {
                let names: Vec<&str> = self.0.iter().map(|(n, _)| *n).collect();
                Err(format!("expected {}", names.join(" or ")))
            }
        }
    }
}

/// A syslog severity: 0 to 7 or its name.
pub struct SeverityLevel;

impl Read for SeverityLevel {
    type Value = u8;
    fn read(&self, text: &str) -> Result<u8, String> {
        Severity::parse(text).map(Severity::get).ok_or_else(|| {
            "expected a syslog severity: 0 to 7, or emerg, alert, crit, err, warning, notice, info, debug".into()
        })
    }
}

/// Comma-separated names; empty items are skipped, and set but empty is none.
pub struct List;

impl Read for List {
    type Value = Vec<String>;
    fn reads_empty(&self) -> bool {
        true
    }
    fn read(&self, text: &str) -> Result<Vec<String>, String> {
        Ok(text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }
}

/// Comma-separated networks (CIDRs or addresses); set but empty is none.
pub struct Networks;

impl Read for Networks {
    type Value = Vec<Cidr>;
    fn reads_empty(&self) -> bool {
        true
    }
    fn read(&self, text: &str) -> Result<Vec<Cidr>, String> {
        egress::parse_list(text).map_err(|e| format!("expected comma-separated networks: {e}"))
    }
}

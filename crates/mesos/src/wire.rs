//! How Mesos's JSON differs from what serde does by default, in one place.
//!
//! A master converts protobuf to JSON field by field (stout's `JSON::protobuf`), not with
//! proto3's canonical mapping, so:
//! - enums are their string names (`"TASK_RUNNING"`); the ones whose proto has `UNKNOWN = 0`
//!   read any name they do not know as `UNKNOWN`, which is what protobuf itself does with an
//!   enum value from a newer peer ([`proto_enum!`]);
//! - an optional enum field of a type *without* `UNKNOWN` (a task status's `reason`, say) reads
//!   a name it does not know as "not set" ([`lenient_enum`]), again as protobuf does, so one
//!   new reason from a newer framework library does not fail the whole message;
//! - `bytes` are base64 strings ([`Base64Bytes`]);
//! - 64-bit integers are JSON numbers. Python frameworks compute them, so `5e9` arrives as
//!   `5000000000.0`; [`integer`] reads integral floats and numeric strings too.

use std::fmt;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// What every protobuf enum of this crate can do: name its values and read them back.
pub trait ProtoEnum: Sized + Copy + 'static {
    /// Every wire name, in declaration order.
    const NAMES: &'static [&'static str];
    /// The wire name of this value.
    fn as_str(self) -> &'static str;
    /// The value named `name`, if this build knows it.
    fn from_name(name: &str) -> Option<Self>;
}

/// A name that is not a value of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {kind} (expected one of {expected})")]
pub struct UnknownEnumValue {
    /// The enum's Rust name.
    pub kind: &'static str,
    /// The name that was given.
    pub value: String,
    /// The names that would have been accepted, comma-separated.
    pub expected: String,
}

/// Declares a protobuf enum carried as its string name.
///
/// `fallback Variant` makes unrecognised names deserialize to `Variant` (use it for the proto
/// enums whose first value is `UNKNOWN = 0`); without it they are an error naming the
/// accepted values.
macro_rules! proto_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident $(fallback $fallback:ident)? {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                }
            }
        }

        impl $crate::wire::ProtoEnum for $name {
            const NAMES: &'static [&'static str] = &[$($wire),+];

            fn as_str(self) -> &'static str {
                $name::as_str(self)
            }

            fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($wire => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::wire::UnknownEnumValue;

            /// Strict: an unknown name is an error even for enums with a fallback.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <$name as $crate::wire::ProtoEnum>::from_name(s).ok_or_else(|| {
                    $crate::wire::UnknownEnumValue {
                        kind: stringify!($name),
                        value: s.to_owned(),
                        expected: <$name as $crate::wire::ProtoEnum>::NAMES.join(", "),
                    }
                })
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let name = deserializer.deserialize_str($crate::wire::NameVisitor)?;
                match <$name as $crate::wire::ProtoEnum>::from_name(&name) {
                    Some(value) => Ok(value),
                    None => proto_enum!(@unknown $name, name $(, $fallback)?),
                }
            }
        }
    };
    (@unknown $name:ident, $value:ident, $fallback:ident) => {{
        let _ = $value;
        Ok($name::$fallback)
    }};
    (@unknown $name:ident, $value:ident) => {
        Err(<D::Error as ::serde::de::Error>::unknown_variant(
            &$value,
            <$name as $crate::wire::ProtoEnum>::NAMES,
        ))
    };
}
pub(crate) use proto_enum;

/// Reads a string, borrowed or owned.
pub(crate) struct NameVisitor;

impl Visitor<'_> for NameVisitor {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an enum value name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.to_owned())
    }
}

/// `deserialize_with` for an optional enum field whose type has no `UNKNOWN`: a name this
/// build does not know reads as "not set" (`None`), as protobuf reads it.
pub(crate) fn lenient_enum<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: ProtoEnum,
{
    let name: Option<String> = Option::deserialize(deserializer)?;
    Ok(name.and_then(|n| T::from_name(&n)))
}

/// A protobuf `bytes` field: base64 on the wire (standard alphabet, padded on output; padding
/// optional and surrounding whitespace ignored on input, since Python's `b2a_base64` adds a
/// newline that not every framework strips).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Base64Bytes(pub Vec<u8>);

const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl Base64Bytes {
    /// Decodes a base64 string as a master would accept it.
    pub fn from_base64(s: &str) -> Result<Self, base64::DecodeError> {
        LENIENT.decode(s.trim()).map(Base64Bytes)
    }

    /// The padded standard base64 form.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Base64Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Base64Bytes({})", self.to_base64())
    }
}

impl From<Vec<u8>> for Base64Bytes {
    fn from(bytes: Vec<u8>) -> Self {
        Base64Bytes(bytes)
    }
}

impl From<&[u8]> for Base64Bytes {
    fn from(bytes: &[u8]) -> Self {
        Base64Bytes(bytes.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for Base64Bytes {
    fn from(bytes: [u8; N]) -> Self {
        Base64Bytes(bytes.to_vec())
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = deserializer.deserialize_str(NameVisitor)?;
        Base64Bytes::from_base64(&s)
            .map_err(|e| de::Error::custom(format_args!("bytes field is not base64: {e}")))
    }
}

/// `deserialize_with` for an integer field: a JSON integer, an integral float (`5000000000.0`,
/// what Python's `json` writes for `5e9`) or a string of digits (proto3's canonical form for
/// 64-bit integers). Always written back as a JSON integer.
pub(crate) fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    let wide = deserializer.deserialize_any(IntegerVisitor)?;
    T::try_from(wide).map_err(|_| {
        de::Error::custom(format_args!(
            "integer {wide} is out of range for {}",
            std::any::type_name::<T>()
        ))
    })
}

/// [`integer`] for an optional field.
pub(crate) fn opt_integer<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128>,
{
    #[derive(Deserialize)]
    struct Wrap<T: TryFrom<i128>>(#[serde(deserialize_with = "integer")] T);

    Ok(Option::<Wrap<T>>::deserialize(deserializer)?.map(|Wrap(v)| v))
}

struct IntegerVisitor;

impl Visitor<'_> for IntegerVisitor {
    type Value = i128;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i128, E> {
        Ok(v.into())
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i128, E> {
        Ok(v.into())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i128, E> {
        // 2^64 bounds every field this is used for; beyond it f64 has no integral precision.
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 1.9e19 {
            Ok(v as i128)
        } else {
            Err(E::custom(format_args!("{v} is not an integer")))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i128, E> {
        v.trim()
            .parse::<i128>()
            .map_err(|_| E::custom(format_args!("`{v}` is not an integer")))
    }
}

#[cfg(test)]
mod tests {
    #![allow(dead_code)]
    use super::*;

    proto_enum! {
        /// A test enum with a fallback.
        pub enum WithUnknown fallback Unknown {
            Unknown = "UNKNOWN",
            One = "ONE",
        }
    }

    proto_enum! {
        /// A test enum without one.
        pub enum Strict {
            A = "A",
            B = "B",
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Holder {
        #[serde(default, deserialize_with = "lenient_enum")]
        strict: Option<Strict>,
        #[serde(default, deserialize_with = "opt_integer")]
        n: Option<u32>,
    }

    #[test]
    fn enums_by_name_with_and_without_fallback() {
        assert_eq!(serde_json::to_string(&WithUnknown::One).unwrap(), "\"ONE\"");
        assert_eq!(
            serde_json::from_str::<WithUnknown>("\"TWO\"").unwrap(),
            WithUnknown::Unknown
        );
        let err = serde_json::from_str::<Strict>("\"C\"").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown variant `C`, expected `A` or `B`"),
            "{err}"
        );
        let err = "C".parse::<Strict>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`C` is not a Strict (expected one of A, B)"
        );
        assert!("TWO".parse::<WithUnknown>().is_err());
    }

    #[test]
    fn lenient_optional_enum_reads_unknown_as_unset() {
        let h: Holder = serde_json::from_str(r#"{"strict":"Z"}"#).unwrap();
        assert_eq!(h.strict, None);
        let h: Holder = serde_json::from_str(r#"{"strict":"B","n":7.0}"#).unwrap();
        assert_eq!(h.strict, Some(Strict::B));
        assert_eq!(h.n, Some(7));
        let h: Holder = serde_json::from_str(r#"{"strict":null}"#).unwrap();
        assert_eq!(
            h,
            Holder {
                strict: None,
                n: None
            }
        );
    }

    #[test]
    fn integers_from_numbers_floats_and_strings() {
        #[derive(Deserialize)]
        struct N(#[serde(deserialize_with = "integer")] i64);
        let read = |s: &str| serde_json::from_str::<N>(s).map(|n| n.0);
        assert_eq!(read("5000000000").unwrap(), 5_000_000_000);
        assert_eq!(read("5000000000.0").unwrap(), 5_000_000_000);
        assert_eq!(read("\"-12\"").unwrap(), -12);
        assert!(read("1.5").is_err());
        assert!(read("\"x\"").is_err());
        #[derive(Deserialize, Debug)]
        struct U(
            #[allow(dead_code)]
            #[serde(deserialize_with = "integer")]
            u32,
        );
        assert!(serde_json::from_str::<U>("-1").is_err());
        assert!(serde_json::from_str::<U>("4294967296").is_err());
    }

    #[test]
    fn base64_bytes() {
        let b = Base64Bytes(vec![0xde, 0xad, 0xbe, 0xef, 0x01]);
        let json = serde_json::to_string(&b).unwrap();
        assert_eq!(json, "\"3q2+7wE=\"");
        assert_eq!(serde_json::from_str::<Base64Bytes>(&json).unwrap(), b);
        // Unpadded and newline-terminated forms are accepted too.
        assert_eq!(
            serde_json::from_str::<Base64Bytes>("\"3q2+7wE\"").unwrap(),
            b
        );
        assert_eq!(
            serde_json::from_str::<Base64Bytes>("\"3q2+7wE=\\n\"").unwrap(),
            b
        );
        let err = serde_json::from_str::<Base64Bytes>("\"not base64!\"").unwrap_err();
        assert!(err.to_string().contains("not base64"), "{err}");
    }
}

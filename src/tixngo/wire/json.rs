//! JSON values as the wire reads them: objects that name the fields nobody reads, objects that are
//! only objects, and scalars whose type errors never quote the value (tickets carry personal data).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// serde's own type errors quote the value they found (`invalid type: string "…"`); this keeps
/// the expected type and the position only.
pub(super) fn without_values(error: serde_json::Error) -> String {
    let message = error.to_string();
    let quotes_value = ["invalid type:", "invalid value:", "unknown variant"]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    if !quotes_value {
        return message;
    }
    let expected = message
        .rsplit_once(", expected ")
        .map(|(_, rest)| rest.split(" at line ").next().unwrap_or_default())
        .map(|what| {
            if what.starts_with("struct ") {
                "an object"
            } else {
                what
            }
        })
        .unwrap_or("another type");
    format!(
        "a field holds a value of the wrong type (expected {expected}) at line {} column {}",
        error.line(),
        error.column()
    )
}

/// A JSON object read as `T`, with the names of its fields that `T` does not read (serde's
/// derived structs skip them silently): so that the first real response tells the operator
/// what TIXNGO sends beyond what the mapping expects. Only an object, like [`Object`].
pub(super) struct Known<T> {
    pub(super) value: T,
    pub(super) unknown: Vec<String>,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Known<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = Known<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Known<T>, A::Error> {
                let mut unknown = Vec::new();
                let value = T::deserialize(NamingFields {
                    map,
                    unknown: &mut unknown,
                })?;
                Ok(Known { value, unknown })
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// A map handed to a derived struct, noting the keys that are not among the struct's fields.
struct NamingFields<'u, A> {
    map: A,
    unknown: &'u mut Vec<String>,
}

impl<'de, A: de::MapAccess<'de>> Deserializer<'de> for NamingFields<'_, A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        self.deserialize_struct("", &[], visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(NamingKeys {
            map: self.map,
            fields,
            unknown: self.unknown,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct NamingKeys<'u, A> {
    map: A,
    fields: &'static [&'static str],
    unknown: &'u mut Vec<String>,
}

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for NamingKeys<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let Some(key) = self.map.next_key::<KeyName<'de>>()? else {
            return Ok(None);
        };
        let name: &str = &key.0;
        if !self.fields.contains(&name) {
            self.unknown.push(name.to_owned());
        }
        match key.0 {
            std::borrow::Cow::Borrowed(name) => seed
                .deserialize(de::value::BorrowedStrDeserializer::new(name))
                .map(Some),
            std::borrow::Cow::Owned(name) => seed
                .deserialize(de::value::StringDeserializer::new(name))
                .map(Some),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

/// A key, borrowed from the input when it holds no escape.
struct KeyName<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for KeyName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = KeyName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(std::borrow::Cow::Borrowed(name)))
            }
            fn visit_str<E: de::Error>(self, name: &str) -> Result<KeyName<'de>, E> {
                Ok(KeyName(std::borrow::Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// A JSON object, and only an object: serde's derived structs also read an array, field by field
/// in declaration order, which would put a list's values into the wrong fields (an e-mail taken
/// from a list of names). An array where an object belongs is a value of the wrong type.
pub(super) struct Object<T>(pub(super) T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Fields<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer
            .deserialize_map(Fields(std::marker::PhantomData))
            .map(Object)
    }
}

/// A JSON string whose type errors never quote the value they found. A string holding a NUL
/// character (`\u0000`) is refused: PostgreSQL's `text` cannot hold one (the whole batch would
/// fail, run after run), and no name, e-mail or status has one.
pub(super) struct Text(pub(super) String);

/// A JSON boolean whose type errors never quote the value they found.
pub(super) struct Flag(pub(super) bool);

/// Names the JSON type found where another was expected, without its value.
fn wrong_type<E: de::Error>(expected: &str, found: &str) -> E {
    E::custom(format_args!("expected {expected}, found {found}"))
}

/// Reads a JSON scalar that should be a string or a boolean; every other type is an error that
/// names the type it found and not the value.
struct Scalar {
    expected: &'static str,
}

enum Found {
    Str(String),
    Bool(bool),
}

impl<'de> Visitor<'de> for Scalar {
    type Value = Found;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expected)
    }
    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Found, E> {
        Ok(Found::Bool(value))
    }
    fn visit_str<E: de::Error>(self, value: &str) -> Result<Found, E> {
        Ok(Found::Str(value.to_owned()))
    }
    fn visit_string<E: de::Error>(self, value: String) -> Result<Found, E> {
        Ok(Found::Str(value))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Found, E> {
        Err(wrong_type(self.expected, "a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Found, E> {
        Err(wrong_type(self.expected, "a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Found, E> {
        Err(wrong_type(self.expected, "a number"))
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Found, A::Error> {
        Err(wrong_type(self.expected, "an array"))
    }
    fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Found, A::Error> {
        Err(wrong_type(self.expected, "an object"))
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expected = "a string";
        match deserializer.deserialize_any(Scalar { expected })? {
            Found::Str(value) if value.contains('\0') => Err(de::Error::custom(
                "a string holding a NUL character (\\u0000), which no store keeps",
            )),
            Found::Str(value) => Ok(Text(value)),
            Found::Bool(_) => Err(wrong_type(expected, "a boolean")),
        }
    }
}

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let expected = "a boolean";
        match deserializer.deserialize_any(Scalar { expected })? {
            Found::Bool(value) => Ok(Flag(value)),
            Found::Str(_) => Err(wrong_type(expected, "a string")),
        }
    }
}

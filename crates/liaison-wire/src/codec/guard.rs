//! A serde `Deserializer` adapter that keeps hostile payloads from allocating or recursing
//! beyond what the input can justify (PROTOCOL.md §5.2).
//!
//! It wraps any self-describing-length format that can lend borrowed strings and bytes from
//! its input (the default codec's slice decoder does) and changes three things:
//!
//! - an owned string or byte buffer is read as a *borrowed* one, so the format checks its
//!   length prefix against the bytes actually present before anything is allocated; the
//!   visitor then receives an owned copy of exactly those bytes;
//! - the element count a sequence or map announces is capped, as a preallocation hint, by
//!   the budget left, and the total number of elements across the whole payload may not
//!   exceed the payload's length in bytes (every element but a zero-sized one takes at
//!   least one byte, so only a run of zero-sized elements longer than the payload hits
//!   this, and it would otherwise loop for as long as the prefix claims);
//! - nesting deeper than [`MAX_DEPTH`] containers is refused, so a recursive type cannot
//!   exhaust the stack.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess};
use serde::de::{VariantAccess, Visitor};

/// Deepest nesting of sequences, maps, structs, enums and options a payload may have.
pub(crate) const MAX_DEPTH: usize = 128;

/// Which guard refused the input, so the codec can report a precise error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tripped {
    /// More sequence or map elements than the input has bytes.
    Elements,
    /// Nesting deeper than [`MAX_DEPTH`].
    Depth,
}

/// The state shared by every wrapper of one decode.
#[derive(Debug)]
pub(crate) struct Budget {
    elements_left: Cell<usize>,
    tripped: Cell<Option<Tripped>>,
}

impl Budget {
    /// A budget for decoding `input_len` bytes.
    pub(crate) fn new(input_len: usize) -> Self {
        Self {
            elements_left: Cell::new(input_len),
            tripped: Cell::new(None),
        }
    }

    /// The guard that refused the input, if one did.
    pub(crate) fn tripped(&self) -> Option<Tripped> {
        self.tripped.get()
    }

    /// A seed that deserializes a `T` through the guard.
    pub(crate) fn seed<T>(&self) -> Seed<'_, PhantomData<T>> {
        Seed {
            inner: PhantomData,
            ctx: Ctx {
                budget: self,
                depth: 0,
            },
        }
    }

    fn trip<E: de::Error>(&self, why: Tripped) -> E {
        self.tripped.set(Some(why));
        E::custom(match why {
            Tripped::Elements => "more elements than the payload has bytes",
            Tripped::Depth => "payload nested too deeply",
        })
    }
}

#[derive(Clone, Copy)]
struct Ctx<'b> {
    budget: &'b Budget,
    depth: usize,
}

impl Ctx<'_> {
    fn deeper<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_DEPTH {
            return Err(self.budget.trip(Tripped::Depth));
        }
        Ok(Self {
            depth: self.depth + 1,
            ..self
        })
    }

    fn take_element<E: de::Error>(self) -> Result<(), E> {
        let left = self.budget.elements_left.get();
        if left == 0 {
            return Err(self.budget.trip(Tripped::Elements));
        }
        self.budget.elements_left.set(left - 1);
        Ok(())
    }

    fn cap_hint(self, hint: Option<usize>) -> Option<usize> {
        hint.map(|n| n.min(self.budget.elements_left.get()))
    }
}

/// A `DeserializeSeed` that runs its inner seed on a guarded deserializer.
pub(crate) struct Seed<'b, S> {
    inner: S,
    ctx: Ctx<'b>,
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<'_, S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<S::Value, D::Error> {
        self.inner.deserialize(Guarded {
            inner: deserializer,
            ctx: self.ctx,
        })
    }
}

struct Guarded<'b, D> {
    inner: D,
    ctx: Ctx<'b>,
}

impl<'b, D> Guarded<'b, D> {
    fn wrap<V>(&self, visitor: V) -> Wrap<'b, V> {
        Wrap {
            inner: visitor,
            ctx: self.ctx,
            owned: false,
            counted: false,
        }
    }
}

macro_rules! forward_deserialize {
    ($($method:ident),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let visitor = self.wrap(visitor);
            self.inner.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Guarded<'_, D> {
    type Error = D::Error;

    forward_deserialize!(
        deserialize_any,
        deserialize_bool,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64,
        deserialize_i128,
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_u128,
        deserialize_f32,
        deserialize_f64,
        deserialize_char,
        deserialize_str,
        deserialize_bytes,
        deserialize_option,
        deserialize_unit,
        deserialize_identifier,
        deserialize_ignored_any,
    );

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = Wrap {
            owned: true,
            ..self.wrap(visitor)
        };
        self.inner.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = Wrap {
            owned: true,
            ..self.wrap(visitor)
        };
        self.inner.deserialize_bytes(visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = Wrap {
            counted: true,
            ..self.wrap(visitor)
        };
        self.inner.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = Wrap {
            counted: true,
            ..self.wrap(visitor)
        };
        self.inner.deserialize_map(visitor)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_unit_struct(name, visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_newtype_struct(name, visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_tuple(len, visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_tuple_struct(name, len, visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = self.wrap(visitor);
        self.inner.deserialize_enum(name, variants, visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// A visitor that re-wraps whatever nested access it is handed.
struct Wrap<'b, V> {
    inner: V,
    ctx: Ctx<'b>,
    /// The caller asked for an owned string or buffer; the format lends a borrowed one.
    owned: bool,
    /// The access is a sequence or map whose length the input announces, so its elements
    /// count against the budget. Tuples and structs have a length fixed by their type and
    /// cannot amplify the input, so their fields do not count.
    counted: bool,
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool(bool),
        visit_i8(i8),
        visit_i16(i16),
        visit_i32(i32),
        visit_i64(i64),
        visit_i128(i128),
        visit_u8(u8),
        visit_u16(u16),
        visit_u32(u32),
        visit_u64(u64),
        visit_u128(u128),
        visit_f32(f32),
        visit_f64(f64),
        visit_char(char),
        visit_str(&str),
        visit_string(String),
        visit_bytes(&[u8]),
        visit_byte_buf(Vec<u8>),
    );

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        if self.owned {
            self.inner.visit_string(v.to_owned())
        } else {
            self.inner.visit_borrowed_str(v)
        }
    }

    fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        if self.owned {
            self.inner.visit_byte_buf(v.to_vec())
        } else {
            self.inner.visit_borrowed_bytes(v)
        }
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<V::Value, D::Error> {
        let ctx = self.ctx.deeper()?;
        self.inner.visit_some(Guarded {
            inner: deserializer,
            ctx,
        })
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<V::Value, D::Error> {
        let ctx = self.ctx.deeper()?;
        self.inner.visit_newtype_struct(Guarded {
            inner: deserializer,
            ctx,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        let ctx = self.ctx.deeper()?;
        self.inner.visit_seq(GuardedSeq {
            inner: seq,
            ctx,
            counted: self.counted,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        let ctx = self.ctx.deeper()?;
        self.inner.visit_map(GuardedMap {
            inner: map,
            ctx,
            counted: self.counted,
        })
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        let ctx = self.ctx.deeper()?;
        self.inner.visit_enum(GuardedEnum { inner: data, ctx })
    }
}

struct GuardedSeq<'b, A> {
    inner: A,
    ctx: Ctx<'b>,
    counted: bool,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for GuardedSeq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let seed = Seed {
            inner: seed,
            ctx: self.ctx,
        };
        let element = self.inner.next_element_seed(seed)?;
        if element.is_some() && self.counted {
            self.ctx.take_element()?;
        }
        Ok(element)
    }

    fn size_hint(&self) -> Option<usize> {
        self.ctx.cap_hint(self.inner.size_hint())
    }
}

struct GuardedMap<'b, A> {
    inner: A,
    ctx: Ctx<'b>,
    counted: bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for GuardedMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let seed = Seed {
            inner: seed,
            ctx: self.ctx,
        };
        let key = self.inner.next_key_seed(seed)?;
        if key.is_some() && self.counted {
            self.ctx.take_element()?;
        }
        Ok(key)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.next_value_seed(Seed {
            inner: seed,
            ctx: self.ctx,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        self.ctx.cap_hint(self.inner.size_hint())
    }
}

struct GuardedEnum<'b, A> {
    inner: A,
    ctx: Ctx<'b>,
}

impl<'de, 'b, A: EnumAccess<'de>> EnumAccess<'de> for GuardedEnum<'b, A> {
    type Error = A::Error;
    type Variant = GuardedVariant<'b, A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), A::Error> {
        let seed = Seed {
            inner: seed,
            ctx: self.ctx,
        };
        let (value, variant) = self.inner.variant_seed(seed)?;
        Ok((
            value,
            GuardedVariant {
                inner: variant,
                ctx: self.ctx,
            },
        ))
    }
}

struct GuardedVariant<'b, A> {
    inner: A,
    ctx: Ctx<'b>,
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for GuardedVariant<'_, A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.inner.unit_variant()
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        self.inner.newtype_variant_seed(Seed {
            inner: seed,
            ctx: self.ctx,
        })
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.inner.tuple_variant(
            len,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
                owned: false,
                counted: false,
            },
        )
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.inner.struct_variant(
            fields,
            Wrap {
                inner: visitor,
                ctx: self.ctx,
                owned: false,
                counted: false,
            },
        )
    }
}

//! A bounded reader of Java's object serialization stream (`ObjectOutputStream`, protocol 2).
//!
//! Flink stores every HA pointer and payload this way: a ConfigMap value is Base64 of a
//! serialized `StateHandleWithDeleteMarker`, a payload file is a serialized
//! `CompletedCheckpoint` or execution plan. This module turns such a stream into a graph of
//! [`Entry`]s without running or knowing any Java class; `flink_state` reads Flink's classes
//! out of it.
//!
//! Why our own and not a crate: the two on crates.io were evaluated (jaded 0.5,
//! java-serialization 0.1). Both recurse without a depth bound (a deep stream overflows the
//! stack: an abort, not an error), preallocate from lengths read off the wire (`jaded`:
//! `Vec::with_capacity` of a 64-bit string length), and `java-serialization` copies each
//! object into its handle table (quadratic memory on nested objects) and subtracts handles
//! without a check. The input here is whatever sits in a ConfigMap, so the reader must be
//! bounded by construction:
//!
//! - **memory:** every entry, field and element costs at least one input byte, lengths are
//!   checked against the bytes left before anything is allocated, and back-references are
//!   indices into one table (never copies), so memory is linear in the input;
//! - **depth:** nesting is limited to [`MAX_DEPTH`] (an error, not a stack overflow);
//! - **no panics:** every read is checked; the grammar's dead ends are [`JavaStreamError`]s
//!   that name the byte offset.

use thiserror::Error;

/// Deepest nesting of objects, arrays and class descriptors accepted. Flink's
/// `CompletedCheckpoint` nests about 20 deep; `ObjectInputStream` itself has no limit but
/// the JVM's stack.
pub const MAX_DEPTH: usize = 128;

/// Largest stream accepted: 64 MiB (a ConfigMap value is under 1 MiB, a payload file a few
/// MiB at most; a bigger one is read by the caller only up to this).
pub const MAX_STREAM_BYTES: usize = 64 << 20;

const STREAM_MAGIC: u16 = 0xACED;
const STREAM_VERSION: u16 = 5;
const BASE_WIRE_HANDLE: u32 = 0x7E_0000;

const TC_NULL: u8 = 0x70;
const TC_REFERENCE: u8 = 0x71;
const TC_CLASSDESC: u8 = 0x72;
const TC_OBJECT: u8 = 0x73;
const TC_STRING: u8 = 0x74;
const TC_ARRAY: u8 = 0x75;
const TC_CLASS: u8 = 0x76;
const TC_BLOCKDATA: u8 = 0x77;
const TC_ENDBLOCKDATA: u8 = 0x78;
const TC_RESET: u8 = 0x79;
const TC_BLOCKDATALONG: u8 = 0x7A;
const TC_EXCEPTION: u8 = 0x7B;
const TC_LONGSTRING: u8 = 0x7C;
const TC_PROXYCLASSDESC: u8 = 0x7D;
const TC_ENUM: u8 = 0x7E;

const SC_WRITE_METHOD: u8 = 0x01;
const SC_SERIALIZABLE: u8 = 0x02;
const SC_EXTERNALIZABLE: u8 = 0x04;
const SC_BLOCK_DATA: u8 = 0x08;

/// Why a stream could not be read. `offset` is the byte where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JavaStreamError {
    /// The stream does not start with `AC ED 00 05`.
    #[error("not a Java serialization stream (no AC ED 00 05 header)")]
    NotJavaSerialization,
    /// The stream is longer than [`MAX_STREAM_BYTES`].
    #[error("stream of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// Length of the stream.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The stream ends inside an element.
    #[error("stream ends early at byte {offset} (inside {inside})")]
    Truncated {
        /// Byte offset.
        offset: usize,
        /// What was being read.
        inside: &'static str,
    },
    /// An element the grammar does not allow at this place.
    #[error("unexpected byte 0x{byte:02x} at byte {offset} (expected {expected})")]
    Unexpected {
        /// Byte offset.
        offset: usize,
        /// The byte found.
        byte: u8,
        /// What the grammar allows here.
        expected: &'static str,
    },
    /// A back-reference to a handle not assigned yet, or of the wrong kind.
    #[error("bad back-reference 0x{handle:08x} at byte {offset} ({why})")]
    BadReference {
        /// Byte offset.
        offset: usize,
        /// The wire handle.
        handle: u32,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} at byte {offset}")]
    TooDeep {
        /// Byte offset.
        offset: usize,
    },
    /// A class whose data this reader cannot delimit (externalizable, protocol version 1).
    #[error(
        "class {class} at byte {offset} is externalizable without block data (protocol 1); its data cannot be delimited"
    )]
    Unsupported {
        /// Byte offset.
        offset: usize,
        /// The class name.
        class: String,
    },
}

/// A handle into [`JavaStream::entries`]: what `TC_REFERENCE` points at, and how objects
/// refer to each other (a graph, possibly with cycles; never copied).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryId(u32);

/// One value in a field, array element or annotation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// An object, string, array, enum, class or class descriptor.
    Entry(EntryId),
    /// `boolean`.
    Boolean(bool),
    /// `byte`.
    Byte(i8),
    /// `char` (a UTF-16 code unit).
    Char(u16),
    /// `short`.
    Short(i16),
    /// `int`.
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// Raw bytes a class's `writeObject` wrote (block data), in an annotation.
    Block(Vec<u8>),
}

/// A field of a class descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDesc {
    /// The field's name.
    pub name: String,
    /// Its type code: `B C D F I J S Z` for primitives, `L` object, `[` array.
    pub type_code: u8,
    /// For `L` and `[`: the field's declared type (`Ljava/lang/String;`).
    pub class_name: Option<String>,
}

/// A class descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassDesc {
    /// Binary class name (`org.apache.flink.core.fs.Path`, `[B`), or `$Proxy` for a proxy.
    pub name: String,
    /// `serialVersionUID`.
    pub serial_version_uid: i64,
    /// `SC_*` flags.
    pub flags: u8,
    /// Serializable fields in stream order.
    pub fields: Vec<FieldDesc>,
    /// The superclass's descriptor, if serializable.
    pub super_class: Option<EntryId>,
}

/// The data one class of an object's hierarchy wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassData {
    /// The class descriptor.
    pub class: EntryId,
    /// Default-serialized field values, in the order of the descriptor's fields.
    pub fields: Vec<Value>,
    /// What `writeObject`/`writeExternal` wrote after them (block data and objects).
    pub annotation: Vec<Value>,
}

/// An entry of the handle table.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A class descriptor.
    ClassDesc(ClassDesc),
    /// A `java.lang.Class` object.
    Class(EntryId),
    /// A string.
    String(String),
    /// An array: its class descriptor and elements.
    Array {
        /// The array's class descriptor (`[B`, `[Ljava.lang.String;`).
        class: EntryId,
        /// The elements.
        elements: Vec<Value>,
    },
    /// An enum constant.
    Enum {
        /// The enum's class descriptor.
        class: EntryId,
        /// The constant's name.
        constant: String,
    },
    /// An object: its class descriptor and each class's data, superclass first.
    Object {
        /// The object's class descriptor.
        class: EntryId,
        /// Per class of its hierarchy, superclass first.
        data: Vec<ClassData>,
    },
    /// A handle assigned while its entry is still being read (only seen through a
    /// reference from inside it).
    Pending,
}

/// A parsed stream: the handle table and the top-level contents in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JavaStream {
    entries: Vec<Entry>,
    /// Top-level contents (`writeObject` calls and block data), in order.
    pub contents: Vec<Value>,
}

impl JavaStream {
    /// Reads a whole stream.
    pub fn parse(bytes: &[u8]) -> Result<JavaStream, JavaStreamError> {
        if bytes.len() > MAX_STREAM_BYTES {
            return Err(JavaStreamError::TooLarge {
                len: bytes.len(),
                max: MAX_STREAM_BYTES,
            });
        }
        let mut reader = Reader {
            bytes,
            pos: 0,
            depth: 0,
            handles: Vec::new(),
            stream: JavaStream::default(),
        };
        if bytes.len() < 4
            || u16::from_be_bytes([bytes[0], bytes[1]]) != STREAM_MAGIC
            || u16::from_be_bytes([bytes[2], bytes[3]]) != STREAM_VERSION
        {
            return Err(JavaStreamError::NotJavaSerialization);
        }
        reader.pos = 4;
        while reader.pos < bytes.len() {
            if let Some(value) = reader.content("top-level content")? {
                reader.stream.contents.push(value);
            }
        }
        Ok(reader.stream)
    }

    /// The entry behind an id.
    pub fn entry(&self, id: EntryId) -> Option<&Entry> {
        self.entries.get(id.0 as usize)
    }

    /// Every entry, in the order they were read.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The first top-level object written (what `ObjectInputStream.readObject` returns).
    pub fn root(&self) -> Option<ObjectView<'_>> {
        self.contents.iter().find_map(|value| self.object(value))
    }

    /// `value` as an object, if it is one.
    pub fn object<'s>(&'s self, value: &Value) -> Option<ObjectView<'s>> {
        let Value::Entry(id) = value else {
            return None;
        };
        match self.entry(*id)? {
            Entry::Object { class, data } => Some(ObjectView {
                stream: self,
                class: *class,
                data,
            }),
            _ => None,
        }
    }

    /// `value` as a string, if it is one.
    pub fn string<'s>(&'s self, value: &Value) -> Option<&'s str> {
        let Value::Entry(id) = value else {
            return None;
        };
        match self.entry(*id)? {
            Entry::String(s) => Some(s),
            _ => None,
        }
    }

    /// `value` as a `byte[]`, if it is one.
    pub fn byte_array(&self, value: &Value) -> Option<Vec<u8>> {
        let Value::Entry(id) = value else {
            return None;
        };
        match self.entry(*id)? {
            Entry::Array { elements, .. } => elements
                .iter()
                .map(|e| match e {
                    Value::Byte(b) => Some(b.to_be_bytes()[0]),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    fn class_desc(&self, id: EntryId) -> Option<&ClassDesc> {
        match self.entry(id)? {
            Entry::ClassDesc(desc) => Some(desc),
            _ => None,
        }
    }

    /// Pushes an entry and returns its id.
    fn push(&mut self, entry: Entry) -> EntryId {
        // Bounded: each entry consumed at least one input byte, and the input is bounded.
        let id = EntryId(u32::try_from(self.entries.len()).unwrap_or(u32::MAX));
        self.entries.push(entry);
        id
    }
}

/// An object of a parsed stream, with lookups by field name across its class hierarchy.
#[derive(Debug, Clone, Copy)]
pub struct ObjectView<'s> {
    stream: &'s JavaStream,
    class: EntryId,
    data: &'s [ClassData],
}

impl<'s> ObjectView<'s> {
    /// The object's class name.
    pub fn class_name(&self) -> &'s str {
        self.stream
            .class_desc(self.class)
            .map_or("?", |desc| desc.name.as_str())
    }

    /// The stream it belongs to.
    pub fn stream(&self) -> &'s JavaStream {
        self.stream
    }

    /// A default-serialized field's value, searched from the object's own class up to its
    /// superclasses (the nearest declaration wins, as in Java).
    pub fn field(&self, name: &str) -> Option<&'s Value> {
        self.data.iter().rev().find_map(|class_data| {
            let desc = self.stream.class_desc(class_data.class)?;
            let index = desc.fields.iter().position(|f| f.name == name)?;
            class_data.fields.get(index)
        })
    }

    /// A field as an object.
    pub fn object_field(&self, name: &str) -> Option<ObjectView<'s>> {
        self.stream.object(self.field(name)?)
    }

    /// A field as a string.
    pub fn string_field(&self, name: &str) -> Option<&'s str> {
        self.stream.string(self.field(name)?)
    }

    /// A `long` field.
    pub fn long_field(&self, name: &str) -> Option<i64> {
        match self.field(name)? {
            Value::Long(v) => Some(*v),
            _ => None,
        }
    }

    /// A `boolean` field.
    pub fn bool_field(&self, name: &str) -> Option<bool> {
        match self.field(name)? {
            Value::Boolean(v) => Some(*v),
            _ => None,
        }
    }

    /// What the object's classes wrote after their fields (`writeObject` data), superclass
    /// first.
    pub fn annotations(&self) -> impl Iterator<Item = &'s Value> + 's {
        self.data.iter().flat_map(|d| d.annotation.iter())
    }
}

struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
    depth: usize,
    /// Wire handle (minus the base) → entry id; `TC_RESET` clears it.
    handles: Vec<EntryId>,
    stream: JavaStream,
}

impl Reader<'_> {
    fn truncated(&self, inside: &'static str) -> JavaStreamError {
        JavaStreamError::Truncated {
            offset: self.pos,
            inside,
        }
    }

    fn take(&mut self, n: usize, inside: &'static str) -> Result<&[u8], JavaStreamError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.truncated(inside))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, inside: &'static str) -> Result<[u8; N], JavaStreamError> {
        let slice = self.take(N, inside)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    fn u8(&mut self, inside: &'static str) -> Result<u8, JavaStreamError> {
        Ok(self.array::<1>(inside)?[0])
    }

    fn peek(&self, inside: &'static str) -> Result<u8, JavaStreamError> {
        self.bytes.get(self.pos).copied().ok_or_else(|| self.truncated(inside))
    }

    fn u16(&mut self, inside: &'static str) -> Result<u16, JavaStreamError> {
        Ok(u16::from_be_bytes(self.array(inside)?))
    }

    fn i32(&mut self, inside: &'static str) -> Result<i32, JavaStreamError> {
        Ok(i32::from_be_bytes(self.array(inside)?))
    }

    fn i64(&mut self, inside: &'static str) -> Result<i64, JavaStreamError> {
        Ok(i64::from_be_bytes(self.array(inside)?))
    }

    fn unexpected(&self, byte: u8, expected: &'static str) -> JavaStreamError {
        JavaStreamError::Unexpected {
            offset: self.pos.saturating_sub(1),
            byte,
            expected,
        }
    }

    /// A length read off the wire, checked against the bytes left (each unit at least
    /// `unit` bytes) before anything is allocated for it.
    fn length(&self, len: u64, unit: usize, inside: &'static str) -> Result<usize, JavaStreamError> {
        let left = (self.bytes.len() - self.pos) as u64;
        match len.checked_mul(unit as u64) {
            Some(total) if total <= left => usize::try_from(len).map_err(|_| self.truncated(inside)),
            _ => Err(self.truncated(inside)),
        }
    }

    fn utf(&mut self, inside: &'static str) -> Result<String, JavaStreamError> {
        let len = u64::from(self.u16(inside)?);
        let len = self.length(len, 1, inside)?;
        let bytes = self.take(len, inside)?;
        Ok(modified_utf8(bytes))
    }

    fn long_utf(&mut self, inside: &'static str) -> Result<String, JavaStreamError> {
        let len = self.i64(inside)?;
        let len = self.length(u64::try_from(len).unwrap_or(u64::MAX), 1, inside)?;
        let bytes = self.take(len, inside)?;
        Ok(modified_utf8(bytes))
    }

    fn enter(&mut self) -> Result<(), JavaStreamError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(JavaStreamError::TooDeep { offset: self.pos });
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Assigns the next wire handle to a new entry.
    fn new_handle(&mut self, entry: Entry) -> EntryId {
        let id = self.stream.push(entry);
        self.handles.push(id);
        id
    }

    fn set(&mut self, id: EntryId, entry: Entry) {
        if let Some(slot) = self.stream.entries.get_mut(id.0 as usize) {
            *slot = entry;
        }
    }

    fn reference(&mut self) -> Result<EntryId, JavaStreamError> {
        let offset = self.pos;
        let handle = u32::from_be_bytes(self.array("a back-reference")?);
        let index = handle
            .checked_sub(BASE_WIRE_HANDLE)
            .ok_or(JavaStreamError::BadReference {
                offset,
                handle,
                why: "below the first handle",
            })?;
        self.handles
            .get(index as usize)
            .copied()
            .ok_or(JavaStreamError::BadReference {
                offset,
                handle,
                why: "not assigned yet",
            })
    }

    /// `content`: an object or block data. `None` for `TC_RESET`.
    fn content(&mut self, inside: &'static str) -> Result<Option<Value>, JavaStreamError> {
        match self.peek(inside)? {
            TC_BLOCKDATA => {
                self.pos += 1;
                let len = usize::from(self.u8("block data")?);
                Ok(Some(Value::Block(self.take(len, "block data")?.to_vec())))
            }
            TC_BLOCKDATALONG => {
                self.pos += 1;
                let len = self.i32("block data")?;
                let len = self.length(u64::try_from(len).unwrap_or(u64::MAX), 1, "block data")?;
                Ok(Some(Value::Block(self.take(len, "block data")?.to_vec())))
            }
            TC_RESET => {
                self.pos += 1;
                self.handles.clear();
                Ok(None)
            }
            _ => self.object(inside).map(Some),
        }
    }

    /// `object`: one of the object forms, `TC_NULL` or a back-reference.
    fn object(&mut self, inside: &'static str) -> Result<Value, JavaStreamError> {
        self.enter()?;
        let result = self.object_inner(inside);
        self.leave();
        result
    }

    fn object_inner(&mut self, inside: &'static str) -> Result<Value, JavaStreamError> {
        let tc = self.u8(inside)?;
        Ok(match tc {
            TC_NULL => Value::Null,
            TC_REFERENCE => Value::Entry(self.reference()?),
            TC_STRING => {
                let s = self.utf("a string")?;
                Value::Entry(self.new_handle(Entry::String(s)))
            }
            TC_LONGSTRING => {
                let s = self.long_utf("a long string")?;
                Value::Entry(self.new_handle(Entry::String(s)))
            }
            TC_CLASSDESC | TC_PROXYCLASSDESC => {
                self.pos -= 1;
                match self.class_desc()? {
                    Some(id) => Value::Entry(id),
                    None => Value::Null,
                }
            }
            TC_CLASS => {
                let class = self.required_class_desc("a class object")?;
                Value::Entry(self.new_handle(Entry::Class(class)))
            }
            TC_ENUM => {
                let class = self.required_class_desc("an enum")?;
                let id = self.new_handle(Entry::Pending);
                let name = self.object("an enum constant name")?;
                let constant = self
                    .stream
                    .string(&name)
                    .ok_or_else(|| self.unexpected(tc, "a string as the enum constant name"))?
                    .to_owned();
                self.set(id, Entry::Enum { class, constant });
                Value::Entry(id)
            }
            TC_ARRAY => Value::Entry(self.new_array()?),
            TC_OBJECT => Value::Entry(self.new_object()?),
            TC_EXCEPTION => {
                // `reset (Throwable)object reset`: the writer failed mid-stream.
                self.handles.clear();
                let thrown = self.object("an exception")?;
                self.handles.clear();
                thrown
            }
            other => return Err(self.unexpected(other, "an object")),
        })
    }

    /// `classDesc`: a new descriptor, `TC_NULL` (`None`) or a reference to a descriptor.
    fn class_desc(&mut self) -> Result<Option<EntryId>, JavaStreamError> {
        self.enter()?;
        let result = self.class_desc_inner();
        self.leave();
        result
    }

    fn class_desc_inner(&mut self) -> Result<Option<EntryId>, JavaStreamError> {
        let tc = self.u8("a class descriptor")?;
        match tc {
            TC_NULL => Ok(None),
            TC_REFERENCE => {
                let offset = self.pos;
                let id = self.reference()?;
                match self.stream.entry(id) {
                    Some(Entry::ClassDesc(_)) => Ok(Some(id)),
                    _ => Err(JavaStreamError::BadReference {
                        offset,
                        handle: self
                            .bytes
                            .get(offset..offset + 4)
                            .and_then(|b| b.try_into().ok())
                            .map_or(0, u32::from_be_bytes),
                        why: "not a class descriptor",
                    }),
                }
            }
            TC_CLASSDESC => {
                let name = self.utf("a class name")?;
                let serial_version_uid = self.i64("a serialVersionUID")?;
                let id = self.new_handle(Entry::Pending);
                let flags = self.u8("class flags")?;
                let count = u64::from(self.u16("a field count")?);
                // A field is at least 3 bytes (type code, empty name).
                let count = self.length(count, 3, "fields")?;
                let mut fields = Vec::with_capacity(count);
                for _ in 0..count {
                    fields.push(self.field_desc()?);
                }
                self.annotation("a class annotation")?;
                let super_class = self.class_desc()?;
                self.set(
                    id,
                    Entry::ClassDesc(ClassDesc {
                        name,
                        serial_version_uid,
                        flags,
                        fields,
                        super_class,
                    }),
                );
                Ok(Some(id))
            }
            TC_PROXYCLASSDESC => {
                let id = self.new_handle(Entry::Pending);
                let count = self.i32("a proxy interface count")?;
                let count = self.length(u64::try_from(count).unwrap_or(u64::MAX), 2, "proxy interfaces")?;
                for _ in 0..count {
                    self.utf("a proxy interface name")?;
                }
                self.annotation("a class annotation")?;
                let super_class = self.class_desc()?;
                self.set(
                    id,
                    Entry::ClassDesc(ClassDesc {
                        name: "$Proxy".to_owned(),
                        serial_version_uid: 0,
                        flags: SC_SERIALIZABLE,
                        fields: Vec::new(),
                        super_class,
                    }),
                );
                Ok(Some(id))
            }
            other => Err(self.unexpected(other, "a class descriptor")),
        }
    }

    fn required_class_desc(&mut self, what: &'static str) -> Result<EntryId, JavaStreamError> {
        let offset = self.pos;
        self.class_desc()?.ok_or(JavaStreamError::Unexpected {
            offset,
            byte: TC_NULL,
            expected: what,
        })
    }

    fn field_desc(&mut self) -> Result<FieldDesc, JavaStreamError> {
        let type_code = self.u8("a field type")?;
        let name = self.utf("a field name")?;
        let class_name = match type_code {
            b'B' | b'C' | b'D' | b'F' | b'I' | b'J' | b'S' | b'Z' => None,
            b'L' | b'[' => {
                let value = self.object("a field's type name")?;
                Some(
                    self.stream
                        .string(&value)
                        .ok_or_else(|| self.unexpected(type_code, "a string as the field's type"))?
                        .to_owned(),
                )
            }
            other => return Err(self.unexpected(other, "a field type code")),
        };
        Ok(FieldDesc {
            name,
            type_code,
            class_name,
        })
    }

    /// `contents endBlockData`: what a class annotation or `writeObject` wrote.
    fn annotation(&mut self, inside: &'static str) -> Result<Vec<Value>, JavaStreamError> {
        let mut values = Vec::new();
        loop {
            if self.peek(inside)? == TC_ENDBLOCKDATA {
                self.pos += 1;
                return Ok(values);
            }
            if let Some(value) = self.content(inside)? {
                values.push(value);
            }
        }
    }

    fn primitive(&mut self, type_code: u8) -> Result<Value, JavaStreamError> {
        const INSIDE: &str = "a primitive value";
        Ok(match type_code {
            b'B' => Value::Byte(i8::from_be_bytes(self.array(INSIDE)?)),
            b'C' => Value::Char(self.u16(INSIDE)?),
            b'D' => Value::Double(f64::from_be_bytes(self.array(INSIDE)?)),
            b'F' => Value::Float(f32::from_be_bytes(self.array(INSIDE)?)),
            b'I' => Value::Int(self.i32(INSIDE)?),
            b'J' => Value::Long(self.i64(INSIDE)?),
            b'S' => Value::Short(i16::from_be_bytes(self.array(INSIDE)?)),
            b'Z' => Value::Boolean(self.u8(INSIDE)? != 0),
            _ => return self.object("a field value"),
        })
    }

    fn new_array(&mut self) -> Result<EntryId, JavaStreamError> {
        let class = self.required_class_desc("an array's class")?;
        let id = self.new_handle(Entry::Pending);
        let element = self
            .stream
            .class_desc(class)
            .and_then(|desc| desc.name.as_bytes().get(1).copied())
            .unwrap_or(b'L');
        let size = self.i32("an array size")?;
        let unit = match element {
            b'B' | b'Z' => 1,
            b'C' | b'S' => 2,
            b'I' | b'F' => 4,
            b'J' | b'D' => 8,
            _ => 1,
        };
        let size = self.length(u64::try_from(size).unwrap_or(u64::MAX), unit, "an array")?;
        let mut elements = Vec::with_capacity(size);
        for _ in 0..size {
            elements.push(self.primitive(element)?);
        }
        self.set(id, Entry::Array { class, elements });
        Ok(id)
    }

    fn new_object(&mut self) -> Result<EntryId, JavaStreamError> {
        let class = self.required_class_desc("an object's class")?;
        let id = self.new_handle(Entry::Pending);
        // The hierarchy, superclass first; a cycle in super descriptors is cut by the bound.
        let mut chain = Vec::new();
        let mut next = Some(class);
        while let Some(desc_id) = next {
            if chain.len() >= MAX_DEPTH || chain.contains(&desc_id) {
                return Err(JavaStreamError::TooDeep { offset: self.pos });
            }
            chain.push(desc_id);
            next = self.stream.class_desc(desc_id).and_then(|d| d.super_class);
        }
        let mut data = Vec::with_capacity(chain.len());
        for desc_id in chain.into_iter().rev() {
            let Some(desc) = self.stream.class_desc(desc_id) else {
                continue;
            };
            let flags = desc.flags;
            let types: Vec<u8> = desc.fields.iter().map(|f| f.type_code).collect();
            let mut class_data = ClassData {
                class: desc_id,
                fields: Vec::new(),
                annotation: Vec::new(),
            };
            if flags & SC_EXTERNALIZABLE != 0 {
                if flags & SC_BLOCK_DATA == 0 {
                    let class = desc.name.clone();
                    return Err(JavaStreamError::Unsupported {
                        offset: self.pos,
                        class,
                    });
                }
                class_data.annotation = self.annotation("externalizable data")?;
            } else if flags & SC_SERIALIZABLE != 0 {
                class_data.fields = Vec::with_capacity(types.len());
                for type_code in types {
                    class_data.fields.push(self.primitive(type_code)?);
                }
                if flags & SC_WRITE_METHOD != 0 {
                    class_data.annotation = self.annotation("writeObject data")?;
                }
            }
            data.push(class_data);
        }
        self.set(id, Entry::Object { class, data });
        Ok(id)
    }
}

/// Java's modified UTF-8 (`DataOutput.writeUTF`): NUL as `C0 80`, supplementary characters
/// as two 3-byte surrogates. Invalid sequences become U+FFFD.
fn modified_utf8(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut units = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (unit, len) = if b < 0x80 {
            (u16::from(b), 1)
        } else if b & 0xE0 == 0xC0 && i + 1 < bytes.len() {
            ((u16::from(b & 0x1F) << 6) | u16::from(bytes[i + 1] & 0x3F), 2)
        } else if b & 0xF0 == 0xE0 && i + 2 < bytes.len() {
            (
                (u16::from(b & 0x0F) << 12) | (u16::from(bytes[i + 1] & 0x3F) << 6) | u16::from(bytes[i + 2] & 0x3F),
                3,
            )
        } else {
            (0xFFFD, 1)
        };
        units.push(unit);
        i += len;
    }
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Vec<u8> {
        vec![0xAC, 0xED, 0x00, 0x05]
    }

    #[test]
    fn the_specs_list_example_reads_with_its_back_reference() {
        // Java Object Serialization Specification, 6.4.2: two `List` objects, the second
        // written again as a back-reference.
        let bytes: &[u8] = &[
            0xAC, 0xED, 0x00, 0x05, 0x73, 0x72, 0x00, 0x04, 0x4C, 0x69, 0x73, 0x74, 0x69, 0xC8, 0x8A, 0x15, 0x40, 0x16,
            0xAE, 0x68, 0x02, 0x00, 0x02, 0x49, 0x00, 0x05, 0x76, 0x61, 0x6C, 0x75, 0x65, 0x4C, 0x00, 0x04, 0x6E, 0x65,
            0x78, 0x74, 0x74, 0x00, 0x06, 0x4C, 0x4C, 0x69, 0x73, 0x74, 0x3B, 0x78, 0x70, 0x00, 0x00, 0x00, 0x11, 0x73,
            0x71, 0x00, 0x7E, 0x00, 0x00, 0x00, 0x00, 0x00, 0x13, 0x70, 0x71, 0x00, 0x7E, 0x00, 0x03,
        ];
        let stream = JavaStream::parse(bytes).unwrap();
        let list1 = stream.root().unwrap();
        assert_eq!(list1.class_name(), "List");
        assert_eq!(list1.field("value"), Some(&Value::Int(17)));
        let list2 = list1.object_field("next").unwrap();
        assert_eq!(list2.field("value"), Some(&Value::Int(19)));
        assert_eq!(list2.field("next"), Some(&Value::Null));
        // The second top-level content is a reference to list2, not a copy.
        assert_eq!(stream.contents.len(), 2);
        assert_eq!(stream.contents[1], *list1.field("next").unwrap());
    }

    #[test]
    fn hostile_lengths_and_depths_are_errors_not_allocations_or_overflows() {
        // A long string claiming 2^62 bytes.
        let mut long = header();
        long.push(TC_LONGSTRING);
        long.extend_from_slice(&(1u64 << 62).to_be_bytes());
        assert!(matches!(
            JavaStream::parse(&long),
            Err(JavaStreamError::Truncated { .. })
        ));
        // An array claiming i32::MAX longs.
        let mut array = header();
        array.extend_from_slice(&[TC_ARRAY, TC_CLASSDESC, 0, 2, b'[', b'J']);
        array.extend_from_slice(&[0; 8]);
        array.extend_from_slice(&[SC_SERIALIZABLE, 0, 0, TC_ENDBLOCKDATA, TC_NULL]);
        array.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            JavaStream::parse(&array),
            Err(JavaStreamError::Truncated { .. })
        ));
        // 100 000 nested exceptions: an error, not a stack overflow.
        let mut deep = header();
        deep.extend(std::iter::repeat_n(TC_EXCEPTION, 100_000));
        assert!(matches!(JavaStream::parse(&deep), Err(JavaStreamError::TooDeep { .. })));
        // A reference below the first handle and one not assigned yet.
        let mut low = header();
        low.extend_from_slice(&[TC_REFERENCE, 0, 0, 0, 1]);
        assert!(matches!(
            JavaStream::parse(&low),
            Err(JavaStreamError::BadReference { .. })
        ));
        let mut ahead = header();
        ahead.extend_from_slice(&[TC_REFERENCE, 0, 0x7E, 0, 9]);
        assert!(matches!(
            JavaStream::parse(&ahead),
            Err(JavaStreamError::BadReference { .. })
        ));
        assert_eq!(
            JavaStream::parse(b"{\"path\":\"s3://b/x\"}"),
            Err(JavaStreamError::NotJavaSerialization)
        );
    }

    #[test]
    fn modified_utf8_reads_nul_and_surrogate_pairs() {
        // "a\0b" with NUL as C0 80, then U+1F600 as two 3-byte surrogates.
        let bytes = [b'a', 0xC0, 0x80, b'b', 0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80];
        assert_eq!(modified_utf8(&bytes), "a\0b\u{1F600}");
    }
}

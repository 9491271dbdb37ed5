//! A row as the row cache holds it (`cache.rs`): its key and value, in the
//! entry when short, and the weight that the cache's bound counts for it.

use quick_cache::Weighter;

/// Bytes counted per cached row for its entry: the table's slot and the
/// entry itself, which holds a key of up to [`INLINE_KEY`] bytes and a
/// value of up to [`INLINE_VALUE`] bytes whatever their lengths, with room
/// for the table's growth (`-- row-cache-memory` of the store's benchmark:
/// 96.7 bytes a row resident at 1M rows held in their entries).
pub(crate) const ENTRY_BYTES: u64 = 104;

/// Bytes counted for a key or a value too long for the entry, in an
/// allocation of its own: its bytes, plus an eighth and 24 bytes for the
/// allocator's size classes and bookkeeping (mimalloc's classes are an
/// eighth apart; glibc's chunks add 8 bytes and round to 16).
fn allocation_bytes(len: usize) -> u64 {
    (len + len / 8 + 24) as u64
}

/// `bytes` with their length, in an array of `N` bytes for an entry, if
/// they fit.
fn inline<const N: usize>(bytes: &[u8]) -> Option<(u8, [u8; N])> {
    let len = u8::try_from(bytes.len())
        .ok()
        .filter(|_| bytes.len() <= N)?;
    let mut array = [0; N];
    array[..bytes.len()].copy_from_slice(bytes);
    Some((len, array))
}

/// Values up to this many bytes are held in the table's entry itself: a
/// short key and such a value fill one 64-byte cache line between them.
const INLINE_VALUE: usize = 38;

/// A cached row's value, or the knowledge that its key is absent. A short
/// value (a counter, a small JSON record) is in the entry, so that a read
/// which found the entry copies the value without a further access to cold
/// memory and a new row costs no allocation; a longer one has an allocation
/// of its own.
#[derive(Clone)]
pub(crate) enum Value {
    Absent,
    Inline(u8, [u8; INLINE_VALUE]),
    Heap(Box<[u8]>),
}

impl Value {
    pub(crate) fn new(value: Option<&[u8]>) -> Self {
        let Some(value) = value else {
            return Value::Absent;
        };
        match inline(value) {
            Some((len, bytes)) => Value::Inline(len, bytes),
            None => Value::Heap(Box::from(value)),
        }
    }

    pub(crate) fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Absent => None,
            Value::Inline(len, bytes) => Some(&bytes[..usize::from(*len)]),
            Value::Heap(bytes) => Some(bytes),
        }
    }

    /// Overwrites the value in place when it has room for `new`'s bytes
    /// (an inline value of any length up to the limit, a heap value of the
    /// same length, as a counter's often is): no allocation, and the same
    /// weight. Reports whether it did.
    pub(crate) fn overwrite(&mut self, new: &[u8]) -> bool {
        match self {
            Value::Inline(len, bytes) => match inline(new) {
                Some(fits) => {
                    (*len, *bytes) = fits;
                    true
                }
                None => false,
            },
            Value::Heap(old) if old.len() == new.len() => {
                old.copy_from_slice(new);
                true
            }
            _ => false,
        }
    }
}

/// Keys up to this many bytes are held in the table's entry itself.
const INLINE_KEY: usize = 22;

/// A cached row's key: in the entry when short (most keys are), so that a
/// look-up which finds the entry compares the key without a second access
/// to cold memory (at 1M keys that access was a fifth of the cache's cost
/// in `-- fresh-replay`), and in an allocation of its own when longer.
#[derive(Clone)]
pub(crate) enum RowKey {
    Inline(u8, [u8; INLINE_KEY]),
    Heap(Box<[u8]>),
}

impl RowKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        match inline(key) {
            Some((len, bytes)) => RowKey::Inline(len, bytes),
            None => RowKey::Heap(Box::from(key)),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            RowKey::Inline(len, bytes) => &bytes[..usize::from(*len)],
            RowKey::Heap(bytes) => bytes,
        }
    }
}

// Hashed and compared as the bytes it holds, so that a look-up by `&[u8]`
// finds it (`Borrow` promises that both hash alike).
impl std::hash::Hash for RowKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for RowKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for RowKey {}

impl std::borrow::Borrow<[u8]> for RowKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Weighs a row by the memory it takes: its entry, and the allocations of
/// a key or value too long to be held in it.
#[derive(Clone, Copy)]
pub(crate) struct RowWeight;

impl Weighter<RowKey, Value> for RowWeight {
    fn weight(&self, key: &RowKey, value: &Value) -> u64 {
        let key = match key {
            RowKey::Inline(..) => 0,
            RowKey::Heap(bytes) => allocation_bytes(bytes.len()),
        };
        let value = match value {
            Value::Absent | Value::Inline(..) => 0,
            Value::Heap(bytes) => allocation_bytes(bytes.len()),
        };
        ENTRY_BYTES + key + value
    }
}

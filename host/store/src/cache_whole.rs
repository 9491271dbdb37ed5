//! The table of a complete row cache (`cache.rs`): every row of the view,
//! while they fit in the cache's bound, found in two accesses to memory.
//!
//! quick_cache keeps its entries dense in one vector and finds them through
//! a hash table of their indices: a look-up reads the table's control
//! bytes, then the index, then the entry, three accesses to cold memory one
//! after the other at many keys (a third of a look-up's samples each,
//! BENCHMARKS.md section 8). A complete cache evicts nothing, so it can do
//! with less: its rows dense in one vector as quick_cache's are, found
//! through a table of 8-byte slots that each hold a row's index beside 32
//! bits of its hash, so that a look-up reads one slot (the few slots a
//! probe passes share its cache line) and then the row. A plain hash table
//! with each row in its slot was tried too: two accesses, but its empty
//! slots are 64 bytes each, and it doubled into fresh memory all at once.
//! Here the slots grow apart from the rows, re-placed by the hash bits they
//! hold without reading a row.

use quick_cache::Weighter;

use crate::cache_row::{ENTRY_BYTES, RowKey, RowWeight, Value};

/// A cached row: 64 bytes with a short key and value, the size of a cache
/// line.
pub(crate) struct Row {
    pub(crate) key: RowKey,
    pub(crate) value: Value,
}

/// Bytes of a row in the rows' vector.
const ROW_BYTES: u64 = size_of::<Row>() as u64;

/// Bytes of a slot: 32 bits of a row's hash, and its index plus one (zero:
/// an empty slot).
const SLOT_BYTES: u64 = size_of::<u64>() as u64;

/// Rows of the first vector, and slots of the first table.
const FIRST_ROWS: usize = 8;
const FIRST_SLOTS: usize = 16;

/// The 32 bits of a hash that a slot keeps: the high half. The slot a row
/// goes to is taken from them too, so that slots are re-placed by what
/// they hold.
fn tag(hash: u64) -> u32 {
    (hash >> 32) as u32
}

/// A slot for row `row` (below `u32::MAX - 1`, which [`Whole::put`] keeps).
fn slot(tag: u32, row: usize) -> u64 {
    u64::from(tag) << 32 | (row as u64 + 1)
}

fn slot_tag(slot: u64) -> u32 {
    tag(slot)
}

#[expect(
    clippy::cast_possible_truncation,
    reason = "the low half of a u64 fits"
)]
fn slot_row(slot: u64) -> usize {
    (slot as u32) as usize - 1
}

/// The bytes [`RowWeight`] counts for a row beside its entry.
fn heap_bytes(key: &RowKey, value: &Value) -> u64 {
    RowWeight.weight(key, value) - ENTRY_BYTES
}

/// Where a key is in the slots, or the empty slot where it would go.
enum Found {
    At(usize),
    Vacant(usize),
}

/// The rows of a complete cache (every row of the view), no eviction order
/// kept: the rows in one vector, a table of slots to find them, open
/// addressing with linear probing, at most half full.
///
/// Its weight is its memory: the vector's allocation and the slots' (room
/// for rows to come included), and the allocations of long keys and
/// values. It takes a row while that, with the allocation a growth makes
/// beside the one it replaces, stays within the cache's bound.
pub(crate) struct Whole {
    rows: Vec<Row>,
    /// A power of two of slots, or none before the first row.
    slots: Vec<u64>,
    hasher: foldhash::fast::RandomState,
    /// Bytes of the allocations of keys and values too long for a row's
    /// entry, weighed as [`RowWeight`] weighs them.
    heap: u64,
}

impl Whole {
    /// An empty table: nothing allocated until the first row.
    pub(crate) fn new() -> Self {
        Whole {
            rows: Vec::new(),
            slots: Vec::new(),
            hasher: foldhash::fast::RandomState::default(),
            heap: 0,
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.rows.capacity() as u64 * ROW_BYTES + self.slots.len() as u64 * SLOT_BYTES + self.heap
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Probes the slots for `key` of hash `hash` (there are slots).
    fn find(&self, key: &[u8], hash: u64) -> Found {
        let tag = tag(hash);
        let mask = self.slots.len() - 1;
        let mut at = tag as usize & mask;
        loop {
            let slot = self.slots[at];
            if slot == 0 {
                return Found::Vacant(at);
            }
            if slot_tag(slot) == tag && self.rows[slot_row(slot)].key.as_bytes() == key {
                return Found::At(at);
            }
            at = (at + 1) & mask;
        }
    }

    pub(crate) fn get(&self, key: &[u8]) -> Option<&Value> {
        if self.slots.is_empty() {
            return None;
        }
        match self.find(key, self.hash(key)) {
            Found::At(at) => Some(&self.rows[slot_row(self.slots[at])].value),
            Found::Vacant(_) => None,
        }
    }

    /// Writes `value` to `key`'s row, in place if it has one, or adds a row
    /// if there is room for it within `bound`; gives the value back when
    /// there is not.
    pub(crate) fn put<'v>(
        &mut self,
        key: &[u8],
        value: &'v [u8],
        bound: u64,
    ) -> Result<(), &'v [u8]> {
        let hash = self.hash(key);
        let vacant = if self.slots.is_empty() {
            None
        } else {
            match self.find(key, hash) {
                Found::At(at) => {
                    let row = &mut self.rows[slot_row(self.slots[at])];
                    let before = heap_bytes(&row.key, &row.value);
                    if !row.value.overwrite(value) {
                        row.value = Value::new(Some(value));
                    }
                    self.heap = self.heap - before + heap_bytes(&row.key, &row.value);
                    return Ok(());
                }
                Found::Vacant(at) => Some(at),
            }
        };
        let row = Row {
            key: RowKey::new(key),
            value: Value::new(Some(value)),
        };
        let added = heap_bytes(&row.key, &row.value);
        // The allocations a growth makes, each beside the one it replaces
        // for the moment of the move: the rows' vector doubles when full,
        // the slots when the new row would fill more than half of them.
        let rows_growth = if self.rows.len() == self.rows.capacity() {
            let capacity = self.rows.capacity();
            (capacity + capacity.max(FIRST_ROWS)) as u64 * ROW_BYTES
        } else {
            0
        };
        let slots_growth = if (self.rows.len() + 1) * 2 > self.slots.len() {
            (self.slots.len() * 2).max(FIRST_SLOTS) as u64 * SLOT_BYTES
        } else {
            0
        };
        if self.bytes() + rows_growth + slots_growth + added > bound
            || self.rows.len() >= u32::MAX as usize - 1
        {
            return Err(value);
        }
        if rows_growth > 0 {
            self.rows
                .reserve_exact(self.rows.capacity().max(FIRST_ROWS));
        }
        // The empty slot the probe above ended at, unless the slots moved.
        let at = match vacant {
            Some(at) if slots_growth == 0 => at,
            _ => {
                self.grow_slots();
                self.empty_slot(tag(hash))
            }
        };
        self.slots[at] = slot(tag(hash), self.rows.len());
        self.rows.push(row);
        self.heap += added;
        Ok(())
    }

    /// The first empty slot on the probe of `tag`: where a row whose key
    /// is not in the table goes.
    fn empty_slot(&self, tag: u32) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = tag as usize & mask;
        while self.slots[at] != 0 {
            at = (at + 1) & mask;
        }
        at
    }

    /// Doubles the slots, each re-placed by the hash bits it holds.
    fn grow_slots(&mut self) {
        let len = (self.slots.len() * 2).max(FIRST_SLOTS);
        let old = std::mem::replace(&mut self.slots, vec![0; len]);
        for slot in old.into_iter().filter(|&slot| slot != 0) {
            let at = self.empty_slot(slot_tag(slot));
            self.slots[at] = slot;
        }
    }

    pub(crate) fn remove(&mut self, key: &[u8]) {
        if self.slots.is_empty() {
            return;
        }
        let Found::At(at) = self.find(key, self.hash(key)) else {
            return;
        };
        let row = slot_row(self.slots[at]);
        self.free_slot(at);
        // The last row takes the removed one's place in the vector: its
        // slot is pointed there.
        let last = self.rows.len() - 1;
        if row != last {
            let hash = self.hash(self.rows[last].key.as_bytes());
            if let Found::At(moved) = self.find(self.rows[last].key.as_bytes(), hash) {
                self.slots[moved] = slot(tag(hash), row);
            }
        }
        let removed = self.rows.swap_remove(row);
        self.heap -= heap_bytes(&removed.key, &removed.value);
    }

    /// Empties slot `at`, moving back the slots after it that probing
    /// would no longer reach (no tombstones: a probe stops at an empty
    /// slot).
    fn free_slot(&mut self, at: usize) {
        let mask = self.slots.len() - 1;
        let mut hole = at;
        let mut next = (at + 1) & mask;
        self.slots[hole] = 0;
        loop {
            let slot = self.slots[next];
            if slot == 0 {
                return;
            }
            let home = slot_tag(slot) as usize & mask;
            // The slot may fill the hole if its home is not after the
            // hole on the way to where it is.
            if next.wrapping_sub(home) & mask >= next.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                self.slots[next] = 0;
                hole = next;
            }
            next = (next + 1) & mask;
        }
    }

    /// Every row, the table emptied.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Row> {
        self.slots = Vec::new();
        self.heap = 0;
        std::mem::take(&mut self.rows).into_iter()
    }
}

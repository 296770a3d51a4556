//! The write-ahead log: what makes a group of document writes durable without a durable redb
//! commit.
//!
//! A durable redb commit writes every page the group dirtied (the document's leaf and one leaf
//! per secondary-index entry, each with its own `pwrite`) and `fdatasync`s the data file: most of
//! a durable create's store CPU (BENCHMARKS.md, "durable create, end to end"). With the log, a
//! group's effects are appended here as one record, made durable by one `fdatasync` of a small
//! sequential write, before any writer is answered; the group is applied to redb later, with the
//! groups around it, in a transaction committed with `Durability::None` (`mod.rs`,
//! `apply_pending`).
//!
//! Every so often (`EmbeddedOptions::log_checkpoint_bytes`), and for every catalog change, a
//! commit is durable in redb instead (a checkpoint): it persists every non-durable commit before
//! it, and moves the log to a new **epoch**, stored in redb (`META`, `walEpoch`) by that same
//! commit. The log is then rewritten from its start; records of older epochs are ignored.
//!
//! On open, redb is back at its last durable commit; the records of its epoch, in order, are
//! applied again (`Store::replay`), then a checkpoint starts the next epoch.
//!
//! Record: `len: u32 LE` (payload bytes) ‖ `crc32: u32 LE` (of the epoch and the payload) ‖
//! `epoch: u64 LE` ‖ payload. A group is one record, all or nothing: a torn tail fails its
//! checksum and ends the log. Payload: entries, each `kind: u8` (1 put, 2 delete) ‖ index ‖
//! collection ‖ document id ‖ (put) the stored record (`document::codec`), every field as
//! `u32 LE` length ‖ bytes.
//!
//! An entry states what a document **is** after the write (its whole stored record, or absent),
//! never the operation: applied again over a state that already has it, or in order after older
//! entries, it gives the same state, so a replay needs no knowledge of how far redb got.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::error::{Result, StorageError};

const HEADER: usize = 16;
const PUT: u8 = 1;
const DELETE: u8 = 2;

/// The log file and where the next record goes.
pub(super) struct Wal {
    file: File,
    /// The epoch records are written under: redb's `walEpoch` since the last checkpoint.
    epoch: u64,
    /// Where the next record goes: the end of this epoch's records.
    offset: u64,
    /// A checkpoint failed: its epoch is unknown, so nothing may be appended until a checkpoint
    /// succeeds.
    needs_checkpoint: bool,
}

impl Wal {
    /// Opens (or creates) the log at `path`; returns it with the payloads of the records written
    /// under `epoch`, in order. Appending starts only after [`restart`](Self::restart).
    pub(super) fn open(path: &Path, epoch: u64) -> Result<(Wal, Vec<Vec<u8>>)> {
        let io = |e: std::io::Error| StorageError::store(format!("{}: {e}", path.display()));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut records = Vec::new();
        let mut at = 0;
        while let Some((payload, next)) = record_at(&bytes, at, epoch) {
            records.push(payload.to_vec());
            at = next;
        }
        let wal = Wal {
            file,
            epoch,
            offset: at as u64,
            needs_checkpoint: true,
        };
        Ok((wal, records))
    }

    /// True when the next group may be acknowledged on this log (else it must commit durably in
    /// redb: a checkpoint).
    pub(super) fn can_append(&self, checkpoint_bytes: u64) -> bool {
        !self.needs_checkpoint && self.offset < checkpoint_bytes
    }

    /// Appends one record and makes it durable. On an error nothing may be acknowledged on it.
    pub(super) fn append(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut record = Vec::with_capacity(HEADER + payload.len());
        let len = u32::try_from(payload.len())
            .map_err(|_| std::io::Error::other("a group's log record is over 4 GiB"))?;
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&checksum(self.epoch, payload).to_le_bytes());
        record.extend_from_slice(&self.epoch.to_le_bytes());
        record.extend_from_slice(payload);
        self.file.seek(SeekFrom::Start(self.offset))?;
        self.file.write_all(&record)?;
        self.file.sync_data()?;
        self.offset += record.len() as u64;
        Ok(())
    }

    /// A checkpoint made `epoch` durable in redb: the log starts over under it.
    pub(super) fn restart(&mut self, epoch: u64) {
        self.epoch = epoch;
        self.offset = 0;
        self.needs_checkpoint = false;
    }

    /// A checkpoint failed: whether redb has its epoch is unknown.
    pub(super) fn checkpoint_failed(&mut self) {
        self.needs_checkpoint = true;
    }
}

fn checksum(epoch: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&epoch.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The payload of the valid record of `epoch` at `at`, and where the next one starts.
fn record_at(bytes: &[u8], at: usize, epoch: u64) -> Option<(&[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
    let record_epoch = u64::from_le_bytes(header[8..16].try_into().ok()?);
    if len == 0 || record_epoch != epoch {
        return None;
    }
    let end = (at + HEADER).checked_add(len)?;
    let payload = bytes.get(at + HEADER..end)?;
    (checksum(epoch, payload) == crc).then_some((payload, end))
}

fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    // Names, ids and records are far below 4 GiB (the API's limits).
    out.extend_from_slice(&(field.len() as u32).to_le_bytes());
    out.extend_from_slice(field);
}

/// Adds to `payload` that document `id` of `index`/`collection` is now `record` (a stored
/// record, `document::codec`), or absent (`None`).
pub(super) fn push_entry(
    payload: &mut Vec<u8>,
    index: &str,
    collection: &str,
    id: &str,
    record: Option<&[u8]>,
) {
    payload.push(if record.is_some() { PUT } else { DELETE });
    push_field(payload, index.as_bytes());
    push_field(payload, collection.as_bytes());
    push_field(payload, id.as_bytes());
    if let Some(record) = record {
        push_field(payload, record);
    }
}

/// One entry of a record: document `id` of `index`/`collection` is now `record`, or absent.
pub(super) struct Entry<'a> {
    pub(super) index: &'a str,
    pub(super) collection: &'a str,
    pub(super) id: &'a str,
    pub(super) record: Option<&'a [u8]>,
}

/// The entries of a payload, in order. A payload passed its checksum, so a malformed one is a
/// bug or a corruption the checksum missed: an error, never a guess.
pub(super) fn entries(payload: &[u8]) -> Result<Vec<Entry<'_>>> {
    let corrupt = || StorageError::store("the write-ahead log has a malformed record");
    let mut out = Vec::new();
    let mut rest = payload;
    fn field<'a>(rest: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let value = rest.get(4..4usize.checked_add(len)?)?;
        *rest = &rest[4 + len..];
        Some(value)
    }
    fn text<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
        std::str::from_utf8(field(rest)?).ok()
    }
    while let Some((&kind, tail)) = rest.split_first() {
        rest = tail;
        let (Some(index), Some(collection), Some(id)) =
            (text(&mut rest), text(&mut rest), text(&mut rest))
        else {
            return Err(corrupt());
        };
        let record = match kind {
            PUT => Some(field(&mut rest).ok_or_else(corrupt)?),
            DELETE => None,
            _ => return Err(corrupt()),
        };
        out.push(Entry {
            index,
            collection,
            id,
            record,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(ids: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        for id in ids {
            push_entry(&mut out, "i", "c", id, Some(id.as_bytes()));
        }
        push_entry(&mut out, "i", "c", "gone", None);
        out
    }

    #[test]
    fn entries_read_back_as_written() {
        let bytes = payload(&["a", "bb"]);
        let entries = entries(&bytes).unwrap();
        let seen: Vec<(&str, &str, &str, Option<&[u8]>)> = entries
            .iter()
            .map(|e| (e.index, e.collection, e.id, e.record))
            .collect();
        assert_eq!(
            seen,
            vec![
                ("i", "c", "a", Some(&b"a"[..])),
                ("i", "c", "bb", Some(&b"bb"[..])),
                ("i", "c", "gone", None),
            ]
        );
        assert!(super::entries(&bytes[..bytes.len() - 1]).is_err());
        assert!(super::entries(&[9]).is_err());
    }

    /// Records of the log's epoch are read back in order; a torn tail, a flipped byte or a record
    /// of another epoch ends the log there.
    #[test]
    fn only_whole_records_of_the_epoch_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, records) = Wal::open(&path, 7).unwrap();
        assert!(records.is_empty());
        wal.restart(7);
        let (one, two) = (payload(&["a"]), payload(&["b", "c"]));
        wal.append(&one).unwrap();
        wal.append(&two).unwrap();
        drop(wal);
        assert_eq!(
            Wal::open(&path, 7).unwrap().1,
            vec![one.clone(), two.clone()]
        );
        assert!(Wal::open(&path, 8).unwrap().1.is_empty());

        // Torn: the second record loses its last byte.
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 1]).unwrap();
        assert_eq!(Wal::open(&path, 7).unwrap().1, vec![one.clone()]);

        // Flipped: a byte of the second record's payload changes.
        let mut flipped = full.clone();
        *flipped.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(Wal::open(&path, 7).unwrap().1, vec![one.clone()]);

        // A new epoch overwrites from the start: the older records after it are ignored.
        std::fs::write(&path, &full).unwrap();
        let (mut wal, _) = Wal::open(&path, 7).unwrap();
        wal.restart(8);
        let three = payload(&["z"]);
        wal.append(&three).unwrap();
        drop(wal);
        assert_eq!(Wal::open(&path, 8).unwrap().1, vec![three]);
        assert!(Wal::open(&path, 7).unwrap().1.is_empty());
    }

    #[test]
    fn a_fresh_log_appends_only_after_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(&dir.path().join("log"), 1).unwrap();
        assert!(!wal.can_append(1 << 20));
        wal.restart(2);
        assert!(wal.can_append(1 << 20));
        wal.append(&payload(&["a"])).unwrap();
        assert!(!wal.can_append(10));
        wal.checkpoint_failed();
        assert!(!wal.can_append(1 << 20));
    }
}

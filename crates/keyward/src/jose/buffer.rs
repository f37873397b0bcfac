//! Decode buffers reused per thread, so that verifying a token makes no heap allocation.

use std::cell::RefCell;

/// How many spare buffers a thread keeps.
const SPARES: usize = 4;

/// Buffers larger than this (tokens beyond the default 16 KiB bound) are freed, not kept.
const MAX_SPARE_CAPACITY: usize = 16 * 1024;

thread_local! {
    static SPARE_BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A byte buffer that goes back to its thread's spares when dropped.
///
/// A verification decodes its token into one of these; taking a spare instead of allocating
/// keeps the allocator out of the path between two signature checks.
#[derive(Debug, Default)]
pub(crate) struct DecodeBuffer(Vec<u8>);

impl DecodeBuffer {
    /// A buffer of `len` bytes whose contents are unspecified (a previous token's bytes, or
    /// zeros): the caller overwrites what it keeps and truncates the rest away.
    pub(crate) fn with_len(len: usize) -> Self {
        let spare = SPARE_BUFFERS.try_with(|s| s.try_borrow_mut().ok()?.pop()).ok().flatten();
        let mut bytes = spare.unwrap_or_default();
        if bytes.len() < len {
            bytes.resize(len, 0);
        } else {
            bytes.truncate(len);
        }
        Self(bytes)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }

    pub(crate) fn truncate(&mut self, len: usize) {
        self.0.truncate(len);
    }
}

impl Drop for DecodeBuffer {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        if bytes.capacity() == 0 || bytes.capacity() > MAX_SPARE_CAPACITY {
            return;
        }
        // A thread being torn down frees the buffer instead.
        let _ = SPARE_BUFFERS.try_with(|s| {
            if let Ok(mut spares) = s.try_borrow_mut()
                && spares.len() < SPARES
            {
                spares.push(bytes);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_sized_as_asked() {
        let first = DecodeBuffer::with_len(900);
        let address = first.bytes().as_ptr();
        assert_eq!(first.bytes().len(), 900);
        drop(first);
        let second = DecodeBuffer::with_len(100);
        assert_eq!((second.bytes().as_ptr(), second.bytes().len()), (address, 100));
        let grown = DecodeBuffer::with_len(2000);
        assert_eq!(grown.bytes().len(), 2000);
        drop((second, grown));
        // Oversized buffers are not kept.
        drop(DecodeBuffer::with_len(MAX_SPARE_CAPACITY + 1));
        let kept = SPARE_BUFFERS.with(|s| s.borrow().iter().map(Vec::capacity).max());
        assert!(kept.is_some_and(|c| c <= MAX_SPARE_CAPACITY));
        // At most SPARES are kept.
        drop((0..SPARES * 2).map(|_| DecodeBuffer::with_len(10)).collect::<Vec<_>>());
        assert!(SPARE_BUFFERS.with(|s| s.borrow().len()) <= SPARES);
    }
}

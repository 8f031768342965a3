//! Where preprocessed text came from. Every file the preprocessor read (the script first, then
//! each included file) has a range of its own in one *original* offset space: the script's bytes
//! are offsets `0..len`, an included file's follow at a base of their own. [`SourceMap`] maps
//! offsets in the expanded text to that space, [`Sources`] maps that space back to a file, its
//! name, text and a local offset. Without directives the expanded text is the script itself,
//! and both maps are the identity.

use crate::Span;

/// One run of expanded text: copied from the original (offsets map one to one) or produced by a
/// macro (every offset in it maps to the macro's invocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Segment {
    out: usize,
    len: usize,
    orig: usize,
    orig_len: usize,
    copied: bool,
}

/// From offsets in the expanded text to the original offset space.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceMap {
    segments: Vec<Segment>,
}

impl SourceMap {
    /// `len` bytes at `out` were copied from `orig`.
    pub(super) fn copied(&mut self, out: usize, orig: usize, len: usize) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.segments.last_mut() {
            if last.copied && last.out + last.len == out && last.orig + last.orig_len == orig {
                last.len += len;
                last.orig_len += len;
                return;
            }
        }
        self.segments.push(Segment { out, len, orig, orig_len: len, copied: true });
    }

    /// `len` bytes at `out` were produced from the original range `orig`.
    pub(super) fn produced(&mut self, out: usize, len: usize, orig: std::ops::Range<usize>) {
        if len == 0 {
            return;
        }
        self.segments.push(Segment { out, len, orig: orig.start, orig_len: orig.len(), copied: false });
    }

    /// The segment holding the byte at `pos` (the last one for the end of the text).
    fn segment_at(&self, pos: usize) -> Option<&Segment> {
        let index = self.segments.partition_point(|s| s.out + s.len <= pos);
        self.segments.get(index).or(self.segments.last())
    }

    /// Where the token starting at `pos` came from.
    pub fn start(&self, pos: usize) -> usize {
        match self.segment_at(pos) {
            None => pos,
            Some(s) if s.copied => s.orig + pos.saturating_sub(s.out).min(s.len),
            Some(s) => s.orig,
        }
    }

    /// Where the token ending at `pos` (exclusive) came from.
    pub fn end(&self, pos: usize) -> usize {
        match self.segment_at(pos.saturating_sub(1)) {
            None => pos,
            Some(s) if s.copied => s.orig + pos.saturating_sub(s.out).min(s.len),
            Some(s) => s.orig + s.orig_len,
        }
    }

    /// A span of the expanded text in the original space. A span whose ends came from
    /// different files shrinks to its start.
    pub fn span(&self, span: Span) -> Span {
        let start = self.start(span.start as usize);
        let end = self.end(span.end as usize);
        if span.is_empty() || end < start {
            return Span::new(start, start);
        }
        Span::new(start, end)
    }
}

/// One file the preprocessor read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path as it was found (the script's own name for the script).
    pub name: String,
    pub text: String,
    /// Where its offsets start in the original space.
    pub base: usize,
}

/// Every file behind a preprocessed program; the script is the first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources {
    files: Vec<SourceFile>,
}

impl Sources {
    /// The sources of a text that included nothing.
    #[must_use]
    pub fn of_script(name: &str, text: &str) -> Sources {
        let mut sources = Sources::default();
        sources.add(name, text);
        sources
    }

    /// Adds a file and returns its base; one byte separates files, so a file's end offset
    /// belongs to it alone.
    pub(super) fn add(&mut self, name: &str, text: &str) -> usize {
        let base = self.files.last().map_or(0, |f| f.base + f.text.len() + 1);
        self.files.push(SourceFile { name: name.to_owned(), text: text.to_owned(), base });
        base
    }

    /// The script, or an empty file when nothing was read.
    pub fn script(&self) -> Option<&SourceFile> {
        self.files.first()
    }

    /// The file a span of the original space lies in, with the span made local to it.
    pub fn locate(&self, span: Span) -> Option<(&SourceFile, Span)> {
        let start = span.start as usize;
        let index = self.files.partition_point(|f| f.base <= start).checked_sub(1)?;
        let file = &self.files[index];
        let local_start = (start - file.base).min(file.text.len());
        let local_end = (span.end as usize).saturating_sub(file.base).clamp(local_start, file.text.len());
        Some((file, Span::new(local_start, local_end)))
    }

    /// The original text of a span, or `""`.
    pub fn text(&self, span: Span) -> &str {
        self.locate(span).and_then(|(file, local)| file.text.get(local.range())).unwrap_or("")
    }

    /// `NAME:LINE:COLUMN` (1-based, columns in characters) of an offset of the original space.
    pub fn position(&self, offset: usize) -> Option<(String, usize, usize)> {
        let (file, local) = self.locate(Span::new(offset, offset))?;
        let before = file.text.get(..local.start as usize)?;
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((file.name.clone(), line, column))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copied_runs_map_one_to_one_and_expansions_to_their_invocation() {
        // Original "x FOO y" (FOO at 2..5) expanded to "x 1 + 2 y".
        let mut map = SourceMap::default();
        map.copied(0, 0, 2);
        map.produced(2, 5, 2..5);
        map.copied(7, 5, 2);
        assert_eq!(map.span(Span::new(0, 1)), Span::new(0, 1));
        assert_eq!(map.span(Span::new(4, 5)), Span::new(2, 5));
        assert_eq!(map.span(Span::new(2, 9)), Span::new(2, 7));
        assert_eq!(map.span(Span::new(8, 9)), Span::new(6, 7));
    }

    #[test]
    fn offsets_find_their_file() {
        let mut sources = Sources::default();
        assert_eq!(sources.add("a.bt", "ab\ncd"), 0);
        assert_eq!(sources.add("b.h", "xyz"), 6);
        let (file, local) = sources.locate(Span::new(7, 9)).unwrap();
        assert_eq!((file.name.as_str(), local), ("b.h", Span::new(1, 3)));
        assert_eq!(sources.position(4), Some(("a.bt".into(), 2, 2)));
        assert_eq!(sources.text(Span::new(6, 9)), "xyz");
    }
}
